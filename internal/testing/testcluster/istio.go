package testcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// IstioCRDs returns the CRD file that ships in the istio.io/api module the project requires
// (kubernetes/customresourcedefinitions.gen.yaml), so tests and the sandbox serve the same
// Istio kinds and versions the tool is built against.
func IstioCRDs() (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	if root, err := RepoRoot(); err == nil {
		cmd.Dir = root
	}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the istio.io/api module (go list -m istio.io/api): %v; run go mod download istio.io/api", err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "kubernetes", "customresourcedefinitions.gen.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("Istio's CRDs: %v (the istio.io/api module should ship kubernetes/customresourcedefinitions.gen.yaml)", err)
	}
	return string(b), nil
}
