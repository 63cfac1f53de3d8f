// Package inject turns sidecar injection on for a namespace: it labels the namespace for the
// default or a revisioned control plane, restarts the workloads whose pods lack the sidecar (as
// `kubectl rollout restart` does), waits until their pods run with it, and explains the pods
// that do not (a sidecar not ready, OOM-killed, a node short of memory) with the same engine as
// why-slow. Workloads already meshed by the right revision are left alone, so a second run
// changes nothing.
package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// The labels and annotations Istio's injection reads and writes.
const (
	LabelInjection   = "istio-injection"
	LabelRevision    = "istio.io/rev"
	annotationStatus = "sidecar.istio.io/status"
	annotationInject = "sidecar.istio.io/inject"
	// AnnotationRestartedAt is what kubectl rollout restart sets on a pod template.
	AnnotationRestartedAt = "kubectl.kubernetes.io/restartedAt"
	sidecar               = "istio-proxy"
)

// Options say what to inject and how.
type Options struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Namespace to inject; Revision the control plane ("" for the default revision).
	Namespace, Revision string
	// Restart restarts the workloads whose pods lack the sidecar (false only labels).
	Restart bool
	// Timeout bounds the wait for the restarted pods.
	Timeout        time.Duration
	DryRun         apply.DryRun
	ForceConflicts bool
	Progress       io.Writer
	// Manifests receives what a client dry run of RunAmbient would apply (Progress when nil).
	Manifests io.Writer
	Now       func() time.Time
	// Poll is the interval of the wait (500 ms when 0).
	Poll time.Duration
}

// Workload is what happened to one Deployment, StatefulSet or DaemonSet.
type Workload struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Action is "restarted", "would restart", "already meshed", "opted out" or "no pods".
	Action string `json:"action"`
	// Pods and Meshed count its pods and those running with a ready sidecar after the wait.
	Pods   int `json:"pods"`
	Meshed int `json:"meshed"`
}

// Problem is a pod that is not running with a ready sidecar, and why.
type Problem struct {
	Pod      string `json:"pod"`
	Workload string `json:"workload"`
	// Ready is "1/2" as kubectl get pods prints it, or the pod's phase.
	Ready  string `json:"ready"`
	Reason string `json:"reason"`
	Fix    string `json:"fix,omitempty"`
	Code   string `json:"code,omitempty"`
}

// Result is what inject did.
type Result struct {
	Namespace string         `json:"namespace"`
	Revision  string         `json:"revision"`
	Label     apply.Result   `json:"label"`
	Workloads []Workload     `json:"workloads"`
	Problems  []Problem      `json:"problems,omitempty"`
	Restarts  []apply.Result `json:"restarts,omitempty"`
}

func (o *Options) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// Run labels the namespace, restarts what needs it and waits.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	rev := o.Revision
	if rev == "" {
		rev = "default"
	}
	res := &Result{Namespace: o.Namespace, Revision: rev}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Progress, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.ForceConflicts}}

	label, err := o.Label(ctx, a)
	if err != nil {
		return nil, err
	}
	res.Label = label
	workloads, err := o.workloads(ctx)
	if err != nil {
		return nil, err
	}
	// The restart annotation is a trigger, owned by whoever restarted last (kubectl rollout
	// restart's manager, say): taking it over is what a restart is.
	restarter := *a
	restarter.ForceConflicts = true
	var restarted, verify []*workload
	for _, w := range workloads {
		out := Workload{Kind: w.kind, Name: w.name, Pods: len(w.pods)}
		switch {
		case w.optedOut:
			out.Action = "opted out"
		case len(w.pods) == 0:
			out.Action = "no pods"
		case !w.needsRestart(rev):
			out.Action = "already meshed"
			verify = append(verify, w)
		case w.restarting && !o.rolledOutNow(ctx, w):
			// A restart (this tool's, or kubectl rollout restart) is still rolling out: another
			// would only start another rollout.
			out.Action = "rollout in progress"
			verify = append(verify, w)
		case !o.Restart:
			out.Action = "not restarted (--no-restart)"
		default:
			w.restartedAt = o.Now()
			r, err := restarter.ApplyFields(ctx, w.restartPatch(w.restartedAt))
			if err != nil {
				return nil, fmt.Errorf("restarting %s/%s: %w", strings.ToLower(w.kind), w.name, err)
			}
			res.Restarts = append(res.Restarts, r)
			out.Action = "restarted"
			if o.DryRun != apply.DryRunNone {
				out.Action = "would restart"
			} else {
				restarted = append(restarted, w)
				o.progress("restarted %s/%s (%d pods)", strings.ToLower(w.kind), w.name, len(w.pods))
			}
		}
		res.Workloads = append(res.Workloads, out)
	}
	if o.DryRun == apply.DryRunNone && len(restarted)+len(verify) > 0 {
		// Meshed workloads are checked too: a second run still says which pods are not well,
		// but waits for them only when it restarted something.
		timeout := o.Timeout
		if len(restarted) == 0 {
			timeout = 2 * o.Poll
		}
		problems, err := o.wait(ctx, append(restarted, verify...), rev, timeout)
		if err != nil {
			return nil, err
		}
		res.Problems = problems
		for i := range res.Workloads {
			for _, w := range append(restarted, verify...) {
				if res.Workloads[i].Kind == w.kind && res.Workloads[i].Name == w.name {
					res.Workloads[i].Pods, res.Workloads[i].Meshed = w.total, w.meshed
				}
			}
		}
	}
	return res, nil
}

// Label sets the namespace's injection label. istio-injection takes precedence over istio.io/rev
// in Istio's webhooks, so moving a namespace to a revision removes it, which only
// --force-conflicts may do when someone else set it.
func (o *Options) Label(ctx context.Context, a *apply.Applier) (apply.Result, error) {
	want := map[string]any{LabelInjection: "enabled"}
	if o.Revision != "" {
		want = map[string]any{LabelRevision: o.Revision}
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": o.Namespace, "labels": want}}}
	if o.DryRun == apply.DryRunClient {
		return a.ApplyFields(ctx, ns)
	}
	cur, err := o.Client.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{})
	if err != nil {
		return apply.Result{}, fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	if v, ok := cur.Labels[LabelInjection]; ok && o.Revision != "" {
		if !o.ForceConflicts {
			return apply.Result{}, fmt.Errorf("namespace %s has %s=%s, which takes precedence over %s=%s: remove it (kubectl label ns %s %s-) or rerun with --force-conflicts to have it removed",
				o.Namespace, LabelInjection, v, LabelRevision, o.Revision, o.Namespace, LabelInjection)
		}
		patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, LabelInjection))
		po := metav1.PatchOptions{FieldManager: apply.FieldManager}
		if o.DryRun == apply.DryRunServer {
			po.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := o.Client.CoreV1().Namespaces().Patch(ctx, o.Namespace, types.MergePatchType, patch, po); err != nil {
			return apply.Result{}, fmt.Errorf("removing %s from namespace %s: %w", LabelInjection, o.Namespace, err)
		}
	}
	return a.ApplyFields(ctx, ns)
}

// workload is a pod controller of the namespace and its pods.
type workload struct {
	kind, name string
	selector   labels.Selector
	optedOut   bool
	pods       []corev1.Pod
	// restarting says its pod template carries a restart annotation; restartedAt is when
	// this run restarted it.
	restarting  bool
	restartedAt time.Time
	// total and meshed are counted by the wait.
	total, meshed int
}

func (w *workload) needsRestart(rev string) bool {
	for i := range w.pods {
		if !hasSidecar(&w.pods[i]) || SidecarRevision(&w.pods[i]) != rev {
			return true
		}
	}
	return false
}

func (w *workload) restartPatch(now time.Time) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": w.kind,
		"metadata": map[string]any{"name": w.name, "namespace": w.pods[0].Namespace},
		"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
			"annotations": map[string]any{AnnotationRestartedAt: now.UTC().Format(time.RFC3339)},
		}}},
	}}
}

func hasSidecar(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.Containers...), p.Spec.InitContainers...) {
		if c.Name == sidecar {
			return true
		}
	}
	return false
}

// SidecarRevision is the revision that injected the pod's sidecar, from Istio's status
// annotation ("default" when it names none).
func SidecarRevision(p *corev1.Pod) string {
	var st struct {
		Revision string `json:"revision"`
	}
	_ = json.Unmarshal([]byte(p.Annotations[annotationStatus]), &st)
	if st.Revision == "" {
		if r := p.Labels[LabelRevision]; r != "" {
			return r
		}
		return "default"
	}
	return st.Revision
}

// workloads lists the namespace's Deployments, StatefulSets and DaemonSets with their pods.
func (o *Options) workloads(ctx context.Context) ([]*workload, error) {
	var out []*workload
	add := func(kind, name string, sel *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) error {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			return err
		}
		w := &workload{kind: kind, name: name, selector: s, restarting: tmpl.Annotations[AnnotationRestartedAt] != "",
			optedOut: tmpl.Annotations[annotationInject] == "false" || tmpl.Labels[annotationInject] == "false"}
		out = append(out, w)
		return nil
	}
	apps := o.Client.AppsV1()
	ds, err := apps.Deployments(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing deployments: %w", err)
	}
	for i := range ds.Items {
		d := &ds.Items[i]
		if err := add("Deployment", d.Name, d.Spec.Selector, &d.Spec.Template); err != nil {
			return nil, err
		}
	}
	ss, err := apps.StatefulSets(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing statefulsets: %w", err)
	}
	for i := range ss.Items {
		if err := add("StatefulSet", ss.Items[i].Name, ss.Items[i].Spec.Selector, &ss.Items[i].Spec.Template); err != nil {
			return nil, err
		}
	}
	dss, err := apps.DaemonSets(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing daemonsets: %w", err)
	}
	for i := range dss.Items {
		if err := add("DaemonSet", dss.Items[i].Name, dss.Items[i].Spec.Selector, &dss.Items[i].Spec.Template); err != nil {
			return nil, err
		}
	}
	pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	for _, w := range out {
		w.pods = podsOf(w, pods.Items)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

func podsOf(w *workload, pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && w.selector.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// NamespaceRevision is the revision a namespace's labels ask injection from: "default" for
// istio-injection=enabled, the istio.io/rev label's value, or "" when neither (or
// istio-injection=disabled) is set.
func NamespaceRevision(labels map[string]string) string {
	switch labels[LabelInjection] {
	case "enabled":
		return "default"
	case "disabled":
		return ""
	}
	return labels[LabelRevision]
}
