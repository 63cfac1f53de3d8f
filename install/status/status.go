// Package status reports the health of the mesh's control plane as checks: each istiod and
// whether it is ready, the sidecar injector's webhooks and whether istiod has filled in their
// CA bundle, Istio's CRDs and their versions, the revision each injected namespace asks for (and
// whether a control plane serves it), and the sidecars by version and revision, ready or not
// (a sidecar is ready once istiod has sent it its configuration).
package status

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/inject"
)

// Categories of the status checks.
const (
	CategoryControlPlane = "control plane"
	CategoryWebhooks     = "sidecar injector"
	CategoryCRDs         = "CRDs"
	CategoryNamespaces   = "injected namespaces"
	CategoryProxies      = "proxies"
)

// Status reads the mesh's state.
type Status struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
}

// Run returns every check; a part that cannot be read is a warning, not a failure of the rest.
func (s *Status) Run(ctx context.Context) []check.Check {
	var out []check.Check
	revisions, cp := s.controlPlane(ctx)
	out = append(out, cp...)
	out = append(out, s.webhooks(ctx)...)
	out = append(out, s.crds(ctx)...)
	out = append(out, s.namespaces(ctx, revisions)...)
	out = append(out, s.proxies(ctx)...)
	out = append(out, s.ambient(ctx)...)
	return out
}

func warn(cat string, what string, err error) []check.Check {
	return []check.Check{{Category: cat, Status: check.Warning, Message: what + " could not be read: " + err.Error()}}
}

func revisionOf(labels map[string]string) string {
	if r := labels[inject.LabelRevision]; r != "" {
		return r
	}
	return "default"
}

// controlPlane reports each istiod and returns the revisions that have a ready one.
func (s *Status) controlPlane(ctx context.Context) (map[string]bool, []check.Check) {
	ready := map[string]bool{}
	ds, err := s.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return ready, warn(CategoryControlPlane, "istiod deployments", err)
	}
	if len(ds.Items) == 0 {
		return ready, []check.Check{{Category: CategoryControlPlane, Status: check.Failed, Message: "no istiod runs in the cluster",
			Fix: "install the control plane: kubectl mesh install"}}
	}
	var out []check.Check
	for _, d := range ds.Items {
		rev := revisionOf(d.Labels)
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		v := version(d.Spec.Template.Spec.Containers, "discovery")
		if v == "" {
			v = "of an unknown version"
		}
		msg := fmt.Sprintf("istiod %s (revision %s) in %s: %d of %d replicas ready", v, rev, d.Namespace, d.Status.ReadyReplicas, want)
		c := check.Check{Category: CategoryControlPlane, Status: check.OK, Message: msg}
		switch {
		case d.Status.ReadyReplicas == 0:
			c.Status, c.Fix = check.Failed, fmt.Sprintf("no sidecar of revision %s gets configuration: kubectl get pods -n %s -l app=istiod and kubectl logs -n %s deploy/%s", rev, d.Namespace, d.Namespace, d.Name)
		case d.Status.ReadyReplicas < want:
			c.Status, c.Fix = check.Warning, fmt.Sprintf("kubectl describe deploy -n %s %s", d.Namespace, d.Name)
		}
		if d.Status.ReadyReplicas > 0 {
			ready[rev] = true
		}
		out = append(out, c)
	}
	return ready, out
}

// version is the image tag of the named container, "of an unknown version" without a tag, ""
// when there is no such container.
func version(cs []corev1.Container, name string) string {
	for _, c := range cs {
		if c.Name == name {
			if i := strings.LastIndexByte(c.Image, ':'); i >= 0 && !strings.Contains(c.Image[i:], "/") {
				return c.Image[i+1:]
			}
			return "of an unknown version"
		}
	}
	return ""
}

// webhooks reports the injector's MutatingWebhookConfigurations.
func (s *Status) webhooks(ctx context.Context) []check.Check {
	l, err := s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return warn(CategoryWebhooks, "mutating webhooks", err)
	}
	var out []check.Check
	for _, m := range l.Items {
		if !strings.HasPrefix(m.Name, "istio-sidecar-injector") && !strings.HasPrefix(m.Name, "istio-revision-tag") {
			continue
		}
		empty := 0
		for _, w := range m.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				empty++
			}
		}
		c := check.Check{Category: CategoryWebhooks, Status: check.OK,
			Message: fmt.Sprintf("%s (revision %s): %d webhooks configured", m.Name, revisionOf(m.Labels), len(m.Webhooks))}
		if empty > 0 {
			c.Status = check.Failed
			c.Message = fmt.Sprintf("%s (revision %s): %d of %d webhooks have no CA bundle: the API server cannot call the injector, and pods are created without sidecars (or not at all)", m.Name, revisionOf(m.Labels), empty, len(m.Webhooks))
			c.Fix = "istiod fills the CA bundle in when it starts: check that it runs and may update MutatingWebhookConfigurations"
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		out = append(out, check.Check{Category: CategoryWebhooks, Status: check.Failed, Message: "no sidecar injector webhook is configured: new pods get no sidecar",
			Fix: "install the control plane: kubectl mesh install"})
	}
	return out
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crds reports Istio's CRDs: how many, and the versions served for each API group.
func (s *Status) crds(ctx context.Context) []check.Check {
	l, err := s.Dynamic.Resource(crdGVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		return warn(CategoryCRDs, "CRDs", err)
	}
	// Per group: the served versions, and how many of its kinds store each (Istio's kinds of
	// one group do not all store the same version).
	type group struct {
		kinds   int
		served  map[string]bool
		storing map[string]int
	}
	groups := map[string]*group{}
	count := 0
	for _, crd := range l.Items {
		name, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		if !strings.HasSuffix(name, ".istio.io") {
			continue
		}
		count++
		g := groups[name]
		if g == nil {
			g = &group{served: map[string]bool{}, storing: map[string]int{}}
			groups[name] = g
		}
		g.kinds++
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			m, _ := v.(map[string]any)
			version, _ := m["name"].(string)
			if served, _ := m["served"].(bool); served {
				g.served[version] = true
			}
			if storage, _ := m["storage"].(bool); storage {
				g.storing[version]++
			}
		}
	}
	if count == 0 {
		return []check.Check{{Category: CategoryCRDs, Status: check.Failed, Message: "Istio's CRDs are not installed", Fix: "kubectl mesh install"}}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	out := []check.Check{{Category: CategoryCRDs, Status: check.OK, Message: fmt.Sprintf("%d Istio CRDs in %d API groups", count, len(groups))}}
	for _, name := range names {
		g := groups[name]
		var vs []string
		for v := range g.served {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for i, v := range vs {
			switch n := g.storing[v]; {
			case n == g.kinds:
				vs[i] += " (storage)"
			case n > 0:
				vs[i] += fmt.Sprintf(" (storage of %d of %d kinds)", n, g.kinds)
			}
		}
		out = append(out, check.Check{Category: CategoryCRDs, Status: check.OK, Message: name + ": " + strings.Join(vs, ", ")})
	}
	return out
}

// namespaces reports the revision each injected namespace asks for.
func (s *Status) namespaces(ctx context.Context, ready map[string]bool) []check.Check {
	l, err := s.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return warn(CategoryNamespaces, "namespaces", err)
	}
	var out []check.Check
	for _, ns := range l.Items {
		rev := inject.NamespaceRevision(ns.Labels)
		if rev == "" {
			continue
		}
		c := check.Check{Category: CategoryNamespaces, Status: check.OK, Message: fmt.Sprintf("%s: revision %s", ns.Name, rev)}
		if !ready[rev] {
			c.Status = check.Failed
			c.Message += ", which no ready istiod serves: its new pods get no sidecar"
			c.Fix = fmt.Sprintf("install that revision (kubectl mesh install --revision %s) or move the namespace: kubectl mesh inject %s --revision R", rev, ns.Name)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		out = append(out, check.Check{Category: CategoryNamespaces, Status: check.Warning, Message: "no namespace is labelled for injection",
			Fix: "kubectl mesh inject NAMESPACE"})
	}
	return out
}

// proxies counts the sidecars by proxy version and revision, and how many are ready.
func (s *Status) proxies(ctx context.Context) []check.Check {
	l, err := s.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return warn(CategoryProxies, "pods", err)
	}
	type group struct{ all, ready int }
	groups := map[string]*group{}
	for _, p := range l.Items {
		if p.Status.Phase != corev1.PodRunning || p.Labels["app"] == "ztunnel" || p.Labels["gateway.networking.k8s.io/gateway-class-name"] == "istio-waypoint" {
			continue // ztunnel's and waypoints' container is istio-proxy too, but they are no sidecars
		}
		containers := append(append([]corev1.Container(nil), p.Spec.Containers...), p.Spec.InitContainers...)
		if v := version(containers, "istio-proxy"); v != "" {
			key := fmt.Sprintf("proxy %s, revision %s", v, inject.SidecarRevision(&p))
			g := groups[key]
			if g == nil {
				g = &group{}
				groups[key] = g
			}
			g.all++
			for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.ContainerStatuses...), p.Status.InitContainerStatuses...) {
				if cs.Name == "istio-proxy" && cs.Ready {
					g.ready++
				}
			}
		}
	}
	if len(groups) == 0 {
		return []check.Check{{Category: CategoryProxies, Status: check.Warning, Message: "no pod runs with a sidecar", Fix: "kubectl mesh inject NAMESPACE"}}
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []check.Check
	for _, k := range keys {
		g := groups[k]
		c := check.Check{Category: CategoryProxies, Status: check.OK, Message: fmt.Sprintf("%s: %d of %d connected and ready", k, g.ready, g.all)}
		if g.ready < g.all {
			c.Status = check.Warning
			c.Fix = "kubectl mesh why-slow -A shows why each one is not (a sidecar is ready once istiod has configured it)"
		}
		out = append(out, c)
	}
	return out
}
