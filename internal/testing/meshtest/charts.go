package meshtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

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
