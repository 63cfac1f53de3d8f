package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

// The binary is built once and driven as a user would, in a temp dir: exit codes, streams and
// output formats are part of the product that unit tests of the packages do not see.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubectl-mesh-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kubectl-mesh")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	// Its sibling for install and uninstall, beside it as krew and the archives put it.
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kubectl-mesh-install"), "../kubectl-mesh-install").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	return runEnv(t, nil, args...)
}

// runEnv runs the binary with extra environment variables (which win over the test's).
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errOut.String(), "goroutine ") || strings.Contains(errOut.String(), "panic:") {
		t.Fatalf("stack trace on stderr for %v:\n%s", args, errOut.String())
	}
	return result{out.String(), errOut.String(), code}
}

func incident(name string) string {
	abs, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "incidents", name))
	return abs
}

func TestWhySlowFromFolder(t *testing.T) {
	r := run(t, "why-slow", "--from", incident("timeout"), "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report struct {
		Target   string `json:"target"`
		Findings []struct {
			Code, Category string
			Evidence       []struct{ Source string }
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &report); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, r.stdout)
	}
	if len(report.Findings) == 0 || report.Findings[0].Category != "timeout" || report.Findings[0].Code != "MESH0101" {
		t.Fatalf("top finding = %+v", report.Findings)
	}
	if !strings.Contains(report.Target, "productpage") {
		t.Errorf("target = %q", report.Target)
	}
	yaml := run(t, "why-slow", "--from", incident("timeout"), "-o", "yaml")
	if yaml.code != 0 || !strings.Contains(yaml.stdout, "category: timeout") {
		t.Errorf("-o yaml: exit %d\n%s", yaml.code, yaml.stdout)
	}
	text := run(t, "why-slow", "--from", incident("timeout"))
	if text.code != 0 || !strings.Contains(text.stdout, "1. ERROR MESH0101 [timeout]") || strings.Contains(text.stdout, "\x1b[") {
		t.Errorf("text output (no colour when not a terminal):\n%s", text.stdout)
	}
}

func TestExitCodes(t *testing.T) {
	home := t.TempDir()
	unreachable := filepath.Join(home, "unreachable.kubeconfig")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	noConfig := []string{"HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "absent"), "KUBERNETES_SERVICE_HOST="}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // a single line containing this
		env    []string
	}{
		{"ran with findings", []string{"why-slow", "--from", incident("keepalive-race")}, 0, "", nil},
		{"fail-on error with an error finding", []string{"why-slow", "--from", incident("keepalive-race"), "--fail-on", "error"}, 1, "", nil},
		{"fail-on error on a healthy proxy", []string{"why-slow", "--from", incident("healthy"), "--fail-on", "warning"}, 0, "", nil},
		{"missing folder", []string{"why-slow", "--from", "/nonexistent/capture"}, 2, "evidence folder", nil},
		{"empty folder", []string{"why-slow", "--from", "."}, 2, "holds no evidence files", nil},
		{"no kubeconfig", []string{"why-slow", "pod/web-0"}, 2, "no kubeconfig found", noConfig},
		{"capture without a kubeconfig", []string{"capture", "pod/web-0", "-o", filepath.Join(home, "capture")}, 2,
			"no kubeconfig found: set KUBECONFIG or --kubeconfig to reach a cluster, or use why-slow --from on a captured folder", noConfig},
		{"rbac --check without a kubeconfig", []string{"rbac", "--check"}, 2, "no kubeconfig found", noConfig},
		{"unreachable API server", []string{"why-slow", "-n", "default", "--kubeconfig", unreachable}, 2, "check that the cluster is reachable", nil},
		{"from with a pod", []string{"why-slow", "pod/web-0", "--from", incident("healthy")}, 2, "leave out", nil},
		{"bad fail-on", []string{"why-slow", "--from", incident("healthy"), "--fail-on", "fatal"}, 2, "unknown severity", nil},
		{"bad output", []string{"why-slow", "--from", incident("healthy"), "-o", "wide"}, 2, "unknown output format", nil},
		{"unknown flag", []string{"why-slow", "--frm", "x"}, 2, "unknown flag", nil},
		{"unknown command", []string{"why-fast"}, 2, "unknown command", nil},
		{"explain nonsense", []string{"explain", "hello world"}, 2, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runEnv(t, tc.env, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.code == 2 {
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") || !strings.Contains(lines[0], tc.stderr) {
					t.Errorf("stderr should be one clear line containing %q, got:\n%s", tc.stderr, r.stderr)
				}
			}
		})
	}
}

func TestExplainAndClustersAndVersion(t *testing.T) {
	r := run(t, "explain", "upstream connect error or disconnect/reset before headers. reset reason: connection termination", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"code": "MESH0401"`) {
		t.Errorf("explain: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	dump := captures.Path(t, "config_dump/istio-echo-sidecar-2020-v3-mixed.json")
	r = run(t, "clusters", "--file", dump, "-o", "json")
	var settings []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &settings); err != nil || r.code != 0 {
		t.Fatalf("clusters -o json: exit %d, %v\n%s", r.code, err, r.stderr)
	}
	if len(settings) != 87 {
		t.Errorf("the 2020 echo dump has 87 clusters, listed %d", len(settings))
	}
	r = run(t, "clusters", "--from", incident("circuit-breaker"))
	if r.code != 0 || !strings.Contains(r.stdout, "outbound|9080||reviews.default.svc.cluster.local") || !strings.HasPrefix(r.stdout, "CLUSTER") {
		t.Errorf("clusters table:\n%s", r.stdout)
	}
	r = run(t, "version", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"goVersion"`) {
		t.Errorf("version: %s", r.stdout)
	}
	r = run(t, "--help")
	if !strings.Contains(r.stdout, "kubectl mesh why-slow --from") || !strings.Contains(r.stdout, "--kubeconfig") || !strings.Contains(r.stdout, "--context") {
		t.Errorf("help should read as kubectl mesh and carry kubectl's flags:\n%s", r.stdout)
	}
}

// TestExplainTextGolden pins explain's human output for the error users paste most.
func TestExplainTextGolden(t *testing.T) {
	r := run(t, "explain", "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden.Check(t, filepath.Join("testdata", "explain-connect-refused.txt"), []byte(r.stdout))
}
