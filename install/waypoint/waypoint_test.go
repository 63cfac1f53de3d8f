package waypoint

import (
	"context"
	"strings"
	"testing"
	"time"

	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/fakeapi"
)

var gatewayKind = fakeapi.Kind{GVK: schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "Gateway"}, Namespaced: true, Resource: "gateways"}

// server is the fake API server with the test's istiod, which reports each waypoint written
// with the Programmed condition given (status "" for an istiod that does not answer).
func server(t *testing.T, status, reason string) *fakeapi.Server {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	api := fakeapi.New(fakeapi.Options{Kinds: []fakeapi.Kind{fakeapi.Namespace, gatewayKind}, Objects: []runtime.Object{ns}})
	api.OnWrite("gateways", func(obj runtime.Object) {
		gw := obj.(*unstructured.Unstructured)
		if status == "" {
			return
		}
		if _, found, _ := unstructured.NestedSlice(gw.Object, "status", "conditions"); found {
			return // already reported
		}
		gw = gw.DeepCopy()
		gw.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Programmed", "status": status, "reason": reason, "message": "from the test's istiod"}}}
		if err := api.Update("istiod", gw); err != nil {
			t.Error(err)
		}
	})
	return api
}

func run(t *testing.T, api *fakeapi.Server, o Options) *Result {
	t.Helper()
	o.Dynamic, o.Mapper, o.Namespace, o.Poll = api.Dynamic, api.Mapper, "shop", time.Millisecond
	if o.Timeout == 0 {
		o.Timeout = 50 * time.Millisecond
	}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWaypoint(t *testing.T) {
	api := server(t, "True", "Programmed")
	r := run(t, api, Options{For: ForAll, Enroll: true})
	if r.Gateway.Action != apply.Created || !r.Programmed || r.Enrolled == nil || r.Enrolled.Action != apply.Configured {
		t.Fatalf("result %+v", r)
	}
	gw, err := api.Dynamic.Resource(GVR).Namespace("shop").Get(context.Background(), DefaultName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName")
	listeners, _, _ := unstructured.NestedSlice(gw.Object, "spec", "listeners")
	if class != Class || gw.GetLabels()[label.IoIstioWaypointFor.Name] != ForAll || len(listeners) != 1 || listeners[0].(map[string]any)["protocol"] != "HBONE" {
		t.Errorf("gateway %v", gw.Object)
	}
	ns, _ := api.Client.CoreV1().Namespaces().Get(context.Background(), "shop", metav1.GetOptions{})
	if ns.Labels[label.IoIstioUseWaypoint.Name] != DefaultName {
		t.Errorf("namespace labels %v", ns.Labels)
	}
	// Again: nothing changes.
	if r := run(t, api, Options{For: ForAll, Enroll: true}); r.Gateway.Action != apply.Unchanged || r.Enrolled.Action != apply.Unchanged {
		t.Errorf("rerun %+v; want unchanged", r)
	}
}

func TestWaypointNotProgrammed(t *testing.T) {
	if r := run(t, server(t, "False", "AddressNotUsable"), Options{}); r.Programmed || !strings.Contains(r.Why, "AddressNotUsable") {
		t.Errorf("result %+v; want istiod's reason", r)
	}
	if r := run(t, server(t, "", ""), Options{}); r.Programmed || !strings.Contains(r.Why, "has not reported") {
		t.Errorf("result %+v; want an istiod that did not answer named", r)
	}
}

func TestWaypointDryRunStoresNothing(t *testing.T) {
	api := server(t, "True", "Programmed")
	run(t, api, Options{DryRun: apply.DryRunServer, Enroll: true})
	if _, err := api.Dynamic.Resource(GVR).Namespace("shop").Get(context.Background(), DefaultName, metav1.GetOptions{}); err == nil {
		t.Error("a dry run stored the waypoint")
	}
}

func TestNoGatewayAPI(t *testing.T) {
	api := fakeapi.New(fakeapi.Options{Kinds: []fakeapi.Kind{fakeapi.Namespace}})
	_, err := Run(context.Background(), Options{Dynamic: api.Dynamic, Mapper: api.Mapper, Namespace: "shop"})
	if err == nil || !strings.Contains(err.Error(), "no Gateway API") {
		t.Errorf("err = %v; want the missing CRDs named", err)
	}
}
