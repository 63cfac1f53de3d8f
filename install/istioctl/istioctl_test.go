package istioctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

func profile(t *testing.T) (*install.Profile, install.Overrides) {
	t.Helper()
	p, err := install.NewProfile(install.ProfileMinimal, "")
	if err != nil {
		t.Fatal(err)
	}
	o, err := install.NewOverrides(map[string]any{"operator": map[string]any{"hub": "registry.internal/istio"}})
	if err != nil {
		t.Fatal(err)
	}
	return p, o
}

func TestOperatorCarriesTheOverrides(t *testing.T) {
	p, o := profile(t)
	b, err := Operator(p, o)
	if err != nil {
		t.Fatal(err)
	}
	var op map[string]any
	if err := yaml.Unmarshal(b, &op); err != nil {
		t.Fatal(err)
	}
	spec, _ := op["spec"].(map[string]any)
	if op["kind"] != "IstioOperator" || spec["hub"] != "registry.internal/istio" {
		t.Errorf("kind %v, spec.hub %v; want an IstioOperator with the override", op["kind"], spec["hub"])
	}
}

func TestClientDryRunOnlyPrints(t *testing.T) {
	p, o := profile(t)
	dir := t.TempDir()
	var out bytes.Buffer
	e := &Engine{DryRun: apply.DryRunClient, Manifests: &out, OperatorFile: filepath.Join(dir, "op.yaml"),
		LookPath: func(string) (string, error) {
			t.Error("a client dry run looked for istioctl")
			return "", errors.New("no")
		}}
	path, err := e.Install(context.Background(), p, o)
	if err != nil || path != "" {
		t.Fatalf("path %q, err %v", path, err)
	}
	if !strings.HasPrefix(out.String(), "---\n") || !strings.Contains(out.String(), "kind: IstioOperator") {
		t.Errorf("printed %q; want the IstioOperator", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "op.yaml")); err == nil {
		t.Error("a client dry run wrote the IstioOperator file")
	}
}

func TestNoIstioctlLeavesTheFile(t *testing.T) {
	p, o := profile(t)
	file := filepath.Join(t.TempDir(), "op.yaml")
	e := &Engine{OperatorFile: file, Progress: &bytes.Buffer{}, LookPath: func(string) (string, error) { return "", errors.New("not found") }}
	path, err := e.Install(context.Background(), p, o)
	if !errors.Is(err, ErrNoIstioctl) || path != file || !strings.Contains(err.Error(), "istioctl install -f "+file) {
		t.Fatalf("path %q, err %v; want ErrNoIstioctl naming the file to install", path, err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the IstioOperator was not written: %v", err)
	}
}

// TestRunsIstioctl runs a stand-in istioctl that records its arguments.
func TestRunsIstioctl(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in istioctl is a shell script")
	}
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "istioctl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" > "+argsFile+"\necho '✔ Installation complete'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, o := profile(t)
	for _, tc := range []struct {
		dryRun apply.DryRun
		want   string
	}{
		{apply.DryRunNone, "install -y -f " + filepath.Join(dir, "op.yaml") + " --kubeconfig /k --context prod"},
		{apply.DryRunServer, "install -y -f " + filepath.Join(dir, "op.yaml") + " --dry-run --kubeconfig /k --context prod"},
	} {
		var progress bytes.Buffer
		e := &Engine{Kubeconfig: "/k", Context: "prod", OperatorFile: filepath.Join(dir, "op.yaml"), DryRun: tc.dryRun, Progress: &progress,
			LookPath: func(string) (string, error) { return fake, nil }}
		if _, err := e.Install(context.Background(), p, o); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(argsFile)
		if strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("dry run %q: istioctl %s; want %s", tc.dryRun, got, tc.want)
		}
		if !strings.Contains(progress.String(), "Installation complete") {
			t.Errorf("istioctl's output did not reach the progress stream: %q", progress.String())
		}
	}
}

func TestIstioctlFailureIsAnError(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in istioctl is a shell script")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "istioctl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Error: failed to install' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, o := profile(t)
	e := &Engine{OperatorFile: filepath.Join(dir, "op.yaml"), Progress: &bytes.Buffer{}, LookPath: func(string) (string, error) { return fake, nil }}
	if _, err := e.Install(context.Background(), p, o); err == nil || !strings.Contains(err.Error(), "istioctl install -f op.yaml") {
		t.Errorf("err = %v; want istioctl's failure", err)
	}
}
