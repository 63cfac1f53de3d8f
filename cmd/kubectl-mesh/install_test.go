package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
)

// TestInstallRunsItsSibling drives `kubectl mesh install` through the built binaries: it runs
// kubectl-mesh-install with the arguments and streams, its exit status comes back, and without
// the sibling the error says where to get it.
func TestInstallRunsItsSibling(t *testing.T) {
	charts := meshtest.IstioCharts(t)
	r := runEnv(t, []string{"KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}, "install", "--dry-run", "--charts", charts, "--version", meshtest.IstioVersion, "--revision", "1-30")
	if r.code != 0 {
		t.Fatalf("install --dry-run: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"kind: CustomResourceDefinition", "name: istiod-1-30", "kind: Telemetry", "expression: response.code >= 400"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("manifests lack %q", want)
		}
	}
	if r := run(t, "install", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--charts") || !strings.Contains(r.stdout, "kubectl mesh install") {
		t.Errorf("install --help: exit %d\n%s", r.code, r.stdout)
	}
	if r := run(t, "install", "--profile", "demo"); r.code != 2 || !strings.Contains(r.stderr, "not for production") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("--profile demo: exit %d, stderr %q: want exit 2 and one line", r.code, r.stderr)
	}
	if r := run(t, "uninstall", "--kubeconfig", filepath.Join(t.TempDir(), "none")); r.code != 2 || !strings.Contains(r.stderr, "kubeconfig") {
		t.Errorf("uninstall without a cluster: exit %d, %q", r.code, r.stderr)
	}

	// Without its sibling.
	alone := filepath.Join(t.TempDir(), "kubectl-mesh")
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	saved := binary
	binary = alone
	defer func() { binary = saved }()
	r = runEnv(t, []string{"PATH=/usr/bin:/bin"}, "install", "--dry-run")
	if r.code != 2 || !strings.Contains(r.stderr, "kubectl-mesh-install was not found") {
		t.Errorf("without kubectl-mesh-install: exit %d, %q", r.code, r.stderr)
	}
}
