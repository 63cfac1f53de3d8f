package inject

import (
	"context"
	"strings"
	"testing"
	"time"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/fakeapi"
)

// ambientCluster is the fake API server with the test's istio-cni: when the namespace is
// labelled for ambient, it marks the running pods it redirects (mark: enabled or pending; ""
// for an agent that does nothing).
func ambientCluster(t *testing.T, labels map[string]string, mark string, pods ...*corev1.Pod) *fakeapi.Server {
	t.Helper()
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	objs := []runtime.Object{namespace}
	for _, p := range pods {
		objs = append(objs, p)
	}
	api := fakeapi.New(fakeapi.Options{Kinds: []fakeapi.Kind{fakeapi.Namespace}, Objects: objs})
	api.OnWrite("namespaces", func(obj runtime.Object) {
		if obj.(*corev1.Namespace).Labels[label.IoIstioDataplaneMode.Name] != "ambient" || mark == "" {
			return
		}
		for _, p := range pods {
			if hasSidecar(p) || p.Spec.HostNetwork || p.Annotations[annotation.AmbientRedirection.Name] != "" {
				continue
			}
			p.Annotations = map[string]string{annotation.AmbientRedirection.Name: mark}
			if err := api.Update("istio-cni", p); err != nil {
				t.Error(err)
			}
		}
	})
	return api
}

func ambientRun(t *testing.T, api *fakeapi.Server, o Options) (*AmbientResult, error) {
	t.Helper()
	o.Client, o.Dynamic, o.Mapper, o.Namespace, o.Poll = api.Client, api.Dynamic, api.Mapper, ns, time.Millisecond
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	return RunAmbient(context.Background(), o)
}

func states(r *AmbientResult) string {
	var s []string
	for _, p := range r.Pods {
		s = append(s, p.Pod+": "+p.State)
	}
	return strings.Join(s, "; ")
}

func TestInjectAmbient(t *testing.T) {
	app := newPod("web", "web-0", "", t0)
	meshed := newPod("old", "old-0", "default", t0)
	host := newPod("agent", "agent-0", "", t0)
	host.Spec.HostNetwork = true
	api := ambientCluster(t, nil, "enabled", app, meshed, host)
	r, err := ambientRun(t, api, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "agent-0: " + AmbientHostNetwork + "; old-0: " + AmbientSidecar + "; web-0: " + AmbientEnrolled
	if r.Label.Action != apply.Configured || r.Unenrolled != 0 || states(r) != want {
		t.Errorf("label %s, unenrolled %d, pods %s; want configured, 0, %s", r.Label.Action, r.Unenrolled, states(r), want)
	}
	// Again: nothing changes.
	if r, err := ambientRun(t, api, Options{}); err != nil || r.Label.Action != apply.Unchanged {
		t.Errorf("rerun: %v, %+v; want the label unchanged", err, r)
	}
}

func TestInjectAmbientLeavesSidecarInjection(t *testing.T) {
	api := ambientCluster(t, map[string]string{LabelInjection: "enabled"}, "enabled", newPod("web", "web-0", "", t0))
	if _, err := ambientRun(t, api, Options{}); err == nil || !strings.Contains(err.Error(), "--force-conflicts") {
		t.Fatalf("err = %v; want a refusal that names --force-conflicts", err)
	}
	if _, err := ambientRun(t, api, Options{ForceConflicts: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := api.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if _, ok := got.Labels[LabelInjection]; ok || got.Labels[label.IoIstioDataplaneMode.Name] != "ambient" {
		t.Errorf("labels %v; want ambient and no istio-injection", got.Labels)
	}
}

func TestInjectAmbientReportsPodsNotEnrolled(t *testing.T) {
	for _, tc := range []struct{ mark, state string }{{"", AmbientNotEnrolled}, {"pending", AmbientPending}} {
		api := ambientCluster(t, nil, tc.mark, newPod("web", "web-0", "", t0))
		r, err := ambientRun(t, api, Options{Timeout: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if r.Unenrolled != 1 || states(r) != "web-0: "+tc.state {
			t.Errorf("istio-cni marking %q: unenrolled %d, pods %s", tc.mark, r.Unenrolled, states(r))
		}
	}
}

func TestInjectAmbientDryRunChangesNothing(t *testing.T) {
	api := ambientCluster(t, map[string]string{LabelInjection: "enabled"}, "enabled", newPod("web", "web-0", "", t0))
	if _, err := ambientRun(t, api, Options{DryRun: apply.DryRunServer, ForceConflicts: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := api.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if got.Labels[LabelInjection] != "enabled" || got.Labels[label.IoIstioDataplaneMode.Name] != "" {
		t.Errorf("labels %v after a dry run", got.Labels)
	}
}
