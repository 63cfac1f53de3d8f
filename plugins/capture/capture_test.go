package capture

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		dir     string
		window  time.Duration
		wantPod string
		wantErr string
	}{
		{"pod/NAME", []string{"pod/web-0"}, "out", time.Second, "web-0", ""},
		{"NAME", []string{"web-0"}, "out", time.Second, "web-0", ""},
		{"po/NAME", []string{"po/web-0"}, "out", time.Second, "web-0", ""},
		{"no pod", nil, "out", time.Second, "", "takes one pod"},
		{"two pods", []string{"a", "b"}, "out", time.Second, "", "takes one pod"},
		{"deployment", []string{"deploy/web"}, "out", time.Second, "", "reads one pod"},
		{"empty name", []string{"pod/"}, "out", time.Second, "", "names no pod"},
		{"no -o", []string{"web-0"}, "", time.Second, "", "add -o DIR"},
		{"bad window", []string{"web-0"}, "out", 0, "", "--window must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Clients set as a test's: Complete builds none.
			o := &Options{Dir: tc.dir, Window: tc.window, Client: fake.NewClientset(), RESTConfig: &rest.Config{}, Namespace: "default"}
			err := o.Complete(tc.args)
			if err == nil {
				err = o.Validate()
			}
			if tc.wantErr == "" {
				if err != nil || o.Pod != tc.wantPod {
					t.Errorf("pod %q, err %v; want pod %q", o.Pod, err, tc.wantPod)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cli.Code(err) != cli.ExitUsage {
				t.Errorf("err = %v (exit %d), want a usage error containing %q", err, cli.Code(err), tc.wantErr)
			}
		})
	}
}

// TestCommand runs the command as kubectl would, with a kubeconfig, against the test control
// plane; kwok forwards the admin port to a replay of an incident whose folder has no
// clusters.json, so the command also prints a warning.
func TestCommand(t *testing.T) {
	h, err := adminreplay.New("../../testdata/incidents/keepalive-race")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := testcluster.Start(t, testcluster.Options{KwokRules: []string{
		testcluster.PortForwardRule("", "envoy-admin", 15000, strings.TrimPrefix(srv.URL, "http://")),
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{
			{Name: "app", Image: "example.invalid/app"}, {Name: "istio-proxy", Image: "example.invalid/proxyv2"},
		}},
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "web-0", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	if err != nil {
		t.Fatal(err)
	}

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	dir := filepath.Join(t.TempDir(), "capture")
	cmd.SetArgs([]string{"pod/web-0", "-n", "default", "-o", dir, "--window", "1s"})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("capture: %v\nstderr:\n%s", err, errOut)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want progress on stderr only", out)
	}
	for _, want := range []string{"stats sample 2 of 2", "warning: clusters.json not captured", "kubectl mesh why-slow --from " + dir} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, diagnose.FileConfigDump)); err != nil {
		t.Error(err)
	}
}
