package mtls

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/mtls"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

const incidents = "../../testdata/incidents"

var paGVR = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}

// proxy is a sidecar's admin API whose answers a test changes, as istiod's pushes change them.
type proxy struct {
	mu sync.Mutex
	h  http.Handler
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	h := p.h
	p.mu.Unlock()
	h.ServeHTTP(w, r)
}

func (p *proxy) serve(t *testing.T, dir string) {
	t.Helper()
	h, err := adminreplay.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
}

// variant copies the healthy incident and changes it: plaintext adds inbound requests without
// mTLS between the two samples; strictDump takes the config dump of a sidecar under STRICT.
func variant(t *testing.T, plaintext, strictDump bool) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(incidents, "healthy")
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if plaintext && strings.HasPrefix(e.Name(), "stats") {
			count := "100"
			if e.Name() == "stats-2.prom" {
				count = "140" // 40 plaintext requests over the incident's 10 s
			}
			b = addAfterFamily(b, "istio_requests_total{", `istio_requests_total{reporter="destination",source_workload="unknown",source_workload_namespace="unknown",destination_workload="reviews-v1",destination_workload_namespace="shop",request_protocol="http",response_code="200",connection_security_policy="none"} `+count)
		}
		if strictDump && e.Name() == "config_dump.json" {
			if b, err = os.ReadFile(filepath.Join(incidents, "mtls-mismatch", "config_dump.json")); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// addAfterFamily puts line after the last sample of a family, where Prometheus' format wants it.
func addAfterFamily(text []byte, prefix, line string) []byte {
	lines := strings.Split(string(text), "\n")
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			last = i
		}
	}
	out := append(append(append([]string(nil), lines[:last+1]...), line), lines[last+1:]...)
	return []byte(strings.Join(out, "\n"))
}

func run(ctx context.Context, kubeconfig string, args ...string) (*mtls.Result, string, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs(append(args, "-o", "json", "--window", "1s"))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	var r mtls.Result
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			return nil, errOut.String(), jerr
		}
	}
	return &r, errOut.String(), err
}

// TestMTLS sets STRICT on a namespace of replayed sidecars on the real control plane: refused
// while plaintext requests reach a sidecar, refused while a pod without a sidecar runs in the
// namespace, applied when neither, and verified in the sidecars' configuration once it says
// STRICT (as istiod's push makes it); a second run changes nothing.
func TestMTLS(t *testing.T) {
	reviews, ratings := &proxy{}, &proxy{}
	reviews.serve(t, variant(t, true, false))
	ratings.serve(t, variant(t, false, false))
	c := meshtest.Start(t, incidents, "shop", []meshtest.Pod{
		{Name: "reviews-0", Incident: "healthy", Admin: reviews},
		{Name: "ratings-0", Incident: "healthy", Admin: ratings},
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
	paExists := func() bool {
		_, err := c.Dynamic.Resource(paGVR).Namespace("shop").Get(ctx, mtls.Name, metav1.GetOptions{})
		return err == nil
	}

	res, _, err := run(ctx, c.Kubeconfig, "shop", "--mode", "strict")
	if cli.Code(err) != cli.ExitFindings || !res.Refused || len(res.Clients) != 1 || res.Clients[0].Source != "not in the mesh (no identity)" ||
		res.Clients[0].Destination != "shop/reviews-v1" || res.Clients[0].RequestsPerSecond < 3 {
		t.Fatalf("plaintext requests: %v %+v", err, res)
	}
	if paExists() {
		t.Fatal("STRICT was applied although refused")
	}

	// No plaintext traffic, but a pod without a sidecar in the namespace.
	reviews.serve(t, variant(t, false, false))
	curl := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl", Namespace: "shop"},
		Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: "curl", Image: "example.invalid/curl"}}}}
	if _, err := c.Client.CoreV1().Pods("shop").Create(ctx, curl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPhase(ctx, c, "shop", "curl", corev1.PodRunning); err != nil {
		t.Fatal(err)
	}
	res, _, err = run(ctx, c.Kubeconfig, "shop", "--mode", "strict")
	if cli.Code(err) != cli.ExitFindings || !res.Refused || len(res.Clients) != 1 || res.Clients[0].Source != "pod shop/curl" {
		t.Fatalf("a pod without a sidecar: %v %+v", err, res)
	}
	if err := c.Client.CoreV1().Pods("shop").Delete(ctx, "curl", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if err := waitGone(ctx, c, "shop", "curl"); err != nil {
		t.Fatal(err)
	}

	// A sidecar whose stats cannot be read may be the one plaintext clients call: refused, named.
	ratings.mu.Lock()
	ratings.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	})
	ratings.mu.Unlock()
	res, _, err = run(ctx, c.Kubeconfig, "shop", "--mode", "strict")
	if cli.Code(err) != cli.ExitFindings || !res.Refused || len(res.Clients) != 0 || len(res.Unsampled) != 1 || res.Unsampled[0] != "shop/ratings-0" {
		t.Fatalf("an unsampled sidecar: %v %+v", err, res)
	}
	if paExists() {
		t.Fatal("STRICT was applied with a sidecar unsampled")
	}
	ratings.serve(t, variant(t, false, false))

	// The sidecars' callers include istio-system's gateway: istiod there, without a sidecar,
	// is not a plaintext client.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mtls.RootNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	istiod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "istiod-0", Namespace: mtls.RootNamespace, Labels: map[string]string{"app": "istiod"}},
		Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.30.4"}}}}
	if _, err := c.Client.CoreV1().Pods(mtls.RootNamespace).Create(ctx, istiod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPhase(ctx, c, mtls.RootNamespace, "istiod-0", corev1.PodRunning); err != nil {
		t.Fatal(err)
	}

	// Applied, then verified once the sidecars' configuration requires client certificates.
	go func() {
		for ctx.Err() == nil && !paExists() {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(1500 * time.Millisecond) // istiod takes a moment to push
		reviews.serve(t, variant(t, false, true))
		ratings.serve(t, variant(t, false, true))
	}()
	res, stderr, err := run(ctx, c.Kubeconfig, "shop", "--mode", "strict", "--verify-timeout", "30s")
	if err != nil || res.Refused || res.Applied == nil || res.Applied.Action != "created" {
		t.Fatalf("STRICT with no plaintext client: %v %+v\n%s", err, res, stderr)
	}
	if len(res.Verified) != 2 || !res.Verified[0].OK || !res.Verified[1].OK {
		t.Errorf("verification %+v", res.Verified)
	}
	pa, err := c.Dynamic.Resource(paGVR).Namespace("shop").Get(ctx, mtls.Name, metav1.GetOptions{})
	if err != nil || pa.GetLabels()["app.kubernetes.io/managed-by"] != "kubectl-mesh" {
		t.Fatalf("PeerAuthentication %v (%v)", pa, err)
	}
	rv := pa.GetResourceVersion()
	res, _, err = run(ctx, c.Kubeconfig, "shop", "--mode", "strict")
	if err != nil || res.Applied.Action != "unchanged" {
		t.Errorf("second run: %v %+v", err, res.Applied)
	}
	if pa, _ := c.Dynamic.Resource(paGVR).Namespace("shop").Get(ctx, mtls.Name, metav1.GetOptions{}); pa.GetResourceVersion() != rv {
		t.Error("a second run changed the PeerAuthentication")
	}

	// PERMISSIVE applies, and the verification says the sidecars still require certificates.
	res, _, err = run(ctx, c.Kubeconfig, "shop", "--mode", "permissive", "--verify-timeout", "2s")
	if cli.Code(err) != cli.ExitFindings || res.Applied.Action != "configured" || res.Verified[0].OK || res.Verified[0].Mode != "STRICT" {
		t.Errorf("PERMISSIVE not yet pushed: %v %+v", err, res)
	}

	// Another tool's PeerAuthentication is not overwritten; a server dry run writes nothing.
	theirs := `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: legacy}
spec: {mtls: {mode: PERMISSIVE}}`
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "legacy"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(ctx, c.Kubeconfig, "legacy", "--mode", "strict"); err == nil || !strings.Contains(err.Error(), "not created by kubectl-mesh") {
		t.Errorf("over another tool's PeerAuthentication: %v", err)
	}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, _, err := run(ctx, c.Kubeconfig, "dry", "--mode", "strict", "--dry-run=server"); err != nil || res.Applied == nil || !strings.Contains(string(res.Applied.Action), "server dry run") {
		t.Errorf("server dry run: %v %+v", err, res)
	}
	if _, err := c.Dynamic.Resource(paGVR).Namespace("dry").Get(ctx, mtls.Name, metav1.GetOptions{}); err == nil {
		t.Error("a server dry run created a PeerAuthentication")
	}
}

func waitPhase(ctx context.Context, c *testcluster.Cluster, ns, name string, phase corev1.PodPhase) error {
	for ctx.Err() == nil {
		if p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && p.Status.Phase == phase {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}

func waitGone(ctx context.Context, c *testcluster.Cluster, ns, name string) error {
	for ctx.Err() == nil {
		if _, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}
