package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// wait polls until every restarted workload's rollout is done and its pods all run with a
// ready sidecar of the revision, twice in a row (a pod that flaps is not done), or until the
// timeout; then explains the pods that are not.
func (o *Options) wait(ctx context.Context, ws []*workload, rev string, timeout time.Duration) ([]Problem, error) {
	deadline := time.After(timeout)
	if timeout > 2*o.Poll {
		o.progress("waiting up to %v for the restarted pods to run with their sidecar", timeout)
	}
	stable := 0
	var last []corev1.Pod
	for {
		pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			last = pods.Items
			all := true
			for _, w := range ws {
				w.pods = podsOf(w, pods.Items)
				w.total, w.meshed = len(w.pods), 0
				for i := range w.pods {
					if meshedAndReady(&w.pods[i], rev) {
						w.meshed++
					}
				}
				ok, _ := o.rolledOut(ctx, w)
				if !ok || w.meshed != w.total {
					all = false
				}
			}
			if all {
				stable++
				if stable == 2 {
					return nil, nil
				}
			} else {
				stable = 0
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the restarted pods: %w", ctx.Err())
		case <-deadline:
			return o.explain(ctx, ws, last, rev), nil
		case <-time.After(o.Poll):
		}
	}
}

func (o *Options) rolledOutNow(ctx context.Context, w *workload) bool {
	ok, err := o.rolledOut(ctx, w)
	return ok || err != nil
}

// rolledOut reports whether the workload's controller has replaced every old pod.
func (o *Options) rolledOut(ctx context.Context, w *workload) (bool, error) {
	apps := o.Client.AppsV1()
	switch w.kind {
	case "Deployment":
		d, err := apps.Deployments(o.Namespace).Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want, nil
	case "StatefulSet":
		s, err := apps.StatefulSets(o.Namespace).Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		st := s.Status
		return st.ObservedGeneration >= s.Generation && st.UpdatedReplicas == want && st.ReadyReplicas == want && st.CurrentRevision == st.UpdateRevision, nil
	case "DaemonSet":
		d, err := apps.DaemonSets(o.Namespace).Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := d.Status
		return st.ObservedGeneration >= d.Generation && st.UpdatedNumberScheduled == st.DesiredNumberScheduled && st.NumberAvailable == st.DesiredNumberScheduled, nil
	}
	return true, nil
}

func meshedAndReady(p *corev1.Pod, rev string) bool {
	if !hasSidecar(p) || SidecarRevision(p) != rev || p.Status.Phase != corev1.PodRunning {
		return false
	}
	ready := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
	}
	return ready == len(p.Spec.Containers)
}

// explain says why each pod of the restarted workloads is not running with a ready sidecar.
func (o *Options) explain(ctx context.Context, ws []*workload, pods []corev1.Pod, rev string) []Problem {
	var out []Problem
	for _, w := range ws {
		for _, p := range podsOf(w, pods) {
			if meshedAndReady(&p, rev) {
				continue
			}
			pr := Problem{Pod: p.Name, Workload: strings.ToLower(w.kind) + "/" + w.name, Ready: readyColumn(&p)}
			switch {
			case !hasSidecar(&p) && (w.restartedAt.IsZero() || p.CreationTimestamp.Time.Before(w.restartedAt.Truncate(time.Second))):
				pr.Reason = "not replaced yet: the rollout waits until the new pods are ready"
				pr.Fix = "see why the new pods are not, below"
			case !hasSidecar(&p):
				pr.Reason = "restarted without a sidecar: the injector did not act on it"
				pr.Fix = fmt.Sprintf("check that istiod of revision %s runs and its webhook matches the namespace: kubectl mesh status", rev)
			case SidecarRevision(&p) != rev:
				pr.Reason = "its sidecar was injected by revision " + SidecarRevision(&p)
				pr.Fix = "restart it again once the namespace's label is the one you want: kubectl mesh inject " + o.Namespace
			default:
				pr.Reason, pr.Fix, pr.Code = o.whyNotReady(ctx, &p)
			}
			out = append(out, pr)
		}
	}
	return out
}

func readyColumn(p *corev1.Pod) string {
	if p.Status.Phase != corev1.PodRunning {
		return string(p.Status.Phase)
	}
	ready := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Ready {
			ready++
		}
	}
	return fmt.Sprintf("%d/%d", ready, len(p.Spec.Containers))
}

// whyNotReady runs why-slow's sidecar rules on the pod and its events; a pending pod is
// explained by the scheduler's event.
func (o *Options) whyNotReady(ctx context.Context, p *corev1.Pod) (reason, fix, code string) {
	events, _ := o.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": p.Name, "involvedObject.uid": string(p.UID)}.AsSelector().String()})
	if p.Status.Phase == corev1.PodPending {
		if events != nil {
			for _, e := range events.Items {
				if e.Reason == "FailedScheduling" {
					fix := "the pod with its sidecar does not fit on any node: add nodes or lower the sidecar's requests (sidecar.istio.io/proxyCPU and proxyMemory annotations, or global.proxy.resources)"
					return "not scheduled: " + e.Message, fix, ""
				}
			}
		}
		return "pending", "kubectl describe pod -n " + p.Namespace + " " + p.Name, ""
	}
	pod := p.DeepCopy()
	pod.APIVersion, pod.Kind = "v1", "Pod"
	pb, _ := json.Marshal(pod)
	files := map[string][]byte{evidence.Pod: pb}
	if events != nil {
		el := map[string]any{"apiVersion": "v1", "kind": "EventList", "items": events.Items}
		eb, _ := json.Marshal(el)
		files[evidence.Events] = eb
	}
	snap, err := diagnose.LoadFS(evidence.MemFS(files), "pod "+p.Namespace+"/"+p.Name, o.Now())
	if err == nil {
		if f, ok := sidecarCause(diagnose.Diagnose(snap, diagnose.Rules()).Findings); ok {
			fix := f.Fix.Summary
			if f.Fix.Command != "" {
				fix += " (" + strings.SplitN(f.Fix.Command, "\n", 2)[0] + ")"
			}
			return f.Title, fix, f.Code
		}
	}
	return "a container is not ready", "kubectl mesh why-slow pod/" + p.Name + " -n " + p.Namespace, ""
}

// sidecarCause picks the ranked finding that explains a sidecar not ready: the first of its
// category, unless one as severe names a cause (an OOM kill) where the first names only the
// symptom (not ready, whose fix is to read the log). Rank orders findings of one severity by
// code, which puts the symptom first once the pod is past its start grace.
func sidecarCause(fs []diagnose.Finding) (diagnose.Finding, bool) {
	first := -1
	for i, f := range fs {
		switch {
		case f.Category != diagnose.CategorySidecarNotReady:
		case first < 0:
			first = i
			if f.Code != string(diagnose.CodeSidecarNotReady) {
				return f, true
			}
		case f.Code != string(diagnose.CodeSidecarNotReady) && f.Severity == fs[first].Severity:
			return f, true
		}
	}
	if first < 0 {
		return diagnose.Finding{}, false
	}
	return fs[first], true
}
