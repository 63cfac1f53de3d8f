package canary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/canary"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

const incidents = "../../testdata/incidents"

var (
	drGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
	vsGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
)

// sidecar is the canary pod's admin API, whose measurements a test changes between runs.
type sidecar struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *sidecar) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// measures makes the canary's sidecar show, over each sampled window, ok requests answered 200
// and failed answered 503, each taking ms milliseconds: Istio's inbound metrics as a sidecar
// exposes them on /stats/prometheus.
func (s *sidecar) measures(t *testing.T, ok, failed int, ms float64) {
	t.Helper()
	dir := t.TempDir()
	bounds := []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	write := func(name string, n int) {
		var b strings.Builder
		labels := func(code string) string {
			return fmt.Sprintf(`reporter="destination",destination_workload="reviews-v2",destination_workload_namespace="shop",destination_version="v2",response_code=%q,connection_security_policy="mutual_tls"`, code)
		}
		b.WriteString("# TYPE istio_requests_total counter\n")
		fmt.Fprintf(&b, "istio_requests_total{%s} %d\n", labels("200"), n*ok)
		fmt.Fprintf(&b, "istio_requests_total{%s} %d\n", labels("503"), n*failed)
		b.WriteString("# TYPE istio_request_duration_milliseconds histogram\n")
		count := n * (ok + failed)
		for _, le := range bounds {
			c := 0
			if ms <= le {
				c = count
			}
			fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"%g\"} %d\n", labels("200"), le, c)
		}
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_bucket{%s,le=\"+Inf\"} %d\n", labels("200"), count)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_sum{%s} %g\n", labels("200"), float64(count)*ms)
		fmt.Fprintf(&b, "istio_request_duration_milliseconds_count{%s} %d\n", labels("200"), count)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stats.prom", 1)
	write("stats-2.prom", 2)
	h, err := adminreplay.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func run(ctx context.Context, kubeconfig string, args ...string) (*canary.Result, string, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	ns := "shop"
	flags.Namespace = &ns
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs(append(args, "-o", "json"))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	var r canary.Result
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			return nil, errOut.String(), fmt.Errorf("%v: %s", jerr, out.String())
		}
	}
	return &r, errOut.String(), err
}

func weights(t *testing.T, c *testcluster.Cluster, ctx context.Context) string {
	t.Helper()
	vs, err := c.Dynamic.Resource(vsGVR).Namespace("shop").Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	routes := http[0].(map[string]any)["route"].([]any)
	var out []string
	for _, r := range routes {
		m := r.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v", m["destination"].(map[string]any)["subset"], m["weight"]))
	}
	return strings.Join(out, " ")
}

// TestCanary splits reviews between v1 and v2 on the real control plane: created DestinationRule
// first, a no-op second run, promote and rollback, a version without pods refused, and a
// progressive rollout that completes for a healthy canary and rolls back by itself when the
// canary's sidecar shows errors or a slow p99.
func TestCanary(t *testing.T) {
	v2 := &sidecar{}
	v2.measures(t, 100, 0, 20)
	c := meshtest.Start(t, incidents, "shop", []meshtest.Pod{
		{Name: "reviews-v1-0", Incident: "healthy", Labels: map[string]string{"app": "reviews", "version": "v1"}},
		{Name: "reviews-v2-0", Incident: "healthy", Labels: map[string]string{"app": "reviews", "version": "v2"}, Admin: v2},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, crds); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reviews", "ratings"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
		if _, err := c.Client.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	res, stderr, err := run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "5")
	if err != nil {
		t.Fatalf("canary: %v\n%s", err, stderr)
	}
	if len(res.Applied) != 2 || res.Applied[0].Kind != "DestinationRule" || res.Applied[0].Action != "created" || res.Applied[1].Kind != "VirtualService" || res.Stable != "v1" {
		t.Fatalf("first split: %+v", res)
	}
	if got := weights(t, c, ctx); got != "v1=95 v2=5" {
		t.Errorf("weights %s", got)
	}
	dr, _ := c.Dynamic.Resource(drGVR).Namespace("shop").Get(ctx, "reviews", metav1.GetOptions{})
	if od, _, _ := unstructured.NestedMap(dr.Object, "spec", "trafficPolicy", "outlierDetection"); od["consecutive5xxErrors"] != int64(5) || od["interval"] != "10s" || od["baseEjectionTime"] != "30s" {
		t.Errorf("outlier detection %v", od)
	}
	res, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "5")
	if err != nil || res.Applied[0].Action != "unchanged" || res.Applied[1].Action != "unchanged" {
		t.Errorf("second run: %v %+v", err, res.Applied)
	}
	if res, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--promote"); err != nil || weights(t, c, ctx) != "v1=0 v2=100" || res.Applied[0].Action != "unchanged" {
		t.Errorf("promote: %v, %s", err, weights(t, c, ctx))
	}
	if _, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--rollback"); err != nil || weights(t, c, ctx) != "v1=100 v2=0" {
		t.Errorf("rollback: %v, %s", err, weights(t, c, ctx))
	}
	if _, _, err := run(ctx, c.Kubeconfig, "ratings", "--canary", "v3", "--stable", "v1"); err == nil || !strings.Contains(err.Error(), "no ready pod") {
		t.Errorf("a subset without pods: %v", err)
	}

	// Progressive: healthy all the way to 100%.
	res, stderr, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "1s", "--max-error-rate", "1%", "--max-p99", "500ms")
	if err != nil || res.Weight != 100 || len(res.Steps) != 3 || res.RolledBack != "" {
		t.Fatalf("healthy progressive rollout: %v %+v\n%s", err, res, stderr)
	}
	if s := res.Steps[0]; s.Weight != 10 || s.Requests != 100 || s.ErrorRate != 0 || s.P99Millis <= 10 || s.P99Millis > 25 {
		t.Errorf("first step measured %+v: want the sidecar's 100 requests, no errors, p99 within (10, 25] ms", s)
	}
	// Errors over the bound: back to v1 after the first step.
	v2.measures(t, 90, 10, 20)
	res, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "1s", "--max-error-rate", "1%")
	if cli.Code(err) != cli.ExitFindings || !strings.Contains(res.RolledBack, "error rate 10.00% over 1.00%") || weights(t, c, ctx) != "v1=100 v2=0" {
		t.Errorf("failing canary: %v %+v %s", err, res, weights(t, c, ctx))
	}
	// A slow canary: back to v1.
	v2.measures(t, 100, 0, 800)
	res, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "1s", "--max-p99", "500ms")
	if cli.Code(err) != cli.ExitFindings || !strings.Contains(res.RolledBack, "p99") || weights(t, c, ctx) != "v1=100 v2=0" {
		t.Errorf("slow canary: %v %+v", err, res)
	}

	// A canary whose sidecar cannot be read is not judged healthy: back to v1, saying why.
	v2.mu.Lock()
	v2.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "admin overloaded", http.StatusServiceUnavailable)
	})
	v2.mu.Unlock()
	res, _, err = run(ctx, c.Kubeconfig, "reviews", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "1s")
	if cli.Code(err) != cli.ExitFindings || !strings.Contains(res.RolledBack, "cannot measure the canary") || weights(t, c, ctx) != "v1=100 v2=0" {
		t.Errorf("unreadable canary: %v %+v %s", err, res, weights(t, c, ctx))
	}

	// Another tool's VirtualService for the host is not joined by a second one.
	theirs := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-routes, namespace: shop}
spec: {hosts: [ratings], http: [{route: [{destination: {host: ratings}}]}]}`
	if err := c.Apply(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ratings-v3-0", Namespace: "shop", Labels: map[string]string{"app": "ratings", "version": "v3"}},
		Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: "app", Image: "example.invalid/ratings"}}}}
	if _, err := c.Client.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Name, pod.Labels["version"] = "ratings-v1-0", "v1"
	if _, err := c.Client.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, err = run(ctx, c.Kubeconfig, "ratings", "--canary", "v3", "--dry-run=server")
		if err == nil || !strings.Contains(err.Error(), "no ready pod") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil || !strings.Contains(err.Error(), "VirtualService shop/ratings-routes of another tool") {
		t.Errorf("beside another tool's VirtualService: %v", err)
	}
	if _, err := c.Dynamic.Resource(drGVR).Namespace("shop").Get(ctx, "ratings", metav1.GetOptions{}); err == nil {
		t.Error("a refused split created a DestinationRule")
	}
}
