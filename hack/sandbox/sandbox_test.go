package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// envRunMain makes the test binary act as the sandbox program, so the test runs `up`,
// `down` and the detached `serve` as separate processes, as `make sandbox` does.
const envRunMain = "KUBE_MESH_SANDBOX_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const incidents = "../../testdata/incidents"

// TestUpDown runs up, uses the sandbox through the kubeconfig it printed (pods Running,
// an admin API through a port-forward, a sidecar log, node files through exec), runs down and checks that every
// process it started is gone.
func TestUpDown(t *testing.T) {
	testcluster.RequireBinDir(t)
	state := filepath.Join(t.TempDir(), "sandbox")
	// Registered after TempDir, so it runs first: a failed test leaves nothing running.
	t.Cleanup(func() {
		if out, err := sandbox(t, "down", state); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
	})

	out, err := sandbox(t, "up", state)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(state, "kubeconfig")
	if !strings.Contains(out, "export KUBECONFIG="+kubeconfig+"\n") {
		t.Errorf("up does not print the KUBECONFIG to export:\n%s", out)
	}
	procs, err := testcluster.DetachedProcesses(state)
	if err != nil || len(procs) != 6 || procs[5].Name != serveName {
		t.Fatalf("recorded processes %+v (%v), want the control plane's five and %s", procs, err, serveName)
	}
	for _, p := range procs {
		if !p.Running() {
			t.Errorf("%s (pid %d) does not run after up", p.Name, p.PID)
		}
	}
	if out, err := sandbox(t, "up", state); err != nil || !strings.Contains(out, "already up") {
		t.Errorf("second up: %v, want success saying it is already up\n%s", err, out)
	}

	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := loadIncidents(incidents)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != len(want) {
		t.Errorf("%d pods in %s, want one per incident (%d)", len(pods.Items), Namespace, len(want))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || len(p.Spec.Containers) < 2 || p.Labels[IncidentLabel] == "" {
			t.Errorf("pod %s: phase %s, %d containers, incident %q; want Running, meshed, labelled",
				p.Name, p.Status.Phase, len(p.Spec.Containers), p.Labels[IncidentLabel])
		}
	}
	svcs, err := client.CoreV1().Services(Namespace).List(ctx, metav1.ListOptions{})
	if err != nil || len(svcs.Items) == 0 {
		t.Errorf("services in %s: %d, %v; want one per app", Namespace, len(svcs.Items), err)
	}

	t.Run("admin API through port-forward", func(t *testing.T) {
		got, err := testcluster.PortForwardGet(ctx, rc, client, Namespace, "productpage-timeout", adminPort, "/server_info")
		if err != nil {
			t.Fatal(err)
		}
		orig, err := os.ReadFile(filepath.Join(incidents, "timeout", diagnose.FileServerInfo))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, orig) {
			t.Errorf("/server_info of productpage-timeout is not the incident's:\n%.300s", got)
		}
	})
	t.Run("sidecar log", func(t *testing.T) {
		b, err := client.CoreV1().Pods(Namespace).GetLogs("productpage-timeout",
			&corev1.PodLogOptions{Container: sidecarContainer}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := os.ReadFile(filepath.Join(incidents, "timeout", diagnose.FileAccessLog))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(b), bytes.TrimSpace(orig)) {
			t.Errorf("istio-proxy log differs from the incident's access.log:\n%.300s", b)
		}
	})
	t.Run("ambient pods and their ztunnel", func(t *testing.T) {
		pods, err := client.CoreV1().Pods(AmbientNamespace).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != len(ambientPods)+2 { // and the waypoint and its client
			t.Fatalf("pods in %s: %v, %v; want %d", AmbientNamespace, err, pods, len(ambientPods))
		}
		b, err := client.CoreV1().Pods("istio-system").GetLogs(ztunnelPod, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(b), `dst.workload="echo-66d88ff694-pnk6h"`) || !strings.Contains(string(b), "policy rejection") {
			t.Errorf("ztunnel's log: %v\n%.400s", err, b)
		}
	})
	t.Run("exec reads the replayed node files", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(incidents, "cpu-throttling", diagnose.FileNode)); err != nil {
			t.Skip("the cpu-throttling incident has no node samples")
		}
		got := execIn(ctx, t, rc, client, "productpage-cpu-throttling", "cat", "proc/stat")
		if !strings.HasPrefix(got, "cpu ") {
			t.Errorf("cat proc/stat in istio-proxy = %.200q, want the replayed /proc/stat", got)
		}
	})

	out, err = sandbox(t, "down", state)
	if err != nil || !strings.Contains(out, "down") {
		t.Fatalf("down: %v\n%s", err, out)
	}
	for _, p := range procs {
		if p.Running() {
			t.Errorf("%s (pid %d) still runs after down", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state directory after down: %v, want it removed", err)
	}
	if out, err := sandbox(t, "down", state); err != nil || !strings.Contains(out, "not up") {
		t.Errorf("down when down: %v, want success saying it is not up\n%s", err, out)
	}
}

// sandbox runs the sandbox program (this test binary) with verb, as `go run ./hack/sandbox`
// would, and returns its combined output.
func sandbox(t *testing.T, verb, state string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], verb, "-state", state, "-incidents", incidents)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// execIn runs command in the pod's istio-proxy container through the API server's exec
// subresource and returns its standard output.
func execIn(ctx context.Context, t *testing.T, rc *rest.Config, client kubernetes.Interface, pod string, command ...string) string {
	t.Helper()
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(Namespace).Name(pod).
		SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: sidecarContainer, Command: command, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(rc, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v in %s: %v (stderr %q)", command, pod, err, stderr.String())
	}
	return stdout.String()
}
