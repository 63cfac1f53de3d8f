package status

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func run(ctx context.Context, kubeconfig string) ([]check.Check, string, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	streams, _, out, _ := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs([]string{"-o", "json"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	var checks []check.Check
	if jerr := json.Unmarshal(out.Bytes(), &checks); jerr != nil {
		return nil, out.String(), jerr
	}
	return checks, out.String(), err
}

func has(checks []check.Check, status check.Status, text string) bool {
	for _, c := range checks {
		if c.Status == status && strings.Contains(c.Message, text) {
			return true
		}
	}
	return false
}

// TestStatus checks an empty cluster, then one with the test charts installed by the Helm
// engine, a namespace injected and a sidecar running, and a namespace asking for a revision
// no istiod serves.
func TestStatus(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	checks, out, err := run(ctx, c.Kubeconfig)
	if cli.Code(err) != cli.ExitFindings || !has(checks, check.Failed, "no istiod runs") || !has(checks, check.Failed, "Istio's CRDs are not installed") {
		t.Fatalf("an empty cluster: %v\n%s", err, out)
	}

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &c.Kubeconfig
	// Istio's real charts; kwok runs no istiod, so the injector webhook points nowhere, with a
	// CA bundle as istiod would have written into it.
	p, _ := install.NewProfile(install.ProfileMinimal, meshtest.IstioVersion)
	ov, _ := install.NewOverrides(map[string]any{"istiod": map[string]any{"istiodRemote": map[string]any{
		"injectionURL": "https://127.0.0.1:1/inject", "injectionCABundle": base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")),
	}}})
	e := &helm.Engine{Getter: flags, Charts: meshtest.IstioCharts(t), Timeout: 2 * time.Minute}
	if _, err := e.Install(ctx, p, ov); err != nil {
		t.Fatal(err)
	}
	for name, labels := range map[string]map[string]string{"shop": {"istio-injection": "enabled"}, "next": {"istio.io/rev": "9-99"}} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The webhook points nowhere, so the meshed pod is created in a namespace without the label.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "app"}, Spec: corev1.PodSpec{NodeName: c.Nodes[0],
		Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web"}, {Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.30.4"}}}}
	if _, err := c.Client.CoreV1().Pods("app").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.Client.CoreV1().Pods("app").Get(ctx, "web-0", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	}); err != nil {
		t.Fatal(err)
	}

	checks, out, err = run(ctx, c.Kubeconfig)
	for _, want := range []struct {
		status check.Status
		text   string
	}{
		{check.OK, "istiod 1.30.3 (revision default) in istio-system: 1 of 1 replicas ready"},
		{check.OK, "istio-sidecar-injector (revision default): 4 webhooks configured"},
		{check.OK, "networking.istio.io: "},
		{check.OK, "shop: revision default"},
		{check.Failed, "next: revision 9-99, which no ready istiod serves"},
		{check.OK, "proxy 1.30.4, revision default: 1 of 1 connected and ready"},
	} {
		if !has(checks, want.status, want.text) {
			t.Errorf("no %s check %q:\n%s", want.status, want.text, out)
		}
	}
	if cli.Code(err) != cli.ExitFindings {
		t.Errorf("exit %d with a failed check, want 1", cli.Code(err))
	}
}
