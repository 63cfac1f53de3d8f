package collect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

const stealIncident = "../testdata/incidents/node-cpu-steal"

// TestCaptureNodeLive captures a pod whose sidecar kwok serves from replays of the
// node-cpu-steal incident: the admin API from its folder and exec from a moving /proc tree,
// through the real API server. The kubelet's cAdvisor cannot be read here: the API server's
// node proxy refuses kwok's loopback node address ("address not allowed"), so that read is one
// warning; TestCadvisorThroughNodeProxy covers it.
func TestCaptureNodeLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := adminreplay.New(stealIncident)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	replay, err := nodereplay.Start(ctx, stealIncident, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replay.Stop)
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "envoy-admin", AdminPort, strings.TrimPrefix(srv.URL, "http://")),
		testcluster.ExecRule("", "node-probe", []string{SidecarContainer}, replay.Dir()),
	}})

	t.Run("node-cpu-steal", func(t *testing.T) {
		pod := createPod(ctx, t, c, "productpage-v1", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		var progress strings.Builder
		res, err := Capture(ctx, CaptureOptions{
			Client: c.Client, RESTConfig: c.Config, Namespace: pod.Namespace, Pod: pod.Name,
			Window: 2 * time.Second, Progress: &progress,
		})
		if err != nil {
			t.Fatalf("Capture: %v\n%s", err, progress.String())
		}
		cadvisorWarnings := 0
		for _, w := range res.Warnings {
			if strings.Contains(w, "cAdvisor") {
				cadvisorWarnings++
			} else if strings.Contains(w, "node") {
				t.Errorf("warning: %s", w)
			}
		}
		if cadvisorWarnings != 1 {
			t.Errorf("warnings %q, want one about cAdvisor (the node proxy refuses loopback)", res.Warnings)
		}
		for _, f := range []string{evidence.Node, evidence.Node2} {
			if res.Evidence.File(f) == nil {
				t.Errorf("%s not captured; files %v", f, res.Evidence.Names())
			}
		}
		var meta evidence.MetaFile
		if err := json.Unmarshal(res.Evidence.File(evidence.Meta), &meta); err != nil || len(meta.NodeTimes) != 2 {
			t.Errorf("meta.json node times %v (%v)", meta.NodeTimes, err)
		}
		snap, err := res.Snapshot(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !snap.Has(diagnose.InputNodeInterval) {
			t.Fatalf("node evidence not loaded; warnings %v", snap.Warnings)
		}
		report := diagnose.Diagnose(snap, diagnose.Rules())
		codes := map[string]diagnose.Finding{}
		for _, f := range report.Findings {
			codes[f.Code] = f
		}
		steal, ok := codes[string(diagnose.CodeNodeCPUSteal)]
		if !ok {
			t.Fatalf("no MESH1501 among %v; warnings %v", report.Findings, report.Warnings)
		}
		if v := steal.Evidence[0].Value; v < 35 || v > 41 {
			t.Errorf("steal %v%%, want the incident's 38%%", v)
		}
		// Not necessarily first: the replayed certificates expired long before today's clock.
	})

	t.Run("exec and node proxy forbidden", func(t *testing.T) {
		pod := createPod(ctx, t, c, "reviews-v2", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		cfg := forwardOnlyUser(ctx, t, c, "forwarder")
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Capture(ctx, CaptureOptions{
			Client: client, RESTConfig: cfg, Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Second,
		})
		if err != nil {
			t.Fatalf("Capture: %v, want a capture without the node evidence", err)
		}
		var execW, proxyW []string
		for _, w := range res.Warnings {
			if strings.Contains(w, "needs get and create on pods/exec in namespace default") {
				execW = append(execW, w)
			}
			if strings.Contains(w, "needs get on nodes/proxy") {
				proxyW = append(proxyW, w)
			}
		}
		if len(execW) != 1 || len(proxyW) != 1 {
			t.Errorf("warnings %q, want one naming pods/exec and one naming nodes/proxy", res.Warnings)
		}
		if res.Evidence.File(evidence.Node) != nil || res.Evidence.File(evidence.StatsProm) == nil {
			t.Errorf("files %v, want the stats and no node.txt", res.Evidence.Names())
		}
		if _, err := res.Snapshot(time.Now()); err != nil {
			t.Errorf("the partial capture does not diagnose: %v", err)
		}
	})

	t.Run("skipped", func(t *testing.T) {
		pod := createPod(ctx, t, c, "ratings-v1", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		res, err := Capture(ctx, CaptureOptions{
			Client: c.Client, RESTConfig: c.Config, Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Second, SkipNode: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Evidence.File(evidence.Node) != nil || res.Evidence.File(evidence.Cadvisor) != nil {
			t.Errorf("files %v with SkipNode", res.Evidence.Names())
		}
	})
}

// forwardOnlyUser may read pods and logs and port-forward in default, but not exec, and may not
// proxy to nodes.
func forwardOnlyUser(ctx context.Context, t *testing.T, c *testcluster.Cluster, user string) *rest.Config {
	t.Helper()
	cfg, err := c.UserWithRole(ctx, user, "default",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create", "get"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestDebugContainerRequest checks the ephemeral container the probe falls back to for a
// distroless proxy. kwok v0.7.0 runs no ephemeral containers, so this is the request only: a
// strategic merge patch of pods/ephemeralcontainers, targeting istio-proxy as its user.
func TestDebugContainerRequest(t *testing.T) {
	uid := int64(1337)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "productpage-v1", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"},
			{Name: SidecarContainer, SecurityContext: &corev1.SecurityContext{RunAsUser: &uid}}}},
	}
	client := fake.NewSimpleClientset(pod)
	var patch []byte
	var subresource string
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		patch, subresource = pa.GetPatch(), pa.GetSubresource()
		return true, pod, nil
	})
	client.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := pod.DeepCopy()
		if patch != nil {
			var req struct {
				Spec struct{ EphemeralContainers []corev1.EphemeralContainer } `json:"spec"`
			}
			if err := json.Unmarshal(patch, &req); err != nil {
				return true, nil, err
			}
			for _, ec := range req.Spec.EphemeralContainers {
				p.Status.EphemeralContainerStatuses = append(p.Status.EphemeralContainerStatuses, corev1.ContainerStatus{
					Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
			}
		}
		return true, p, nil
	})
	r := &captureRun{o: CaptureOptions{Client: client, Namespace: "default", Pod: pod.Name, Window: 10 * time.Second}, res: &Result{}}
	name, err := r.startDebugContainer(context.Background(), DefaultDebugImage)
	if err != nil {
		t.Fatal(err)
	}
	if subresource != "ephemeralcontainers" || !strings.HasPrefix(name, "kubectl-mesh-node-") {
		t.Fatalf("subresource %q, name %q", subresource, name)
	}
	var req struct {
		Spec struct{ EphemeralContainers []corev1.EphemeralContainer } `json:"spec"`
	}
	if err := json.Unmarshal(patch, &req); err != nil || len(req.Spec.EphemeralContainers) != 1 {
		t.Fatalf("patch %s: %v", patch, err)
	}
	ec := req.Spec.EphemeralContainers[0]
	if ec.TargetContainerName != SidecarContainer || ec.Image != DefaultDebugImage || ec.Name != name ||
		strings.Join(ec.Command, " ") != "sleep 3600" || *ec.SecurityContext.RunAsUser != 1337 {
		t.Errorf("debug container %+v", ec)
	}

	// A later run finds it running and reuses it instead of adding another to the pod for good.
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, ec)
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: ec.Name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	patch = nil
	again, err := r.startDebugContainer(context.Background(), DefaultDebugImage)
	if err != nil || again != name || patch != nil {
		t.Errorf("second run: container %q (%v), patched %v; want %s reused", again, err, patch != nil, name)
	}
	// One that exited, or of another image, is not reused.
	pod.Status.EphemeralContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	if got := runningDebugContainer(pod, DefaultDebugImage); got != "" {
		t.Errorf("an exited debug container was reused: %s", got)
	}
	pod.Status.EphemeralContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	if got := runningDebugContainer(pod, "other:1"); got != "" {
		t.Errorf("a debug container of another image was reused: %s", got)
	}

	// A native sidecar (an init container) gives its user to the debug container too.
	always := corev1.ContainerRestartPolicyAlways
	native := int64(1555)
	if dc := debugContainer("x", DefaultDebugImage, time.Second, &corev1.Container{Name: SidecarContainer, RestartPolicy: &always,
		SecurityContext: &corev1.SecurityContext{RunAsUser: &native}}); *dc.SecurityContext.RunAsUser != native {
		t.Errorf("user %d, want the native sidecar's %d", *dc.SecurityContext.RunAsUser, native)
	}
	if got := nodeinfo.ProbeCommand("/proc/1/root/")[3]; got != "/proc/1/root/proc/stat" {
		t.Errorf("the debug container reads %s", got)
	}
}

// TestCadvisorThroughNodeProxy reads cAdvisor as the capture does, from a server that answers the
// API server's node proxy path, and keeps only the pod's lines.
func TestCadvisorThroughNodeProxy(t *testing.T) {
	metrics, err := os.ReadFile("../nodeinfo/testdata/cadvisor.prom")
	if err != nil {
		t.Fatal(err)
	}
	var asked string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes/node-a/proxy/metrics/cadvisor":
			asked = r.URL.Path
			_, _ = w.Write(metrics)
		case "/api/v1/nodes/node-b/proxy/metrics/cadvisor":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"nodes \"node-b\" is forbidden: User \"viewer\" cannot get resource \"nodes/proxy\""}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	r := &captureRun{o: CaptureOptions{Client: client, Namespace: "default", Pod: "productpage-v1-6c5b8d6b9f-k7x2m"}, res: &Result{},
		pod: &corev1.Pod{Spec: corev1.PodSpec{NodeName: "node-a"}}}
	st := &nodeState{}
	if err := r.cadvisor(context.Background(), st, evidence.Cadvisor); err != nil {
		t.Fatal(err)
	}
	got := r.res.Evidence.File(evidence.Cadvisor)
	if asked == "" || strings.Contains(string(got), "details-v1") || !strings.Contains(string(got), `container="istio-proxy"`) {
		t.Errorf("asked %q, kept:\n%s", asked, got)
	}
	if c, err := nodeinfo.ParseCadvisor(got); err != nil || len(c.Containers) != 2 {
		t.Errorf("kept lines parse to %+v, %v", c, err)
	}
	st.node = "node-b"
	if err := r.cadvisor(context.Background(), st, evidence.Cadvisor2); err == nil || !strings.Contains(err.Error(), "needs get on nodes/proxy") {
		t.Errorf("err = %v, want the missing nodes/proxy permission named", err)
	}
}
