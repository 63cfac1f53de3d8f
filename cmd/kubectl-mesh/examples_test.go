//go:build examples

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// TestExamples writes docs/examples.md: every command's output, run by the built binaries
// against the bundled incidents (offline), the incidents replayed on the test control plane
// (live), and the charts shaped like Istio's installed on it (install and configure).
//
//	go test -tags examples -run TestExamples ./cmd/kubectl-mesh
func TestExamples(t *testing.T) {
	doc := &examplesDoc{t: t}
	doc.para("# Examples\n\nEvery command's output, as the built binaries print it: the diagnosis on the bundled incidents (offline and replayed live through the test control plane), install and configure on the test control plane with [charts shaped like Istio's](../testdata/charts). Regenerate with `go test -tags examples -run TestExamples ./cmd/kubectl-mesh`; times, ports and random names vary from run to run.")

	doc.para("## Offline")
	doc.cmd(nil, "why-slow", "--from", incidentArg("timeout"))
	doc.cmd(nil, "why-slow", "--from", incidentArg("node-cpu-steal"))
	doc.cmd(nil, "explain", "upstream connect error or disconnect/reset before headers. reset reason: connection termination")
	doc.cmd(nil, "explain", "UF,URX")
	doc.cmd(nil, "clusters", "--from", incidentArg("circuit-breaker"))
	doc.cmd(nil, "version")
	doc.cmd(nil, "rbac")

	doc.para("## Live diagnosis\n\nOne pod per incident in namespace `default`, each sidecar replaying its incident through kwok's port-forward, logs and exec (the node samples of the incidents that have them); `reviews-v2` answers the hop from `productpage-network-latency`; Istio's CRDs are served, with no object.")
	c := liveMesh(t)
	env := []string{"KUBECONFIG=" + c.Kubeconfig}
	doc.cmd(env, "why-slow", "-n", "default", "--window", "2s")
	doc.cmd(env, "why-slow", "pod/productpage-network-latency", "-n", "default", "--window", "2s")
	archive := filepath.Join(t.TempDir(), "keepalive.tar.gz")
	doc.cmd(env, "capture", "pod/productpage-keepalive-race", "-n", "default", "-o", archive, "--window", "2s")
	doc.cmd(env, "rbac", "--check", "-n", "default")

	doc.para("## Install and configure\n\nA fresh control plane, the test charts installed with `--charts`; their injector webhook points at an in-process injector that adds `istio-proxy` as istiod's does; the sidecars of the pods it makes replay the healthy incident (and switch to STRICT mTLS once a PeerAuthentication asks for it, as istiod's push would).")
	c2, charts := configureMesh(t)
	env = []string{"KUBECONFIG=" + c2.Kubeconfig}
	inj := meshtest.ServeInjector(t)
	ca := base64.StdEncoding.EncodeToString(inj.CABundle)
	doc.cmd(env, "install", "--check", "--inject-namespaces", "bookinfo")
	doc.summarize = func(out string) string {
		var kinds []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "# Helm release") || strings.HasPrefix(l, "kind:") || strings.HasPrefix(l, "client dry run") {
				kinds = append(kinds, l)
			}
		}
		return "(the manifests, abridged to their releases and kinds)\n" + strings.Join(kinds, "\n") + "\n"
	}
	doc.cmd(env, "install", "--dry-run", "--profile", "minimal", "--charts", charts)
	doc.summarize = nil
	doc.cmd(env, "install", "--charts", charts, "--skip-node-probe", "--set", "istiod.sidecarInjectorWebhook.url="+inj.URL+"/default", "--set", "istiod.sidecarInjectorWebhook.caBundle="+ca)
	doc.cmd(env, "install", "--charts", charts, "--skip-node-probe", "--set", "istiod.sidecarInjectorWebhook.url="+inj.URL+"/default", "--set", "istiod.sidecarInjectorWebhook.caBundle="+ca)
	doc.cmd(env, "status")
	doc.cmd(env, "inject", "bookinfo", "--timeout", "60s")
	doc.cmd(env, "inject", "bookinfo")
	doc.cmd(env, "mtls", "bookinfo", "--mode", "strict", "--window", "2s")
	doc.cmd(env, "canary", "reviews", "-n", "bookinfo", "--canary", "v2", "--weight", "10")
	doc.cmd(env, "canary", "reviews", "-n", "bookinfo", "--canary", "v2", "--weight", "10", "--step", "45", "--interval", "2s", "--max-error-rate", "1%")
	doc.cmd(env, "nodes", "--window", "2s")
	doc.cmd(env, "nodes", "--apply", "--dry-run")
	doc.cmd(env, "uninstall")

	if err := os.WriteFile(filepath.Join("..", "..", "docs", "examples.md"), []byte(doc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type examplesDoc struct {
	t *testing.T
	strings.Builder
	// summarize, when set, abridges the next output.
	summarize func(string) string
}

func (d *examplesDoc) para(s string) { d.WriteString(s + "\n\n") }

var (
	tmpPath = regexp.MustCompile(`/tmp/[A-Za-z0-9_./-]+`)
	port    = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// cmd runs kubectl mesh ARGS and writes the command and what it printed, stdout then stderr.
func (d *examplesDoc) cmd(env []string, args ...string) {
	d.t.Helper()
	r := runEnv(d.t, append(env, "COLUMNS=120"), args...)
	shown := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, repoRoot(), ".")
		if strings.Contains(a, " ") || strings.Contains(a, "%") {
			a = "'" + a + "'"
		}
		a = tmpPath.ReplaceAllString(a, "/tmp/...")
		if strings.HasPrefix(a, "istiod.sidecarInjectorWebhook") {
			a = a[:strings.IndexByte(a, '=')+1] + "..."
		}
		shown[i] = a
	}
	fmt.Fprintf(d, "```console\n$ kubectl mesh %s\n", strings.Join(shown, " "))
	// What a terminal shows: the progress on stderr comes as it happens, before the result.
	out := r.stderr + r.stdout
	if d.summarize != nil {
		out = d.summarize(out)
	}
	out = strings.ReplaceAll(out, repoRoot(), ".")
	out = tmpPath.ReplaceAllString(out, "/tmp/...")
	out = port.ReplaceAllString(out, "127.0.0.1:PORT")
	if lines := strings.Split(out, "\n"); len(lines) > 80 {
		out = strings.Join(lines[:80], "\n") + fmt.Sprintf("\n... (%d more lines)\n", len(lines)-80)
	}
	d.WriteString(out)
	if !strings.HasSuffix(out, "\n") {
		d.WriteString("\n")
	}
	if r.code != 0 {
		fmt.Fprintf(d, "$ echo $?\n%d\n", r.code)
	}
	d.WriteString("```\n\n")
}

func repoRoot() string {
	abs, _ := filepath.Abs(filepath.Join("..", ".."))
	return abs
}

func incidentArg(name string) string { return incident(name) }

// liveMesh replays every incident in namespace default, and the hop of network-latency.
func liveMesh(t *testing.T) *testcluster.Cluster {
	incidents := filepath.Join("..", "..", "testdata", "incidents")
	entries, _ := os.ReadDir(incidents)
	var pods []meshtest.Pod
	for _, e := range entries {
		if e.IsDir() && e.Name() != "gen" {
			pods = append(pods, meshtest.Pod{Name: "productpage-" + e.Name(), Incident: e.Name(), Labels: map[string]string{"app": "productpage", "incident": e.Name()}})
		}
	}
	server := t.TempDir()
	for src, dst := range map[string]string{"hop-1.prom": "stats.prom", "hop-1-2.prom": "stats-2.prom", "meta.json": "meta.json"} {
		b, _ := os.ReadFile(filepath.Join(incidents, "network-latency", src))
		_ = os.WriteFile(filepath.Join(server, dst), b, 0o644)
	}
	pods = append(pods, meshtest.Pod{Name: "reviews-v2", Incident: server, Labels: map[string]string{"app": "reviews"}})
	c := meshtest.Start(t, incidents, "default", pods)
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "reviews"}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
	if _, err := c.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=reviews"})
		return err == nil && len(l.Items) > 0 && len(l.Items[0].Endpoints) > 0, err
	})
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, crds); err != nil {
		t.Fatal(err)
	}
	return c
}

// switching is the admin API of the configure mesh's pods: the healthy incident, with a
// STRICT config dump once a PeerAuthentication exists.
type switching struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *switching) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// configureMesh starts a control plane with bookinfo's Deployments (no sidecars yet), a
// cluster-wide replay for their sidecars to come, and node probes replaying node-cpu-steal.
func configureMesh(t *testing.T) (*testcluster.Cluster, string) {
	incidents := filepath.Join("..", "..", "testdata", "incidents")
	healthy, err := adminreplay.New(filepath.Join(incidents, "healthy"))
	if err != nil {
		t.Fatal(err)
	}
	sw := &switching{h: healthy}
	srv := newServer(t, sw)
	work := t.TempDir()
	r, err := nodereplay.Start(context.Background(), filepath.Join(incidents, "node-cpu-steal"), work)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "sidecars", 15000, srv),
		testcluster.ExecRule("", "probe", []string{"probe"}, work),
	}})
	ctx := context.Background()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, app, version string }{{"productpage-v1", "productpage", "v1"}, {"reviews-v1", "reviews", "v1"}, {"reviews-v2", "reviews", "v2"}} {
		one := int32(1)
		labels := map[string]string{"app": d.app, "version": d.version}
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.name, Namespace: "bookinfo"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: d.app, Image: "docker.io/istio/examples-bookinfo-" + d.name + ":1.20.2"}}}}}}
		if _, err := c.Client.AppsV1().Deployments("bookinfo").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, app := range []string{"productpage", "reviews"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "bookinfo"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}}}
		if _, err := c.Client.CoreV1().Services("bookinfo").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// istiod's push: STRICT in the sidecars once asked for.
	strictDir := t.TempDir()
	for _, f := range []string{"stats.prom", "stats-2.prom", "meta.json", "server_info.json", "clusters.json"} {
		b, _ := os.ReadFile(filepath.Join(incidents, "healthy", f))
		_ = os.WriteFile(filepath.Join(strictDir, f), b, 0o644)
	}
	b, _ := os.ReadFile(filepath.Join(incidents, "mtls-mismatch", "config_dump.json"))
	_ = os.WriteFile(filepath.Join(strictDir, "config_dump.json"), b, 0o644)
	strict, err := adminreplay.New(strictDir)
	if err != nil {
		t.Fatal(err)
	}
	pa := schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	go func() {
		for {
			time.Sleep(200 * time.Millisecond)
			if _, err := c.Dynamic.Resource(pa).Namespace("bookinfo").Get(ctx, "default", metav1.GetOptions{}); err == nil {
				time.Sleep(time.Second)
				sw.mu.Lock()
				sw.h = strict
				sw.mu.Unlock()
				return
			}
		}
	}()
	return c, meshtest.Charts(t, filepath.Join("..", "..", "testdata", "charts"))
}

func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
