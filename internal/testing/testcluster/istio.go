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

// GatewayCRD is the Gateway API's Gateway CRD reduced to its names and an open schema: Istio's
// charts do not carry the Gateway API, and waypoints are Gateways.
const GatewayCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gateways.gateway.networking.k8s.io
  annotations: {api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/gateway-api/pull/1538"}
spec:
  group: gateway.networking.k8s.io
  names: {kind: Gateway, listKind: GatewayList, plural: gateways, singular: gateway}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`
