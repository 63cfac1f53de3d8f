package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// AmbientNamespace holds the sandbox's ambient pods: no sidecar, their node's ztunnel replaying
// real ztunnel lines from the real-world corpus that name them.
const AmbientNamespace = "demo-ambient"

// ambientPods are the ambient pods and the corpus case whose first line the ztunnel prints
// about each, named as in that line; a pod without a case is one istio-cni never marked.
var ambientPods = []struct{ name, realworld string }{
	{"echo-66d88ff694-pnk6h", "istio-ambient-ztunnel-pr-1229-005-outbound-hbone-timeout-networkpolicy-hint"},
	{"operator-68cc96bd7b-vfkgk", "istio-ambient-istio-issue-53696-002-inbound-policy-rejection-no-src-identity"},
	{"left-out", ""},
}

const ztunnelPod = "ztunnel-sandbox"

// ztunnelReplay is the key of the ztunnel's admin replay in servers.json.
const ztunnelReplay = "ztunnel"

// ztunnelAdmin is the ztunnel's admin replay server.
type ztunnelAdmin struct {
	server *http.Server
	addr   string
}

// serveZtunnelAdmin serves a ztunnel config dump at /config_dump on a free 127.0.0.1 port.
func serveZtunnelAdmin(dumpFile string) (*ztunnelAdmin, error) {
	dump, err := os.ReadFile(dumpFile)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(dump) })
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(l) }()
	return &ztunnelAdmin{server: s, addr: l.Addr().String()}, nil
}

// The waypoint of the ambient namespace, which serves one pod and replays an incident's Envoy.
const (
	waypointName     = "waypoint"
	waypointPod      = "waypoint-6d5f7c9b8-x2x9q"
	waypointIncident = "timeout"
	waypointClient   = "cart-0"
)

// populateAmbient creates the ambient namespace, its pods and the ztunnel of their node, whose
// log kwok serves from the corpus's lines and whose config dump a real ztunnel's; one pod is
// bound to a programmed waypoint whose Envoy replays an incident.
func populateAmbient(ctx context.Context, c *testcluster.Cluster, p paths, replays map[string]replay) error {
	root, err := testcluster.RepoRoot()
	if err != nil {
		return err
	}
	var lines []string
	for _, ap := range ambientPods {
		if ap.realworld == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, "testdata", "realworld", ap.realworld, "input.txt"))
		if err != nil {
			return fmt.Errorf("ztunnel's lines: %w", err)
		}
		lines = append(lines, strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	}
	logs := filepath.Join(p.replayDir(), "ztunnel.log")
	if err := os.WriteFile(logs, []byte(testcluster.CRILog(lines...)), 0o644); err != nil {
		return err
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: AmbientNamespace, Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}},
	} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
	}
	if err := c.Apply(ctx, testcluster.LogsRule("istio-system", ztunnelPod, []string{sidecarContainer}, logs),
		testcluster.PortForwardRule("istio-system", ztunnelPod, 15000, replays[ztunnelReplay].Admin),
		testcluster.PortForwardRule(AmbientNamespace, waypointPod, adminPort, replays[waypointIncident].Admin),
		testcluster.GatewayCRD); err != nil {
		return fmt.Errorf("kwok rules of ztunnel and the waypoint: %w", err)
	}
	pod := func(ns, name string, labels, annotations map[string]string, container string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: container, Image: "example.invalid/" + container}}}}
	}
	pods := []*corev1.Pod{pod("istio-system", ztunnelPod, map[string]string{"app": "ztunnel"}, nil, sidecarContainer)}
	for _, ap := range ambientPods {
		var marked map[string]string
		if ap.realworld != "" {
			marked = map[string]string{"ambient.istio.io/redirection": "enabled"}
		}
		pods = append(pods, pod(AmbientNamespace, ap.name, map[string]string{"app": strings.SplitN(ap.name, "-", 2)[0]}, marked, "app"))
	}
	pods = append(pods,
		pod(AmbientNamespace, waypointPod, map[string]string{"gateway.networking.k8s.io/gateway-name": waypointName}, nil, sidecarContainer),
		pod(AmbientNamespace, waypointClient, map[string]string{"app": "cart", "istio.io/use-waypoint": waypointName}, map[string]string{"ambient.istio.io/redirection": "enabled"}, "app"))
	for _, p := range pods {
		if _, err := c.Client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return createWaypoint(ctx, c)
}

// createWaypoint makes the waypoint Gateway and reports it programmed, as istiod would.
func createWaypoint(ctx context.Context, c *testcluster.Cluster) error {
	gvr := schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}
	gw := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": waypointName, "namespace": AmbientNamespace},
		"spec":     map[string]any{"gatewayClassName": "istio-waypoint", "listeners": []any{map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"}}}}}
	var created *unstructured.Unstructured
	// The CRD was just created: its resource is served a moment later.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		created, err = c.Dynamic.Resource(gvr).Namespace(AmbientNamespace).Create(ctx, gw, metav1.CreateOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waypoint Gateway: %w", err)
	}
	created.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Programmed", "status": "True", "reason": "Programmed",
		"message": "Resource programmed (by the sandbox, as istiod would)", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}}
	if _, err := c.Dynamic.Resource(gvr).Namespace(AmbientNamespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("waypoint Gateway status: %w", err)
	}
	return nil
}
