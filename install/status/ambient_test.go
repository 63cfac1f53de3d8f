package status

import (
	"context"
	"strings"
	"testing"

	"istio.io/api/label"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/waypoint"
)

func daemonSet(name, label string, desired, ready int32) *appsv1.DaemonSet {
	k, v, _ := strings.Cut(label, "=")
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system", Labels: map[string]string{k: v}},
		Spec:   appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, NumberReady: ready}}
}

func waypointGateway(name string, status string, reason string) *unstructured.Unstructured {
	gw := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": name, "namespace": "shop"},
		"spec":     map[string]any{"gatewayClassName": "istio-waypoint"},
	}}
	if status != "" {
		gw.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Programmed", "status": status, "reason": reason, "message": "hostname not found"}}}
	}
	return gw
}

func ambientStatus(objs []runtime.Object, gateways ...*unstructured.Unstructured) *Status {
	gvrs := map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList", waypoint.GVR: "GatewayList"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvrs)
	for _, gw := range gateways {
		// Created through the client: seeded at construction, the fake's tracker would file it
		// under the resource it guesses from the kind, "gatewaies".
		if _, err := dyn.Resource(waypoint.GVR).Namespace(gw.GetNamespace()).Create(context.Background(), gw, metav1.CreateOptions{}); err != nil {
			panic(err)
		}
	}
	return &Status{Client: fake.NewClientset(objs...), Dynamic: dyn}
}

func ambientChecks(s *Status) []check.Check { return s.ambient(context.Background()) }

func TestAmbientStatus(t *testing.T) {
	ambientNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{label.IoIstioDataplaneMode.Name: "ambient"}}}
	t.Run("a sidecar mesh says nothing of ambient", func(t *testing.T) {
		if cs := ambientChecks(ambientStatus(nil)); len(cs) != 0 {
			t.Errorf("checks %+v", cs)
		}
	})
	t.Run("healthy", func(t *testing.T) {
		cs := ambientChecks(ambientStatus([]runtime.Object{ambientNS, daemonSet("ztunnel", ztunnelSelector, 3, 3), daemonSet("istio-cni-node", cniSelector, 3, 3)},
			waypointGateway("waypoint", "True", "Programmed")))
		if check.AnyFailed(cs) || len(cs) != 4 || !strings.Contains(cs[3].Message, "waypoint shop/waypoint: programmed") {
			t.Errorf("checks %+v", cs)
		}
	})
	t.Run("ambient namespaces without ztunnel or istio-cni", func(t *testing.T) {
		cs := ambientChecks(ambientStatus([]runtime.Object{ambientNS}))
		if len(cs) < 2 || cs[0].Status != check.Failed || !strings.Contains(cs[0].Message, "ztunnel does not run") || cs[1].Status != check.Failed {
			t.Errorf("checks %+v", cs)
		}
	})
	t.Run("ztunnel short of nodes, a waypoint not programmed", func(t *testing.T) {
		cs := ambientChecks(ambientStatus([]runtime.Object{ambientNS, daemonSet("ztunnel", ztunnelSelector, 3, 2), daemonSet("istio-cni-node", cniSelector, 3, 0)},
			waypointGateway("waypoint", "False", "AddressNotUsable"), waypointGateway("fresh", "", "")))
		want := []check.Status{check.Warning, check.Failed, check.OK, check.Failed, check.Failed}
		if len(cs) != len(want) {
			t.Fatalf("checks %+v", cs)
		}
		for i, w := range want {
			if cs[i].Status != w {
				t.Errorf("check %d %q: %s, want %s", i, cs[i].Message, cs[i].Status, w)
			}
		}
		if !strings.Contains(cs[1].Fix, "-l k8s-app=istio-cni-node") || !strings.Contains(cs[4].Message, "AddressNotUsable") {
			t.Errorf("checks %+v", cs)
		}
	})
}

func TestProxiesLeaveZtunnelAndWaypointsOut(t *testing.T) {
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: labels},
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.30.3"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "istio-proxy", Ready: true}}}}
	}
	cs := ambientStatus([]runtime.Object{pod("web", nil), pod("ztunnel-x", map[string]string{"app": "ztunnel"}),
		pod("waypoint-x", map[string]string{"gateway.networking.k8s.io/gateway-class-name": "istio-waypoint"})}).proxies(context.Background())
	if len(cs) != 1 || !strings.Contains(cs[0].Message, "1 of 1 connected") {
		t.Errorf("checks %+v; want the one sidecar", cs)
	}
}

// TestCRDsOfOneGroupStoringDifferentVersions: Istio's real CRDs of networking.istio.io do not
// all store the same version; each version is listed once, with how many kinds store it.
func TestCRDsOfOneGroupStoringDifferentVersions(t *testing.T) {
	kind := func(name, storage string) runtime.Object {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": name + ".networking.istio.io"},
			"spec": map[string]any{"group": "networking.istio.io", "versions": []any{
				map[string]any{"name": "v1", "served": true, "storage": storage == "v1"},
				map[string]any{"name": "v1alpha3", "served": true, "storage": storage == "v1alpha3"},
			}},
		}}
	}
	cs := newStatus(nil, kind("virtualservices", "v1"), kind("sidecars", "v1alpha3"), kind("gateways", "v1")).crds(context.Background())
	if len(cs) != 2 || cs[1].Message != "networking.istio.io: v1 (storage of 2 of 3 kinds), v1alpha3 (storage of 1 of 3 kinds)" {
		t.Errorf("checks %+v", cs)
	}
}
