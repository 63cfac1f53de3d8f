package install

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/inject"
)

// Check is one preflight check (see package check).
type Check = check.Check

// The outcomes, as the checks name them.
const (
	CheckOK      = check.OK
	CheckWarning = check.Warning
	CheckFailed  = check.Failed
	CheckSkipped = check.Skipped
)

// Preflight runs the checks an install needs to pass. Nil Client makes every check skipped
// (a client dry run needs no cluster).
type Preflight struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Profile *Profile
	// InjectNamespaces are namespaces the user means to inject after the install, counted with
	// those already labelled for injection into the sidecar tax.
	InjectNamespaces []string
	// Nodes, when set, probes the nodes' CPU steal and sysctls (kubectl mesh nodes).
	Nodes func(ctx context.Context) ([]Check, error)
	// SkipNodesReason says why the node probe does not run, when Nodes is nil.
	SkipNodesReason string
	// ForeignCRDsOK accepts Istio's CRDs installed by another tool: istioctl, unlike Helm's
	// base chart, takes them over.
	ForeignCRDsOK bool
	// Overrides are the user's values: they can change the sidecars' requests.
	Overrides Overrides
}

// Categories of the checks, in the order they print.
const (
	CategoryCluster     = "cluster"
	CategoryPermissions = "permissions"
	CategoryExisting    = "existing Istio"
	CategoryCapacity    = "sidecar capacity"
	CategoryNodes       = "nodes"
)

// Run runs every check. It never fails as a whole: a check that cannot run says so.
func (pf *Preflight) Run(ctx context.Context) []Check {
	if pf.Client == nil {
		var out []Check
		for _, c := range []string{CategoryCluster, CategoryPermissions, CategoryExisting, CategoryCapacity, CategoryNodes} {
			out = append(out, Check{Category: c, Status: CheckSkipped, Message: "no cluster was asked (--dry-run=client renders without one)"})
		}
		return out
	}
	var out []Check
	out = append(out, pf.version())
	out = append(out, pf.permissions(ctx)...)
	out = append(out, pf.existing(ctx)...)
	out = append(out, pf.capacity(ctx)...)
	out = append(out, pf.ambient(ctx)...)
	switch {
	case pf.Nodes != nil:
		checks, err := pf.Nodes(ctx)
		if err != nil {
			out = append(out, Check{Category: CategoryNodes, Status: CheckSkipped, Message: "node probe: " + err.Error()})
		}
		out = append(out, checks...)
	default:
		reason := pf.SkipNodesReason
		if reason == "" {
			reason = "the node probe did not run"
		}
		out = append(out, Check{Category: CategoryNodes, Status: CheckSkipped, Message: reason, Fix: "kubectl mesh nodes checks CPU steal, disk latency and the seeds' sysctls"})
	}
	return out
}

// Failed reports whether any check failed.
func Failed(checks []Check) bool { return check.AnyFailed(checks) }

func (pf *Preflight) version() Check {
	c := Check{Category: CategoryCluster}
	v, err := pf.Client.Discovery().ServerVersion()
	if err != nil {
		c.Status, c.Message = CheckFailed, "the API server's version could not be read: "+err.Error()
		c.Fix = "check that the cluster is reachable with kubectl version"
		return c
	}
	rel, known := ReleaseOf(pf.Profile.Version)
	minor, err := KubeMinor(v.Minor)
	switch {
	case err != nil:
		c.Status, c.Message = CheckWarning, err.Error()
	case !known:
		c.Status = CheckWarning
		c.Message = fmt.Sprintf("Kubernetes %s.%d; the Kubernetes versions Istio %s supports are not known to this kubectl-mesh", v.Major, minor, pf.Profile.Version)
		c.Fix = "check https://istio.io/latest/docs/releases/supported-releases/ before installing"
	case rel.Supports(minor):
		c.Status, c.Message = CheckOK, fmt.Sprintf("Kubernetes %s.%d is supported by Istio %s (%s)", v.Major, minor, rel.Minor, rel.Range())
	default:
		c.Status = CheckFailed
		c.Message = fmt.Sprintf("Kubernetes %s.%d is not supported by Istio %s (%s)", v.Major, minor, rel.Minor, rel.Range())
		c.Fix = fmt.Sprintf("install an Istio release that supports Kubernetes 1.%d with --version, or upgrade the cluster", minor)
	}
	return c
}

// installPermission is one request the install makes.
type installPermission struct {
	group, resource string
	namespaced      bool
}

var installPermissions = []installPermission{
	{"apiextensions.k8s.io", "customresourcedefinitions", false},
	{"rbac.authorization.k8s.io", "clusterroles", false},
	{"rbac.authorization.k8s.io", "clusterrolebindings", false},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", false},
	{"admissionregistration.k8s.io", "validatingwebhookconfigurations", false},
	{"", "namespaces", false},
	{"apps", "deployments", true},
	{"", "services", true},
	{"", "serviceaccounts", true},
	{"", "configmaps", true},
	{"", "secrets", true}, // Helm stores its releases in Secrets
	{"rbac.authorization.k8s.io", "roles", true},
	{"rbac.authorization.k8s.io", "rolebindings", true},
	{"policy", "poddisruptionbudgets", true},
	{"autoscaling", "horizontalpodautoscalers", true},
	{"telemetry.istio.io", "telemetries", true},
}

func (pf *Preflight) permissions(ctx context.Context) []Check {
	namespaces := []string{pf.Profile.Namespace}
	if pf.Profile.Gateway && pf.Profile.GatewayNamespace != pf.Profile.Namespace {
		namespaces = append(namespaces, pf.Profile.GatewayNamespace)
	}
	var denied []string
	asked := 0
	for _, p := range installPermissions {
		scopes := []string{""}
		if p.namespaced {
			scopes = namespaces
		}
		for _, ns := range scopes {
			for _, verb := range []string{"create", "patch"} {
				asked++
				r, err := pf.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
					Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
						Namespace: ns, Verb: verb, Group: p.group, Resource: p.resource,
					}},
				}, metav1.CreateOptions{})
				if err != nil {
					return []Check{{Category: CategoryPermissions, Status: CheckWarning, Message: "permissions could not be checked: " + err.Error()}}
				}
				if !r.Status.Allowed {
					res := p.resource
					if p.group != "" {
						res += "." + p.group
					}
					if ns != "" {
						res += " in " + ns
					}
					denied = append(denied, verb+" "+res)
				}
			}
		}
	}
	if len(denied) == 0 {
		return []Check{{Category: CategoryPermissions, Status: CheckOK, Message: fmt.Sprintf("the current user may create and patch everything the install makes (%d checks)", asked)}}
	}
	return []Check{{Category: CategoryPermissions, Status: CheckFailed,
		Message: fmt.Sprintf("the current user may not %s", strings.Join(denied, ", ")),
		Fix:     "installing Istio needs cluster-admin (its CRDs, webhooks and cluster roles are cluster-scoped): run it as a cluster administrator"}}
}

var istiodSelector = "app=istiod"

// existing finds control planes and Istio CRDs already in the cluster.
func (pf *Preflight) existing(ctx context.Context) []Check {
	var out []Check
	ds, err := pf.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: istiodSelector})
	if err != nil {
		return []Check{{Category: CategoryExisting, Status: CheckWarning, Message: "control planes could not be listed: " + err.Error()}}
	}
	want := revisionOf(pf.Profile.Revision)
	for _, d := range ds.Items {
		rev := revisionOf(d.Labels["istio.io/rev"])
		what := fmt.Sprintf("istiod %s (revision %s) in %s", imageTag(&d), rev, d.Namespace)
		ours := pf.ownRelease(ctx, &d)
		switch {
		case rev != want:
			out = append(out, Check{Category: CategoryExisting, Status: CheckOK, Message: what + " runs beside this one: a different revision"})
		case ours:
			out = append(out, Check{Category: CategoryExisting, Status: CheckOK, Message: what + " was installed by kubectl-mesh: this install upgrades it"})
		default:
			out = append(out, Check{Category: CategoryExisting, Status: CheckFailed,
				Message: what + " was installed by another tool (" + installer(&d) + "): kubectl-mesh does not take it over",
				Fix:     "keep managing it with the tool that installed it (kubectl mesh status, inject, mtls, canary and why-slow work on any Istio), or uninstall it first; a revision beside it does not help, as Istio's CRDs (the base chart) are shared"})
		}
	}
	out = append(out, pf.webhook(ctx)...)
	crds, err := pf.Dynamic.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		return append(out, Check{Category: CategoryExisting, Status: CheckWarning, Message: "CRDs could not be listed: " + err.Error()})
	}
	var istio, foreign []string
	for _, crd := range crds.Items {
		if !strings.HasSuffix(crd.GetName(), ".istio.io") {
			continue
		}
		istio = append(istio, crd.GetName())
		a := crd.GetAnnotations()
		if a["meta.helm.sh/release-name"] != pf.Profile.ReleaseName(ChartBase) || a["meta.helm.sh/release-namespace"] != pf.Profile.Namespace || !pf.ownReleaseName(ctx, pf.Profile.Namespace, pf.Profile.ReleaseName(ChartBase)) {
			foreign = append(foreign, crd.GetName())
		}
	}
	sort.Strings(foreign)
	switch {
	case len(istio) == 0 && len(ds.Items) == 0:
		out = append(out, Check{Category: CategoryExisting, Status: CheckOK, Message: "no Istio control plane or CRDs: a fresh install"})
	case len(foreign) > 0 && pf.ForeignCRDsOK:
		out = append(out, Check{Category: CategoryExisting, Status: CheckOK, Message: fmt.Sprintf("%d of Istio's CRDs are installed: istioctl install updates them", len(istio))})
	case len(foreign) > 0:
		out = append(out, Check{Category: CategoryExisting, Status: CheckFailed,
			Message: fmt.Sprintf("%d of Istio's CRDs were installed by another tool (%s)", len(foreign), strings.Join(first(foreign, 3), ", ")),
			Fix:     "the base chart cannot adopt them: keep the Istio that installed them and use kubectl mesh inject, mtls and canary on it, or remove that Istio first"})
	case len(istio) > 0:
		out = append(out, Check{Category: CategoryExisting, Status: CheckOK, Message: fmt.Sprintf("Istio's %d CRDs belong to kubectl-mesh's base release", len(istio))})
	}
	return out
}

// webhook checks that the sidecar injector's webhook configuration the istiod chart makes for
// this revision is absent or the chart's own: Helm cannot adopt another's, and would stop the
// install halfway, after the base chart.
func (pf *Preflight) webhook(ctx context.Context) []Check {
	name := "istio-sidecar-injector"
	if pf.Profile.Revision != "" {
		name += "-" + pf.Profile.Revision
	}
	w, err := pf.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return []Check{{Category: CategoryExisting, Status: CheckWarning, Message: "webhook " + name + " could not be read: " + err.Error()}}
	}
	a := w.GetAnnotations()
	if a["meta.helm.sh/release-name"] == pf.Profile.ReleaseName(ChartIstiod) && a["meta.helm.sh/release-namespace"] == pf.Profile.Namespace &&
		pf.ownReleaseName(ctx, pf.Profile.Namespace, pf.Profile.ReleaseName(ChartIstiod)) {
		return nil
	}
	return []Check{{Category: CategoryExisting, Status: CheckFailed,
		Message: "the MutatingWebhookConfiguration " + name + " exists and was not made by kubectl-mesh's istiod release: the istiod chart cannot take it over",
		Fix:     "remove it if it is left from an uninstalled Istio (kubectl delete mutatingwebhookconfiguration " + name + "); if an Istio still uses it, keep managing that Istio with its own tool"}}
}

func revisionOf(r string) string {
	if r == "" {
		return "default"
	}
	return r
}

func imageTag(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "discovery" {
			if i := strings.LastIndexByte(c.Image, ':'); i >= 0 {
				return c.Image[i+1:]
			}
		}
	}
	return "of an unknown version"
}

func installer(d *appsv1.Deployment) string {
	if r := d.Annotations["meta.helm.sh/release-name"]; r != "" {
		return "Helm release " + r
	}
	if d.Labels["operator.istio.io/component"] != "" || d.Labels["install.operator.istio.io/owning-resource"] != "" {
		return "istioctl"
	}
	return "unknown"
}

// ownRelease reports whether the Helm release that made the object is kubectl-mesh's.
func (pf *Preflight) ownRelease(ctx context.Context, d *appsv1.Deployment) bool {
	return pf.ownReleaseName(ctx, d.Annotations["meta.helm.sh/release-namespace"], d.Annotations["meta.helm.sh/release-name"])
}

// ownReleaseName reads the labels of a Helm release's stored revisions (Helm keeps a release's
// labels on its Secrets).
func (pf *Preflight) ownReleaseName(ctx context.Context, ns, name string) bool {
	if ns == "" || name == "" {
		return false
	}
	l, err := pf.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,status=deployed,name=" + name})
	if err != nil || len(l.Items) == 0 {
		return false
	}
	return l.Items[0].Labels[apply.ManagedByLabel] == apply.ManagedBy
}

// capacity computes the sidecar tax: the pods of the namespaces to inject times the proxy's
// requests, on each node, against what the node can give.
func (pf *Preflight) capacity(ctx context.Context) []Check {
	fail := func(err error) []Check {
		return []Check{{Category: CategoryCapacity, Status: CheckWarning, Message: "the sidecar tax could not be computed: " + err.Error()}}
	}
	toInject := map[string]bool{}
	for _, ns := range pf.InjectNamespaces {
		toInject[ns] = true
	}
	nsl, err := pf.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail(err)
	}
	for _, ns := range nsl.Items {
		if inject.NamespaceRevision(ns.Labels) == revisionOf(pf.Profile.Revision) {
			toInject[ns.Name] = true
		}
	}
	if len(toInject) == 0 {
		return []Check{{Category: CategoryCapacity, Status: CheckOK, Message: "no namespace is labelled or named for injection: no sidecar tax yet",
			Fix: "name the namespaces you will inject with --inject-namespaces to see whether their sidecars fit"}}
	}
	nodes, err := pf.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail(err)
	}
	pods, err := pf.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fail(err)
	}
	reqCPU, reqMem, err := pf.Profile.ProxyRequests(pf.Overrides)
	if err != nil {
		return fail(err)
	}
	proxyCPU, proxyMem := resource.MustParse(orZero(reqCPU)), resource.MustParse(orZero(reqMem))
	type load struct {
		cpu, mem resource.Quantity
		injected int
	}
	byNode := map[string]*load{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		l := byNode[p.Spec.NodeName]
		if l == nil {
			l = &load{}
			byNode[p.Spec.NodeName] = l
		}
		for _, c := range p.Spec.Containers {
			l.cpu.Add(*c.Resources.Requests.Cpu())
			l.mem.Add(*c.Resources.Requests.Memory())
		}
		if toInject[p.Namespace] && !hasSidecar(p) {
			l.injected++
			l.cpu.Add(proxyCPU)
			l.mem.Add(proxyMem)
		}
	}
	var out []Check
	for _, n := range nodes.Items {
		l := byNode[n.Name]
		if l == nil {
			l = &load{}
		}
		allocCPU, allocMem := n.Status.Allocatable.Cpu(), n.Status.Allocatable.Memory()
		cpuShare := float64(l.cpu.MilliValue()) / float64(max(allocCPU.MilliValue(), 1))
		memShare := float64(l.mem.Value()) / float64(max(allocMem.Value(), 1))
		msg := fmt.Sprintf("%s: %.1f of %.1f CPUs and %.1f of %.1f GiB requested after injecting %d pods (%s CPU and %s each)",
			n.Name, float64(l.cpu.MilliValue())/1000, float64(allocCPU.MilliValue())/1000,
			float64(l.mem.Value())/(1<<30), float64(allocMem.Value())/(1<<30), l.injected, proxyCPU.String(), proxyMem.String())
		c := Check{Category: CategoryCapacity, Status: CheckOK, Message: msg}
		switch {
		case cpuShare > 1 || memShare > 1:
			c.Status = CheckFailed
			c.Fix = "the restarted pods will not fit: add nodes, lower the proxy's requests (--set istiod.global.proxy.resources.requests.cpu=50m), or inject fewer namespaces at once"
		case cpuShare > 0.9 || memShare > 0.9:
			c.Status = CheckWarning
			c.Fix = "the node is over 90% requested after injection: a rollout surge may not fit"
		}
		out = append(out, c)
	}
	return out
}

func orZero(q string) string {
	if q == "" {
		return "0"
	}
	return q
}

func hasSidecar(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.Containers...), p.Spec.InitContainers...) {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	return false
}

func first(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(ss[:n:n], fmt.Sprintf("and %d more", len(ss)-n))
}
