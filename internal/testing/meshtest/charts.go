package meshtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// Charts copies the test charts shaped like Istio's (testdata/charts, at src) into a folder
// with Istio's CRDs from the istio.io/api module in the base chart, and returns the folder.
func Charts(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	if err := CopyCharts(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// CopyCharts copies the test charts at src into dst, adding Istio's CRDs to the base chart as
// base/files/crd-all.gen.yaml.
func CopyCharts(src, dst string) error {
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		return err
	}
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		return err
	}
	// files/ holds only this file, which git does not keep: a fresh clone has no such folder.
	if err := os.MkdirAll(filepath.Join(dst, "base", "files"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dst, "base", "files", "crd-all.gen.yaml"), []byte(crds), 0o644)
}

// IstioVersion is the release of Istio's real charts beside the project.
const IstioVersion = "1.30.3"

// IstioCharts is the folder of Istio's real charts of IstioVersion beside the project
// (../shared/istio-charts, see its SOURCES.md), which install's --charts reads as it is; in CI
// their absence fails the test, elsewhere it skips it.
func IstioCharts(t testing.TB) string {
	t.Helper()
	root, err := testcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "..", "shared", "istio-charts", IstioVersion)
	if _, err := os.Stat(filepath.Join(dir, "ztunnel", "Chart.yaml")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Istio's charts are missing: %v", err)
		}
		t.Skipf("Istio's charts are not beside the project (%v)", err)
	}
	return dir
}
