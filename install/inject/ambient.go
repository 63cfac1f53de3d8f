package inject

import (
	"context"
	"fmt"
	"sort"
	"time"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// Ambient mode: the namespace's label puts its pods in the mesh without a sidecar; istio-cni
// redirects each running pod to the ztunnel on its node and marks it, without a restart.
const ()

// The states of a pod after the namespace moved to ambient mode.
const (
	AmbientEnrolled    = "enrolled"
	AmbientPending     = "pending: no ztunnel accepted it"
	AmbientNotEnrolled = "not enrolled"
	AmbientSidecar     = "keeps its sidecar until it restarts"
	AmbientHostNetwork = "host network: never redirected"
	AmbientOptedOut    = "opted out (istio.io/dataplane-mode=none)"
)

// AmbientPod is one pod of the namespace and what the ambient mesh does with it.
type AmbientPod struct {
	Pod   string `json:"pod"`
	State string `json:"state"`
}

// AmbientResult is what inject --ambient did.
type AmbientResult struct {
	Namespace string       `json:"namespace"`
	Label     apply.Result `json:"label"`
	Pods      []AmbientPod `json:"pods"`
	// Unenrolled counts the pods the mesh should carry and does not after the wait.
	Unenrolled int `json:"unenrolled"`
}

// RunAmbient labels the namespace istio.io/dataplane-mode=ambient and waits until istio-cni has
// enrolled its running pods, which need no restart. A namespace labelled for sidecar injection
// is refused unless ForceConflicts, which removes those labels: its pods keep their sidecars
// until they restart, and new ones come up in ambient mode.
func RunAmbient(ctx context.Context, o Options) (*AmbientResult, error) {
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": o.Namespace, "labels": map[string]any{label.IoIstioDataplaneMode.Name: "ambient"}}}}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Progress, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.ForceConflicts}}
	res := &AmbientResult{Namespace: o.Namespace}
	if o.DryRun == apply.DryRunClient {
		if o.Manifests != nil {
			a.Out = o.Manifests
		}
		r, err := a.ApplyFields(ctx, ns)
		res.Label = r
		return res, err
	}
	if err := o.leaveSidecarInjection(ctx); err != nil {
		return nil, err
	}
	r, err := a.ApplyFields(ctx, ns)
	if err != nil {
		return nil, err
	}
	res.Label = r
	deadline := time.Now().Add(o.Timeout)
	for {
		pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("pods of %s: %w", o.Namespace, err)
		}
		res.Pods, res.Unenrolled = ambientStates(pods.Items)
		if res.Unenrolled == 0 || o.DryRun != apply.DryRunNone || time.Now().After(deadline) {
			return res, nil
		}
		o.progress("%d pods of %s not enrolled yet by istio-cni", res.Unenrolled, o.Namespace)
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// leaveSidecarInjection refuses a namespace labelled for sidecar injection, or with
// ForceConflicts removes those labels.
func (o *Options) leaveSidecarInjection(ctx context.Context) error {
	cur, err := o.Client.CoreV1().Namespaces().Get(ctx, o.Namespace, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	var labels []string
	for _, l := range []string{LabelInjection, LabelRevision} {
		if _, ok := cur.Labels[l]; ok {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return nil
	}
	if !o.ForceConflicts {
		return fmt.Errorf("namespace %s is labelled for sidecar injection (%v): its new pods would get sidecars, which ambient mode leaves alone; rerun with --force-conflicts to remove the labels (running pods keep their sidecars until they restart)", o.Namespace, labels)
	}
	patch := `{"metadata":{"labels":{`
	for i, l := range labels {
		if i > 0 {
			patch += ","
		}
		patch += fmt.Sprintf("%q:null", l)
	}
	patch += "}}}"
	po := metav1.PatchOptions{FieldManager: apply.FieldManager}
	if o.DryRun == apply.DryRunServer {
		po.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := o.Client.CoreV1().Namespaces().Patch(ctx, o.Namespace, types.MergePatchType, []byte(patch), po); err != nil {
		return fmt.Errorf("removing %v from namespace %s: %w", labels, o.Namespace, err)
	}
	return nil
}

// ambientStates says what the ambient mesh does with each running pod, and counts those it
// should carry and does not.
func ambientStates(pods []corev1.Pod) ([]AmbientPod, int) {
	var out []AmbientPod
	unenrolled := 0
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		state := AmbientNotEnrolled
		switch {
		case hasSidecar(p):
			state = AmbientSidecar
		case p.Spec.HostNetwork:
			state = AmbientHostNetwork
		case p.Labels[label.IoIstioDataplaneMode.Name] == "none":
			state = AmbientOptedOut
		case p.Annotations[annotation.AmbientRedirection.Name] == "enabled":
			state = AmbientEnrolled
		case p.Annotations[annotation.AmbientRedirection.Name] == "pending":
			state = AmbientPending
		}
		if state == AmbientNotEnrolled || state == AmbientPending {
			unenrolled++
		}
		out = append(out, AmbientPod{Pod: p.Name, State: state})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out, unenrolled
}
