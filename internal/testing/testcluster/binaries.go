package testcluster

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Environment variables the harness reads.
const (
	// EnvBinDir points at a directory holding the binaries, instead of the cache.
	EnvBinDir = "KUBE_MESH_TESTCLUSTER_BIN"
	// EnvNoCluster=1 skips tests that need the control plane (never in CI).
	EnvNoCluster = "KUBE_MESH_NO_CLUSTER"
	// envCache overrides .cache/testcluster, as it does for hack/testcluster/build.sh.
	envCache = "TESTCLUSTER_CACHE"
)

// binaries are the programs hack/testcluster/build.sh builds.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

const buildHint = "run `make testcluster` (hack/testcluster/build.sh: about 5 minutes and 2 GB cold, " +
	"seconds when cached) or set " + EnvBinDir + " to a directory with " +
	"etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok"

// RequireBinDir returns the directory with the control plane binaries, skipping the
// test when the developer opted out and failing it (with what to run) when they are
// missing. In CI the opt-out is ignored: there the build step must have run.
func RequireBinDir(t testing.TB) string {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if os.Getenv(EnvNoCluster) == "1" {
		if !ci {
			t.Skip("skipped: needs the test control plane and " + EnvNoCluster + "=1 is set")
		}
		t.Log(EnvNoCluster + "=1 is ignored in CI: tests that need the control plane always run there")
	}
	dir, err := BinDir()
	if err != nil {
		t.Fatalf("test control plane: %v\n%s", err, buildHint)
	}
	return dir
}

// BinDir finds the control plane binaries: $KUBE_MESH_TESTCLUSTER_BIN, else the cache
// directory hack/testcluster/build.sh fills for the current versions.
func BinDir() (string, error) {
	dir := os.Getenv(EnvBinDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		key, err := cacheKey(filepath.Join(root, "hack", "testcluster"))
		if err != nil {
			return "", err
		}
		cache := os.Getenv(envCache)
		if cache == "" {
			cache = filepath.Join(root, ".cache", "testcluster")
		}
		dir = filepath.Join(cache, key, "bin")
	}
	var missing []string
	for _, b := range binaries {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%s missing in %s", strings.Join(missing, ", "), dir)
	}
	return dir, nil
}

// crdDir is where build.sh copies the CRDs of the kwok version it built.
func crdDir(binDir string) string {
	return filepath.Join(filepath.Dir(binDir), "kwok-crds")
}

// RepoRoot walks up from the working directory (a package directory under `go test`, or
// anywhere in the repository for the programs under hack/) to the directory that holds
// hack/testcluster.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "testcluster", "versions.env")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it inside the kubectl-mesh repository: hack/testcluster/versions.env is not above the working directory")
		}
		dir = parent
	}
}

// cacheKey names the cache directory exactly as build.sh does: the versions plus the
// first 12 hex digits of sha256(go.mod + go.sum + versions.env).
func cacheKey(moduleDir string) (string, error) {
	h := sha256.New()
	var env []byte
	for _, name := range []string{"go.mod", "go.sum", "versions.env"} {
		b, err := os.ReadFile(filepath.Join(moduleDir, name))
		if err != nil {
			return "", err
		}
		h.Write(b)
		env = b
	}
	v := parseEnv(env)
	for _, k := range []string{"KUBE_VERSION", "ETCD_VERSION", "KWOK_VERSION"} {
		if v[k] == "" {
			return "", fmt.Errorf("%s missing in hack/testcluster/versions.env", k)
		}
	}
	return fmt.Sprintf("kube-%s-etcd-%s-kwok-%s-%s", v["KUBE_VERSION"], v["ETCD_VERSION"], v["KWOK_VERSION"],
		hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// parseEnv reads the KEY=VALUE lines of a shell file that only assigns constants.
func parseEnv(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			m[k] = strings.Trim(v, `"'`)
		}
	}
	return m
}
