package collect

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

func TestAboutPod(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"}, Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.7"}}}}
	log := strings.Join([]string{
		`2025-01-14T14:45:38Z	error	access	connection complete	src.addr=10.0.0.8:47328 dst.addr=10.0.0.7:8080 direction="inbound" error="connection closed due to policy rejection: allow policies exist, but none allowed"`,
		`2025-01-14T14:45:38Z	error	access	connection complete	src.addr=10.0.0.8:47328 dst.addr=10.0.0.70:8080 direction="inbound" error="another pod's"`,
		`2025-01-14T14:45:39Z	info	access	connection complete	src.addr=10.0.0.9:4000 dst.addr=10.0.0.3:15008 dst.hbone_addr=10.0.0.3:80 src.workload="web-0" direction="outbound"`,
		`2025-01-14T14:45:40Z	warn	xds::client:xds{id=8}	XDS client connection error: gRPC connection error connecting to https://istiod.istio-system.svc:15012: status: Unknown`,
		`2025-01-14T14:45:41Z	info	inpod::statemanager	pod received, starting proxy	uid="u" name="other-1" namespace="shop"`,
	}, "\n")
	got := strings.Split(strings.TrimSpace(string(aboutPod([]byte(log), pod))), "\n")
	if len(got) != 3 || !strings.Contains(got[0], "dst.addr=10.0.0.7:8080") || !strings.Contains(got[1], `src.workload="web-0"`) || !strings.Contains(got[2], "XDS client") {
		t.Errorf("kept:\n%s\nwant the pod's two lines (not 10.0.0.70's) and ztunnel's own warning", strings.Join(got, "\n"))
	}
}

func TestCaptureAmbientPod(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{label.IoIstioDataplaneMode.Name: "ambient", "team": "a"}}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Annotations: map[string]string{annotation.AmbientRedirection.Name: "enabled"}},
		Spec:   corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "web"}}},
		Status: corev1.PodStatus{PodIP: "10.0.0.7"}}
	zt := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-x1", Namespace: "istio-system", Labels: map[string]string{"app": "ztunnel"}}, Spec: corev1.PodSpec{NodeName: "node-a"}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-a0", Namespace: "istio-system", Labels: map[string]string{"app": "ztunnel"}}, Spec: corev1.PodSpec{NodeName: "node-b"}}
	c := fake.NewClientset(ns, pod, zt, other)
	res, err := Capture(context.Background(), CaptureOptions{Client: c, RESTConfig: &rest.Config{}, Namespace: "shop", Pod: "web-0", Window: time.Millisecond, Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	var meta evidence.MetaFile
	if err := json.Unmarshal(res.Evidence.File(evidence.Meta), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Ztunnel != "istio-system/ztunnel-x1" || meta.NamespaceLabels[label.IoIstioDataplaneMode.Name] != "ambient" || meta.NamespaceLabels["team"] != "" {
		t.Errorf("meta %+v; want node-a's ztunnel and only the mesh labels", meta)
	}
	if res.Evidence.File(evidence.Pod) == nil || res.Evidence.File(evidence.StatsProm) != nil {
		t.Errorf("files %v; want the pod and no sidecar stats", res.Evidence.Names())
	}
	if !slices.Contains(res.Evidence.Names(), evidence.ZtunnelLog) {
		t.Errorf("no %s (warnings %q)", evidence.ZtunnelLog, res.Warnings)
	}
}

func TestCaptureRefusesAPodOutsideBothMeshes(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
	_, err := Capture(context.Background(), CaptureOptions{Client: fake.NewClientset(ns, pod), RESTConfig: &rest.Config{}, Namespace: "shop", Pod: "web-0"})
	if err == nil || !strings.Contains(err.Error(), "not in the ambient mesh") {
		t.Errorf("err = %v; want the pod refused", err)
	}
}
