package testcluster

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
)

// TestCluster starts one control plane and checks, through the real API server, every
// path the live diagnosis relies on: pods run on kwok nodes, and port-forward, exec and
// logs reach the local stand-ins kwok's rules name.
func TestCluster(t *testing.T) {
	admin := adminServer(t, "cluster-rule")
	override := adminServer(t, "pod-rule")
	workDir := t.TempDir()
	writeFile(t, filepath.Join(workDir, "proc", "stat"), "cpu  100 0 50 1000 20 0 0 7 0 0\n")
	logsFile := filepath.Join(t.TempDir(), "istio-proxy.log")
	writeFile(t, logsFile, CRILog("envoy started", `[2026-01-01T00:00:00.000Z] "GET / HTTP/1.1" 200`))

	c := Start(t, Options{
		KwokRules: []string{
			PortForwardRule("", "envoy-admin", 15000, admin),
			ExecRule("", "node-files", []string{"istio-proxy"}, workDir),
			LogsRule("", "proxy-logs", []string{"istio-proxy"}, logsFile),
		},
		// Namespaced rules from CRDs, so a test can point one pod at its own server.
		KwokCRDs: []string{"PortForward"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("version", func(t *testing.T) {
		v, err := c.Client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != "v1.33.13" {
			t.Errorf("server reports %q, want v1.33.13 (the build's -X version flags)", v.GitVersion)
		}
	})

	t.Run("default ServiceAccount", func(t *testing.T) {
		if _, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	start := time.Now()
	pod := createPod(ctx, t, c, "default", "web-0")
	t.Run("pod Ready on kwok node", func(t *testing.T) {
		waitPodReady(ctx, t, c, pod)
		t.Logf("pod Ready %v after create", time.Since(start).Round(time.Millisecond))
	})

	t.Run("port-forward", func(t *testing.T) {
		if got := portForwardGet(ctx, t, c, pod, 15000, "/server_info"); got != "cluster-rule /server_info" {
			t.Errorf("got %q through port-forward, want the ClusterPortForward target's answer", got)
		}
	})

	t.Run("port-forward over WebSocket", func(t *testing.T) {
		if got := portForwardGetWS(ctx, t, c, pod, 15000, "/clusters"); got != "cluster-rule /clusters" {
			t.Errorf("got %q through the WebSocket port-forward, want the ClusterPortForward target's answer", got)
		}
	})

	t.Run("port-forward per-pod rule", func(t *testing.T) {
		other := createPod(ctx, t, c, "default", "web-1")
		waitPodReady(ctx, t, c, other)
		if err := c.Apply(ctx, PortForwardRule("default", "web-1", 15000, override)); err != nil {
			t.Fatal(err)
		}
		// kwok picks the rule up from its watch; allow it a moment.
		var got string
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			got = portForwardGet(ctx, t, c, other, 15000, "/stats")
			return got == "pod-rule /stats", nil
		})
		if err != nil {
			t.Errorf("got %q through port-forward to web-1, want the PortForward rule's target", got)
		}
		if got := portForwardGet(ctx, t, c, pod, 15000, "/stats"); got != "cluster-rule /stats" {
			t.Errorf("web-0 got %q, want the cluster rule still to apply to it", got)
		}
	})

	t.Run("exec", func(t *testing.T) {
		for _, websocket := range []bool{false, true} {
			out := execIn(ctx, t, c, pod, websocket, "istio-proxy", "cat", "proc/stat")
			if !strings.HasPrefix(out, "cpu  100 0 50 1000 20 0 0 7") {
				t.Errorf("exec (WebSocket %v) cat proc/stat = %q, want the file from the ClusterExec workDir", websocket, out)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		b, err := c.Client.CoreV1().Pods("default").GetLogs(pod.Name, &corev1.PodLogOptions{Container: "istio-proxy"}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := "envoy started\n[2026-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 200\n"
		if string(b) != want {
			t.Errorf("logs = %q, want %q", b, want)
		}
	})

	t.Run("deployment scheduled", func(t *testing.T) {
		deployAndWait(ctx, t, c, "api", 2)
	})

	t.Run("RBAC applies to other users", func(t *testing.T) {
		rc, err := c.UserConfig("viewer", "viewers")
		if err != nil {
			t.Fatal(err)
		}
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("listing pods as a user without roles: err = %v, want Forbidden", err)
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), "get", "pods", "-o", "name")
		cmd.Env = c.KubectlEnv()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "pod/web-0") {
			t.Errorf("kubectl get pods: %v\n%s", err, out)
		}
	})
}

// adminServer stands in for an Envoy admin API: it answers "<tag> <path>".
func adminServer(t *testing.T, tag string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", tag, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// createPod creates a meshed-looking pod bound to the first fake node: kwok only runs
// pods that have a nodeName.
func createPod(ctx context.Context, t *testing.T, c *Cluster, ns, name string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			NodeName: c.Nodes[0],
			Containers: []corev1.Container{
				{Name: "app", Image: "example.invalid/app"},
				{Name: "istio-proxy", Image: "example.invalid/proxyv2", Ports: []corev1.ContainerPort{{ContainerPort: 15000}}},
			},
		},
	}
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func waitPodReady(ctx context.Context, t *testing.T, c *Cluster, pod *corev1.Pod) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				return p.Status.Phase == corev1.PodRunning, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running and Ready: %v", pod.Namespace, pod.Name, err)
	}
}

// portForwardGet is PortForwardGet over SPDY, failing the test on an error.
func portForwardGet(ctx context.Context, t *testing.T, c *Cluster, pod *corev1.Pod, port int, path string) string {
	t.Helper()
	body, err := PortForwardGet(ctx, c.Config, c.Client, pod.Namespace, pod.Name, port, path)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// portForwardGetWS does the same over WebSocket, falling back to SPDY only when the
// upgrade fails, as kubectl does since 1.31.
func portForwardGetWS(ctx context.Context, t *testing.T, c *Cluster, pod *corev1.Pod, port int, path string) string {
	t.Helper()
	u := portForwardURL(c.Client, pod.Namespace, pod.Name)
	ws, err := portforward.NewSPDYOverWebsocketDialer(u, c.Config)
	if err != nil {
		t.Fatal(err)
	}
	viaSPDY, err := spdyDialer(c.Config, u)
	if err != nil {
		t.Fatal(err)
	}
	fallback := func(err error) bool {
		t.Errorf("WebSocket port-forward fell back to SPDY: %v", err)
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	}
	body, err := forwardAndGet(ctx, portforward.NewFallbackDialer(ws, viaSPDY, fallback), pod.Name, port, path)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// execIn runs a command in a container through the API server's exec subresource with
// client-go's remotecommand, as the node-evidence probe does: over SPDY, or over
// WebSocket with kubectl's fallback to SPDY.
func execIn(ctx context.Context, t *testing.T, c *Cluster, pod *corev1.Pod, websocket bool, container string, command ...string) string {
	t.Helper()
	req := c.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).
		Name(pod.Name).SubResource("exec").VersionedParams(&corev1.PodExecOptions{
		Container: container, Command: command, Stdout: true, Stderr: true,
	}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(c.Config, http.MethodPost, req.URL())
	if err != nil {
		t.Fatal(err)
	}
	if websocket {
		ws, err := remotecommand.NewWebSocketExecutor(c.Config, http.MethodGet, req.URL().String())
		if err != nil {
			t.Fatal(err)
		}
		if ex, err = remotecommand.NewFallbackExecutor(ws, ex, func(err error) bool {
			t.Errorf("WebSocket exec fell back to SPDY: %v", err)
			return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("exec %v in %s/%s: %v (stderr %q)", command, pod.Name, container, err, stderr.String())
	}
	return stdout.String()
}

// deployAndWait creates a Deployment without a nodeName and waits for its replicas to
// be ready: that needs the controller-manager, the scheduler and kwok together.
func deployAndWait(ctx context.Context, t *testing.T, c *Cluster, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app"}}},
			},
		},
	}
	if _, err := c.Client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err := c.Client.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.ReadyReplicas == replicas, err
	})
	if err != nil {
		t.Fatalf("deployment %s never had %d ready replicas: %v", name, replicas, err)
	}
}
