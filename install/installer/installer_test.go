package installer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/istioctl"
)

func profile(t *testing.T) *install.Profile {
	t.Helper()
	p, err := install.NewProfile(install.ProfileMinimal, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tooOld is a cluster whose Kubernetes the profile's Istio does not support: the version
// check fails.
func tooOld() (*fake.Clientset, *dynamicfake.FakeDynamicClient) {
	c := fake.NewClientset()
	c.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{Major: "1", Minor: "20", GitVersion: "v1.20.0"}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	return c, dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{crds: "CustomResourceDefinitionList"})
}

func TestClientDryRunPrintsWithoutACluster(t *testing.T) {
	var out, progress bytes.Buffer
	dir := t.TempDir()
	rep, err := Run(context.Background(), Options{Profile: profile(t), Engine: EngineIstioctl, OperatorFile: filepath.Join(dir, "op.yaml"),
		DryRun: apply.DryRunClient, Progress: &progress, Manifests: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kind: IstioOperator") || !strings.Contains(out.String(), "kind: Telemetry") {
		t.Errorf("manifests:\n%s\nwant the IstioOperator and the Telemetry", out.String())
	}
	if !strings.Contains(progress.String(), "preflight checks were skipped") || rep.Stopped || rep.Operator != "" {
		t.Errorf("progress %q, stopped %v, operator %q", progress.String(), rep.Stopped, rep.Operator)
	}
	if _, err := os.Stat(filepath.Join(dir, "op.yaml")); err == nil {
		t.Error("a client dry run wrote a file")
	}
}

func TestAFailedCheckStopsTheInstall(t *testing.T) {
	c, d := tooOld()
	file := filepath.Join(t.TempDir(), "op.yaml")
	o := Options{Client: c, Dynamic: d, Profile: profile(t), Engine: EngineIstioctl, OperatorFile: file, SkipNodeProbe: true, Progress: &bytes.Buffer{}}

	o.CheckOnly = true
	rep, err := Run(context.Background(), o)
	if err != nil || !check.AnyFailed(rep.Checks) || rep.Stopped {
		t.Fatalf("--check: err %v, failed %v, stopped %v; want the failed checks reported", err, check.AnyFailed(rep.Checks), rep.Stopped)
	}

	o.CheckOnly = false
	rep, err = Run(context.Background(), o)
	if err != nil || !rep.Stopped || rep.Operator != "" {
		t.Fatalf("err %v, stopped %v, operator %q; want the install stopped before the engine", err, rep.Stopped, rep.Operator)
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("the engine ran although a check failed")
	}

	// --ignore-checks goes on to the engine (istioctl is not on the test's PATH).
	t.Setenv("PATH", t.TempDir())
	o.IgnoreChecks = true
	rep, err = Run(context.Background(), o)
	if !errors.Is(err, istioctl.ErrNoIstioctl) || rep.Stopped || rep.Operator != file {
		t.Fatalf("err %v, stopped %v, operator %q; want the engine run", err, rep.Stopped, rep.Operator)
	}
}

func TestNodeProbeSkippedWhereItMustNot(t *testing.T) {
	c, d := tooOld()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{SkipNodeProbe: true}, "--skip-node-probe"},
		{Options{DryRun: apply.DryRunServer}, "a dry run starts no probe pod"},
	} {
		tc.o.Client, tc.o.Dynamic, tc.o.Profile = c, d, profile(t)
		pf := preflight(tc.o)
		if pf.Nodes != nil || pf.SkipNodesReason != tc.want {
			t.Errorf("skip reason %q (probe set %v); want %q", pf.SkipNodesReason, pf.Nodes != nil, tc.want)
		}
	}
	if pf := preflight(Options{Client: c, Dynamic: d, Profile: profile(t)}); pf.Nodes == nil {
		t.Error("an install does not probe the nodes")
	}
}
