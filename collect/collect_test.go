package collect

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/incidentpod"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

const incident = "../testdata/incidents/keepalive-race"

// TestCaptureLive captures a pod through the real API server, with kwok forwarding the
// sidecar's admin port to a replay of the keepalive-race incident and serving its access log,
// and checks the folder diagnoses the same as the original capture.
func TestCaptureLive(t *testing.T) {
	h, err := adminreplay.New(incident)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	logsFile := filepath.Join(t.TempDir(), "istio-proxy.log")
	criLog, err := incidentpod.CRILog(incident)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logsFile, criLog, 0o644); err != nil {
		t.Fatal(err)
	}
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "envoy-admin", AdminPort, strings.TrimPrefix(srv.URL, "http://")),
		testcluster.LogsRule("", "proxy-logs", []string{SidecarContainer}, logsFile),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("keepalive-race", func(t *testing.T) {
		pod := createPod(ctx, t, c, "productpage-v1", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		dir := t.TempDir()
		var progress bytes.Buffer
		start := time.Now()
		res, err := Capture(ctx, CaptureOptions{
			Client: c.Client, RESTConfig: c.Config,
			Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Second, Progress: &progress,
			SkipNode: true, // no exec rule here: node evidence is TestCaptureNodeLive's
		})
		if err != nil {
			t.Fatalf("Capture: %v\nprogress:\n%s", err, progress.String())
		}
		t.Logf("captured in %v: %v", time.Since(start).Round(time.Millisecond), res.Evidence.Names())
		if err := res.Evidence.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		// The incident folder has no clusters.json or certs.json: the replay answers 404 for
		// them, which must be warnings and nothing else.
		for _, w := range res.Warnings {
			if !strings.Contains(w, evidence.ClustersJSON) && !strings.Contains(w, evidence.Certs) {
				t.Errorf("unexpected warning: %s", w)
			}
		}
		for _, f := range []string{evidence.Pod, evidence.StatsProm, evidence.Stats2Prom, evidence.ConfigDump,
			evidence.ServerInfo, evidence.Meta, evidence.AccessLog} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s not written: %v", f, err)
			}
		}
		podYAML, _ := os.ReadFile(filepath.Join(dir, evidence.Pod))
		if bytes.Contains(podYAML, []byte("managedFields")) || !bytes.Contains(podYAML, []byte("kind: Pod")) {
			t.Errorf("pod.yaml should be a Pod without managedFields:\n%s", podYAML)
		}

		snap, err := diagnose.LoadDir(dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if snap.Meta.Pod != pod.Name || snap.Meta.Namespace != pod.Namespace || len(snap.Meta.CaptureTimes) != 2 || snap.Meta.WindowSeconds < 1 {
			t.Errorf("meta = %+v, want the pod, two capture times and a window of at least 1 s", snap.Meta)
		}
		report := diagnose.Diagnose(snap, diagnose.Rules())
		if len(report.Findings) == 0 {
			t.Fatalf("no findings; warnings %v", snap.Warnings)
		}
		top := report.Findings[0]
		const upstream = "outbound|9080||details.default.svc.cluster.local"
		if top.Code != "MESH0401" || !strings.Contains(top.Subject.Name, upstream) {
			t.Errorf("top finding = %s on %v, want MESH0401 on %s", top.Code, top.Subject, upstream)
		}
		orig, err := diagnose.LoadDir(incident, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if want := diagnose.Diagnose(orig, diagnose.Rules()).Findings[0]; want.Code != top.Code || want.Subject != top.Subject {
			t.Errorf("top finding %s %v differs from the original folder's %s %v", top.Code, top.Subject, want.Code, want.Subject)
		}
		origLog, _ := os.ReadFile(filepath.Join(incident, evidence.AccessLog))
		gotLog, _ := os.ReadFile(filepath.Join(dir, evidence.AccessLog))
		if !bytes.Equal(bytes.TrimSpace(origLog), bytes.TrimSpace(gotLog)) {
			t.Errorf("access.log differs from the replayed log:\n%.300s", gotLog)
		}
	})

	t.Run("port-forward forbidden", func(t *testing.T) {
		pod := createPod(ctx, t, c, "ratings-v1", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		cfg := readOnlyUser(ctx, t, c, "viewer")
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Capture(ctx, CaptureOptions{
			Client: client, RESTConfig: cfg, Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Second,
		})
		if err != nil {
			t.Fatalf("Capture: %v, want a partial capture of what the user may read", err)
		}
		var forbidden []string
		for _, w := range res.Warnings {
			if strings.Contains(w, "needs get and create on pods/portforward in namespace default") {
				forbidden = append(forbidden, w)
			}
		}
		if len(forbidden) != 1 {
			t.Errorf("warnings = %q, want one naming the missing pods/portforward permission", res.Warnings)
		}
		if res.Evidence.File(evidence.Pod) == nil || res.Evidence.File(evidence.StatsProm) != nil {
			t.Errorf("files = %v, want pod.yaml and no admin output", res.Evidence.Names())
		}
	})

	t.Run("cancelled during the window", func(t *testing.T) {
		pod := createPod(ctx, t, c, "reviews-v1", "app", SidecarContainer)
		waitRunning(ctx, t, c, pod)
		cctx, ccancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer ccancel()
		start := time.Now()
		_, err := Capture(cctx, CaptureOptions{
			Client: c.Client, RESTConfig: c.Config, Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Minute,
		})
		if err == nil || !strings.Contains(err.Error(), "interrupted") || time.Since(start) > 10*time.Second {
			t.Errorf("err = %v after %v, want an interrupted capture soon after the context ends", err, time.Since(start))
		}
	})

	t.Run("no sidecar", func(t *testing.T) {
		pod := createPod(ctx, t, c, "plain", "app")
		_, err := Capture(ctx, CaptureOptions{
			Client: c.Client, RESTConfig: c.Config, Namespace: pod.Namespace, Pod: pod.Name,
			Window: time.Second,
		})
		if err == nil || !strings.Contains(err.Error(), "pod default/plain has no istio-proxy sidecar and is not in the ambient mesh") {
			t.Errorf("err = %v, want the no-sidecar error", err)
		}
	})
}

// readOnlyUser returns the config of a user who may read pods and their logs in default but
// not port-forward to them.
func readOnlyUser(ctx context.Context, t *testing.T, c *testcluster.Cluster, user string) *rest.Config {
	t.Helper()
	cfg, err := c.UserWithRole(ctx, user, "default",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Verbs: []string{"get", "list"}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func createPod(ctx context.Context, t *testing.T, c *testcluster.Cluster, name string, containers ...string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: c.Nodes[0]},
	}
	for _, n := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: n, Image: "example.invalid/" + n})
	}
	pod, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

func waitRunning(ctx context.Context, t *testing.T, c *testcluster.Cluster, pod *corev1.Pod) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		t.Fatalf("pod %s/%s not Running: %v", pod.Namespace, pod.Name, err)
	}
}
