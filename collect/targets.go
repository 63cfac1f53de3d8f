package collect

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/kubernetes"
)

// Targets say which pods to diagnose, as kubectl users name them.
type Targets struct {
	// Args are kubectl-style names: pod/NAME, NAME (a pod), deploy/NAME, sts/NAME, ds/NAME,
	// rs/NAME, job/NAME or svc/NAME (the pods it selects). Empty means every pod of the
	// namespace (or of all namespaces).
	Args []string
	// Namespace is -n (or the kubeconfig's); AllNamespaces is -A.
	Namespace     string
	AllNamespaces bool
	// Selector is -l: only pods (or workloads) with these labels.
	Selector string
}

// Sweep reports whether the targets name a set of pods rather than one pod.
func (t Targets) Sweep() bool {
	if len(t.Args) != 1 {
		return true
	}
	kind, _, ok := strings.Cut(t.Args[0], "/")
	return ok && !isPodKind(kind)
}

func isPodKind(kind string) bool {
	switch strings.ToLower(kind) {
	case "pod", "pods", "po":
		return true
	}
	return false
}

// Resolved are the pods the targets name.
type Resolved struct {
	// Meshed are the pods with an istio-proxy sidecar, sorted by namespace and name.
	Meshed []corev1.Pod
	// Unmeshed are the pods without one, which a sweep skips and names.
	Unmeshed []corev1.Pod
}

// ResolveTargets turns kubectl-style names into pods, with cli-runtime's resource builder (so
// kinds, short names and -l/-n/-A mean what they mean to kubectl) and, for workloads and
// Services, a list of the pods their selector matches. A single pod named without a sidecar is
// an error that says what to do; in a set it is skipped.
func ResolveTargets(ctx context.Context, getter genericclioptions.RESTClientGetter, client kubernetes.Interface, t Targets) (*Resolved, error) {
	args := t.Args
	switch {
	case len(args) == 0:
		args = []string{"pods"}
	default:
		args = make([]string, len(t.Args))
		for i, a := range t.Args {
			if !strings.Contains(a, "/") {
				a = "pod/" + a // a bare name is a pod, as in kubectl logs and exec
			}
			args[i] = a
		}
	}
	b := resource.NewBuilder(getter).
		Unstructured().
		NamespaceParam(t.Namespace).DefaultNamespace().
		AllNamespaces(t.AllNamespaces).
		ResourceTypeOrNameArgs(true, args...).
		ContinueOnError().
		Flatten()
	if t.Selector != "" {
		b = b.LabelSelectorParam(t.Selector)
	}
	infos, err := b.Do().Infos()
	if err != nil {
		return nil, fmt.Errorf("finding the pods to diagnose: %w", err)
	}
	seen := map[string]bool{}
	res := &Resolved{}
	add := func(p corev1.Pod) {
		key := p.Namespace + "/" + p.Name
		if seen[key] {
			return
		}
		seen[key] = true
		if checkSidecar(&p) == nil || ambientPod(&p, nil) {
			res.Meshed = append(res.Meshed, p)
		} else {
			res.Unmeshed = append(res.Unmeshed, p)
		}
	}
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("%s %s: unexpected object %T", info.Mapping.Resource.Resource, info.Name, info.Object)
		}
		if u.GetKind() == "Pod" {
			var p corev1.Pod
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &p); err != nil {
				return nil, fmt.Errorf("pod %s/%s: %w", u.GetNamespace(), u.GetName(), err)
			}
			add(p)
			continue
		}
		sel, err := podSelector(u)
		if err != nil {
			return nil, err
		}
		pods, err := client.CoreV1().Pods(u.GetNamespace()).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, fmt.Errorf("pods of %s %s/%s: %w", strings.ToLower(u.GetKind()), u.GetNamespace(), u.GetName(), err)
		}
		if len(pods.Items) == 0 {
			return nil, fmt.Errorf("%s %s/%s has no pods (selector %s); scale it up or check its selector",
				strings.ToLower(u.GetKind()), u.GetNamespace(), u.GetName(), sel)
		}
		for _, p := range pods.Items {
			add(p)
		}
	}
	ambientByNamespace(ctx, client, res)
	sortPods(res.Meshed)
	sortPods(res.Unmeshed)
	if !t.Sweep() && len(res.Meshed) == 0 && len(res.Unmeshed) == 1 {
		return nil, checkSidecar(&res.Unmeshed[0])
	}
	return res, nil
}

// podSelector returns the selector of the pods a workload or Service runs or selects.
func podSelector(u *unstructured.Unstructured) (labels.Selector, error) {
	what := fmt.Sprintf("%s %s/%s", strings.ToLower(u.GetKind()), u.GetNamespace(), u.GetName())
	if u.GetKind() == "Service" {
		m, _, err := unstructured.NestedStringMap(u.Object, "spec", "selector")
		if err != nil || len(m) == 0 {
			return nil, fmt.Errorf("%s has no pod selector (an ExternalName or manually managed Service): name its pods instead", what)
		}
		return labels.SelectorFromSet(m), nil
	}
	raw, ok, err := unstructured.NestedMap(u.Object, "spec", "selector")
	if err != nil || !ok {
		return nil, fmt.Errorf("%s has no pod selector: pass pod/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME, job/NAME or svc/NAME", what)
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil, fmt.Errorf("%s: selector: %w", what, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil, fmt.Errorf("%s: selector: %w", what, err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("%s has an empty selector, which would match every pod: name its pods instead", what)
	}
	return sel, nil
}

func sortPods(pods []corev1.Pod) {
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
}

// ambientByNamespace moves to Meshed the pods without a sidecar whose namespace puts them in
// the ambient mesh (istio.io/dataplane-mode=ambient), which their diagnosis then checks: each
// namespace is read once, and one that cannot be read leaves its pods where they are.
func ambientByNamespace(ctx context.Context, client kubernetes.Interface, res *Resolved) {
	labels := map[string]map[string]string{}
	var still []corev1.Pod
	for _, p := range res.Unmeshed {
		l, ok := labels[p.Namespace]
		if !ok {
			if ns, err := client.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{}); err == nil {
				l = ns.Labels
			}
			labels[p.Namespace] = l
		}
		if ambientPod(&p, l) {
			res.Meshed = append(res.Meshed, p)
		} else {
			still = append(still, p)
		}
	}
	res.Unmeshed = still
}
