package install

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func runRoot(ctx context.Context, args ...string) (string, string, error) {
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewRootCmd(streams)
	root.SetArgs(DispatchArgs(args))
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func report(t *testing.T, out string) Report {
	t.Helper()
	var r Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not a report: %v\n%.500s", err, out)
	}
	return r
}

// TestInstallCommand installs Istio's real 1.30.3 charts through the command on the real
// control plane (kwok runs istiod's and the gateway's pods; the real CRDs and injector webhook
// configuration are created): checks, releases and Telemetry; a second run changes nothing; a
// preflight failure stops it; uninstall removes what it made.
func TestInstallCommand(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	charts := meshtest.IstioCharts(t)
	kc := "--kubeconfig=" + c.Kubeconfig
	// The gateway's pods go through the injector webhook, which istiod serves: kwok runs no
	// istiod, so the chart's own remote-injector values point the webhook at one in the test.
	inj := meshtest.ServeInjector(t)
	base := []string{kc, "--version", "1.30.3", "--charts", charts, "--skip-node-probe", "--timeout", "2m", "-o", "json",
		"--set", "istiod.istiodRemote.injectionURL=" + inj.URL + "/default",
		"--set", "istiod.istiodRemote.injectionCABundle=" + base64.StdEncoding.EncodeToString(inj.CABundle),
		// An upgrade makes the chart's validation webhook fail closed, and no istiod answers it.
		"--set", "istiod.base.validationURL=" + inj.ValidationURL,
		"--set", "istiod.base.validationCABundle=" + base64.StdEncoding.EncodeToString(inj.CABundle),
		"--set", "base.base.validationURL=" + inj.ValidationURL,
		"--set", "base.base.validationCABundle=" + base64.StdEncoding.EncodeToString(inj.CABundle)}

	// Istio 1.25 does not support Kubernetes 1.33: nothing is installed.
	if _, _, err := runRoot(ctx, append(base, "--version", "1.25.3")...); cli.Code(err) != cli.ExitFindings || !strings.Contains(err.Error(), "preflight check failed") {
		t.Fatalf("install of an unsupported release: %v", err)
	}
	if l, _ := c.Client.CoreV1().Secrets("istio-system").List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"}); l != nil && len(l.Items) > 0 {
		t.Fatal("a failed preflight installed a release")
	}

	out, stderr, err := runRoot(ctx, base...)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, stderr)
	}
	r := report(t, out)
	if check.AnyFailed(r.Checks) || len(r.Releases) != 3 || r.Telemetry == nil || r.Telemetry.Action != "created" {
		t.Fatalf("install report: %+v", r)
	}
	for _, s := range r.Releases {
		if s.Action != "installed" {
			t.Errorf("%s: %s", s.Name, s.Action)
		}
	}
	if !strings.Contains(stderr, "running the preflight checks") || !strings.Contains(stderr, "istiod (release istiod in istio-system, 2 of 3)") {
		t.Errorf("progress on stderr:\n%s", stderr)
	}

	out, _, err = runRoot(ctx, base...)
	if err != nil {
		t.Fatal(err)
	}
	r = report(t, out)
	for _, s := range r.Releases {
		if s.Action != "unchanged" {
			t.Errorf("second install: %s %s", s.Name, s.Action)
		}
	}
	if r.Telemetry.Action != "unchanged" {
		t.Errorf("second install: Telemetry %s", r.Telemetry.Action)
	}

	text, _, err := runRoot(ctx, kc, "--check", "--skip-node-probe")
	if err != nil || !strings.Contains(text, "was installed by kubectl-mesh: this install upgrades it") || !strings.Contains(text, "✓ Kubernetes 1.33") {
		t.Errorf("--check after the install: %v\n%s", err, text)
	}
	// A server dry run writes nothing, so it starts no probe pod, even with --check.
	text, _, err = runRoot(ctx, kc, "--check", "--dry-run=server")
	if err != nil || !strings.Contains(text, "a dry run starts no probe pod") {
		t.Errorf("--check --dry-run=server: %v\n%s", err, text)
	}
	probes := metav1.ListOptions{LabelSelector: nodes.ProbeLabel + "=" + nodes.ProbeValue}
	if pods, err := c.Client.CoreV1().Pods("").List(ctx, probes); err != nil || len(pods.Items) != 0 {
		t.Errorf("probe pods after a server dry run: %v %v", err, pods)
	}

	out, _, err = runRoot(ctx, "uninstall", kc, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var un struct {
		Telemetry string `json:"telemetry"`
		Releases  []struct {
			Chart, Action string
		} `json:"releases"`
	}
	if err := json.Unmarshal([]byte(out), &un); err != nil {
		t.Fatal(err)
	}
	if un.Telemetry != "deleted" || len(un.Releases) != 3 {
		t.Fatalf("uninstall: %s", out)
	}
	for _, s := range un.Releases {
		if s.Action != "uninstalled" {
			t.Errorf("uninstall %s: %s", s.Chart, s.Action)
		}
	}
}

// TestIstioctlEngine writes the IstioOperator with the overrides and runs istioctl on it.
// istioctl cannot be had here, so a stand-in on PATH records how it was run; the Telemetry is
// applied on the real API server.
func TestIstioctlEngine(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, crds); err != nil {
		t.Fatal(err)
	}
	// What istioctl install makes before the Telemetry is applied: the CRDs and istio-system.
	if err := c.Apply(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}"); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	fake := "#!/bin/sh\necho \"$@\" >> " + calls + "\n"
	if err := os.WriteFile(filepath.Join(bin, "istioctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	op := filepath.Join(t.TempDir(), "op.yaml")
	_, stderr, err := runRoot(ctx, "--kubeconfig="+c.Kubeconfig, "--engine", "istioctl", "--operator-file", op, "--skip-node-probe",
		"--set", "operator.components.pilot.k8s.replicaCount=2", "--profile", "minimal")
	if err != nil {
		t.Fatalf("install --engine istioctl: %v\n%s", err, stderr)
	}
	got, _ := os.ReadFile(calls)
	if !strings.Contains(string(got), "install -y -f "+op+" --kubeconfig "+c.Kubeconfig) {
		t.Errorf("istioctl ran with %q", got)
	}
	b, _ := os.ReadFile(op)
	for _, want := range []string{"kind: IstioOperator", "profile: minimal", "replicaCount: 2", "cpu: 500m", "enabled: false"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the IstioOperator lacks %q:\n%s", want, b)
		}
	}
	if _, err := c.Dynamic.Resource(telemetryGVR).Namespace("istio-system").Get(ctx, "mesh-default", metav1.GetOptions{}); err != nil {
		t.Errorf("Telemetry not applied: %v", err)
	}
	// Without istioctl on PATH the IstioOperator is still written, and the error says what to run.
	t.Setenv("PATH", "/nonexistent")
	if _, _, err := runRoot(ctx, "--kubeconfig="+c.Kubeconfig, "--engine", "istioctl", "--operator-file", op, "--skip-node-probe"); cli.Code(err) != cli.ExitUsage || !strings.Contains(err.Error(), "istioctl install -f "+op) {
		t.Errorf("no istioctl: %v", err)
	}
}

func TestDispatchArgs(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "install",
		"--dry-run":               "install --dry-run",
		"install --dry-run":       "install --dry-run",
		"uninstall --purge-crds":  "uninstall --purge-crds",
		"--context x --check":     "install --context x --check",
		"__complete install --pr": "__complete install --pr",
	} {
		var args []string
		if in != "" {
			args = strings.Fields(in)
		}
		if got := strings.Join(DispatchArgs(args), " "); got != want {
			t.Errorf("DispatchArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

var telemetryGVR = schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}
