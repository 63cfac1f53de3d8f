package whyslow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// TestAmbientPodsLive diagnoses ambient pods through the real API server: a ztunnel pod on
// their node whose log (served by kwok) is a real ztunnel's line from the real-world corpus
// (ztunnel#1229: an HBONE connection to echo's port 15008 that timed out), an echo pod of that
// name in an ambient namespace, and a pod of the namespace istio-cni never marked.
func TestAmbientPodsLive(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "realworld", "istio-ambient-ztunnel-pr-1229-005-*", "input.txt"))
	if len(dirs) != 1 {
		t.Fatalf("the real ztunnel line: %v", dirs)
	}
	real, err := os.ReadFile(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(strings.SplitN(string(real), "\n", 2)[0])
	logs := filepath.Join(t.TempDir(), "ztunnel.log")
	if err := os.WriteFile(logs, []byte(testcluster.CRILog(
		`2024-07-26T17:17:50.000000Z	info	access	connection complete	src.addr=10.244.0.9:58000 dst.addr=10.244.0.3:8080 direction="outbound" bytes_sent=100 bytes_recv=200 duration="3ms"`,
		line)), 0o644); err != nil {
		t.Fatal(err)
	}
	// ztunnel's admin port serves a real ztunnel's config dump (testdata/ztunnel/SOURCES.md),
	// of another cluster: ztunnel knows none of the test's pods.
	dump, err := os.ReadFile(filepath.Join("..", "..", "testdata", "ztunnel", "istioctl-1.30.3-dump.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Its metrics count the echo pod's outbound connections failing on HBONE's port, more at
	// each sample, in ztunnel's exposition format.
	var scrapes atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/config_dump":
			_, _ = w.Write(dump)
		case "/metrics":
			n := 10 * scrapes.Add(1)
			fmt.Fprintf(w, "# TYPE istio_tcp_connections_failed counter\nistio_tcp_connections_failed_total{reporter=\"source\",source_workload=\"echo-66d88ff694-pnk6h\",source_workload_namespace=\"echo\",destination_workload=\"echo\",destination_workload_namespace=\"default\",response_flags=\"NETWORK_POLICY\"} %d\n# EOF\n", n)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(admin.Close)
	// The waypoint of namespace mall replays the timeout incident's Envoy.
	waypointAdmin, err := adminreplay.New(filepath.Join(incidents, "timeout"))
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(waypointAdmin)
	t.Cleanup(wsrv.Close)
	// The echo pod's node is node-cpu-steal's: its application container answers the probe.
	nodeWork := t.TempDir()
	nr, err := nodereplay.Start(context.Background(), filepath.Join(incidents, "node-cpu-steal"), nodeWork)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nr.Stop)
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.ExecRule("echo", "echo-66d88ff694-pnk6h", []string{"echo"}, nodeWork),
		testcluster.PortForwardRule("mall", "waypoint-6d5f7c9b8-x2x9q", 15000, strings.TrimPrefix(wsrv.URL, "http://")),
		testcluster.LogsRule("istio-system", "ztunnel-x1", []string{"istio-proxy"}, logs),
		testcluster.PortsForwardRule("istio-system", "ztunnel-x1", []int32{15000, 15020}, strings.TrimPrefix(admin.URL, "http://")),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ns := func(name string, labels map[string]string) {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ns("istio-system", nil)
	ns("echo", map[string]string{"istio.io/dataplane-mode": "ambient"})
	pod := func(ns, name string, labels, annotations map[string]string, container string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: container, Image: "example.invalid/" + container}}}}
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			got, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return err == nil && got.Status.Phase == corev1.PodRunning, nil
		}); err != nil {
			t.Fatalf("pod %s/%s not running: %v", ns, name, err)
		}
	}
	pod("istio-system", "ztunnel-x1", map[string]string{"app": "ztunnel"}, nil, "istio-proxy")
	pod("echo", "echo-66d88ff694-pnk6h", nil, map[string]string{"ambient.istio.io/redirection": "enabled"}, "echo")
	pod("echo", "left-out", nil, nil, "web")

	// A namespace whose traffic is bound to a waypoint that does not exist. The Gateway API's
	// CRD is not part of Istio's: the test serves one reduced to its names.
	if err := c.Apply(ctx, testcluster.GatewayCRD); err != nil {
		t.Fatal(err)
	}
	ns("shop", map[string]string{"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"})
	pod("shop", "web-0", nil, map[string]string{"ambient.istio.io/redirection": "enabled"}, "web")

	// A namespace served by a programmed waypoint, whose Envoy times requests out.
	ns("mall", map[string]string{"istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "waypoint"})
	gw := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "waypoint", "namespace": "mall"},
		"spec":     map[string]any{"gatewayClassName": "istio-waypoint", "listeners": []any{map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"}}}}}
	gwr := c.Dynamic.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}).Namespace("mall")
	created, err := gwr.Create(ctx, gw, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Programmed", "status": "True", "reason": "Programmed", "message": "Resource programmed", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}}}
	if _, err := gwr.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod("mall", "waypoint-6d5f7c9b8-x2x9q", map[string]string{"gateway.networking.k8s.io/gateway-name": "waypoint"}, nil, "istio-proxy")
	pod("mall", "cart-0", nil, map[string]string{"ambient.istio.io/redirection": "enabled"}, "cart")

	for _, tc := range []struct{ pod, want string }{
		{"echo-66d88ff694-pnk6h", string(diagnose.CodeHBONEBlocked)},
		{"left-out", string(diagnose.CodeAmbientNotEnrolled)},
		{"shop/web-0", string(diagnose.CodeWaypointMissing)},
		{"mall/cart-0", string(diagnose.CodeUpstreamTimeout)},
	} {
		namespace, name, ok := strings.Cut(tc.pod, "/")
		if !ok {
			namespace, name = "echo", tc.pod
		}
		stdout, stderr, err := runCmd(ctx, c, "pod/"+name, "-n", namespace, "-o", "json", "--window", "1s")
		if err != nil {
			t.Fatalf("why-slow pod/%s: %v\n%s", tc.pod, err, stderr)
		}
		var r diagnose.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%v\n%s", err, stdout)
		}
		if len(r.Findings) == 0 || r.Findings[0].Code != tc.want {
			t.Errorf("pod/%s: findings %+v; want %s first\nstderr:\n%s", tc.pod, r.Findings, tc.want, stderr)
		}
		if tc.pod == "mall/cart-0" && !strings.HasPrefix(r.Findings[0].Title, "At waypoint mall/waypoint-6d5f7c9b8-x2x9q: ") {
			t.Errorf("pod/%s: the timeout is not said to be the waypoint's: %q", tc.pod, r.Findings[0].Title)
		}
		if tc.pod == "echo-66d88ff694-pnk6h" {
			if !hasCode(r.Findings, string(diagnose.CodeZtunnelUnawareOfPod)) {
				t.Errorf("pod/%s: findings %+v; want MESH1904 too: the replayed ztunnel does not know it", tc.pod, r.Findings)
			}
			if !hasCode(r.Findings, string(diagnose.CodeNodeCPUSteal)) {
				t.Errorf("pod/%s: findings %+v; want MESH1501 from its node's readings", tc.pod, r.Findings)
			}
			if ev := r.Findings[0].Evidence; !strings.Contains(fmt.Sprint(ev), "NETWORK_POLICY") {
				t.Errorf("pod/%s: the HBONE finding lacks the metric's rate: %+v", tc.pod, ev)
			}
		}
	}
}

func hasCode(fs []diagnose.Finding, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}
