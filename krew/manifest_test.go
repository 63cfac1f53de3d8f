// Package krew tests the krew manifest of the release and installs its archives as krew would.
// krew itself is not obtainable here (its Go module is not served), so the test checks krew's
// published manifest rules and performs an install's steps itself.
package krew

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// Plugin is krew's manifest (krew.googlecontainertools.github.com/v1alpha2 Plugin), the fields
// this test reads.
type Plugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string     `json:"version"`
		Homepage         string     `json:"homepage"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Caveats          string     `json:"caveats"`
		Platforms        []Platform `json:"platforms"`
	} `json:"spec"`
}

// Platform is one platform of the manifest.
type Platform struct {
	Selector struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []struct {
			Key      string   `json:"key"`
			Operator string   `json:"operator"`
			Values   []string `json:"values"`
		} `json:"matchExpressions"`
	} `json:"selector"`
	URI    string `json:"uri"`
	Sha256 string `json:"sha256"`
	Bin    string `json:"bin"`
	Files  []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files"`
}

var (
	nameRE   = regexp.MustCompile(`^[\w-]+$`)
	semverRE = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	shaRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// platforms krew knows, to check that no two selectors match one.
	oses   = []string{"linux", "darwin", "windows", "freebsd"}
	arches = []string{"amd64", "arm64", "386", "arm", "ppc64le", "s390x"}
	// release are the platforms every release ships for.
	release = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"}
)

// distDir is where make dist and make krew-manifest wrote the archives and mesh.yaml.
func distDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KREW_DIST")
	if dir == "" {
		dir = filepath.Join("..", "dist")
	}
	if _, err := os.Stat(filepath.Join(dir, "mesh.yaml")); err != nil {
		msg := "no release to check in " + dir + ": run make krew-test (it runs make dist VERSION=... and make krew-manifest first)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func load(t *testing.T, dir string) *Plugin {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "mesh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p Plugin
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		// Strict: a field krew does not know is a typo krew would reject.
		t.Fatalf("mesh.yaml: %v", err)
	}
	return &p
}

// selects reports whether a platform's selector matches os/arch.
func (p Platform) selects(os, arch string) bool {
	labels := map[string]string{"os": os, "arch": arch}
	for k, v := range p.Selector.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range p.Selector.MatchExpressions {
		in := false
		for _, v := range e.Values {
			in = in || labels[e.Key] == v
		}
		if e.Operator == "In" && !in || e.Operator == "NotIn" && in {
			return false
		}
	}
	return true
}

// TestManifestRules checks krew's manifest rules on the filled manifest.
func TestManifestRules(t *testing.T) {
	dir := distDir(t)
	p := load(t, dir)
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" {
		t.Errorf("apiVersion %q kind %q", p.APIVersion, p.Kind)
	}
	if p.Metadata.Name != "mesh" || !nameRE.MatchString(p.Metadata.Name) {
		t.Errorf("metadata.name %q: must be the file's name (mesh) and match %s", p.Metadata.Name, nameRE)
	}
	if !semverRE.MatchString(p.Spec.Version) {
		t.Errorf("spec.version %q is not a semantic version with a leading v", p.Spec.Version)
	}
	if s := p.Spec.ShortDescription; s == "" || strings.Contains(s, "\n") || len(s) > 255 {
		t.Errorf("shortDescription %q: one line", s)
	}
	if p.Spec.Description == "" {
		t.Error("no description")
	}
	for _, want := range []string{"probe pod", "pods/portforward", "kubectl mesh rbac"} {
		if !strings.Contains(p.Spec.Caveats, want) {
			t.Errorf("caveats do not mention %q (node checks start probe pods; the RBAC the tool needs)", want)
		}
	}
	if u, err := url.Parse(p.Spec.Homepage); err != nil || u.Scheme != "https" {
		t.Errorf("homepage %q", p.Spec.Homepage)
	}
	covered := map[string]int{}
	for i, pl := range p.Spec.Platforms {
		if len(pl.Selector.MatchLabels) == 0 && len(pl.Selector.MatchExpressions) == 0 {
			t.Errorf("platform %d has an empty selector, which matches every platform", i)
		}
		for k := range pl.Selector.MatchLabels {
			if k != "os" && k != "arch" {
				t.Errorf("platform %d selects on label %q: only os and arch are set by krew", i, k)
			}
		}
		for _, e := range pl.Selector.MatchExpressions {
			if e.Key != "os" && e.Key != "arch" {
				t.Errorf("platform %d selects on label %q", i, e.Key)
			}
		}
		for _, o := range oses {
			for _, a := range arches {
				if pl.selects(o, a) {
					covered[o+"/"+a]++
				}
			}
		}
		if u, err := url.Parse(pl.URI); err != nil || u.Scheme != "https" || !strings.Contains(pl.URI, p.Spec.Version) {
			t.Errorf("platform %d uri %q: https, naming the version", i, pl.URI)
		}
		if !shaRE.MatchString(pl.Sha256) {
			t.Errorf("platform %d sha256 %q is not 64 lowercase hex digits", i, pl.Sha256)
		}
		if pl.Bin == "" {
			t.Errorf("platform %d has no bin", i)
		}
		license := false
		for _, f := range pl.Files {
			if f.From == "" || f.To == "" {
				t.Errorf("platform %d: a files entry without from or to: %+v", i, f)
			}
			license = license || path.Base(f.From) == "LICENSE" && (f.To == "." || f.To == "LICENSE")
		}
		if !license {
			t.Errorf("platform %d does not put LICENSE in the install folder", i)
		}
	}
	for k, n := range covered {
		if n > 1 {
			t.Errorf("%s is matched by %d platforms: krew would not know which to install", k, n)
		}
	}
	for _, k := range release {
		if covered[k] != 1 {
			t.Errorf("%s has no platform", k)
		}
	}
}

// TestInstallLikeKrew installs every platform's archive as krew does, then runs this machine's
// through a real kubectl's plugin discovery, completion included.
func TestInstallLikeKrew(t *testing.T) {
	dir := distDir(t)
	p := load(t, dir)
	var here string
	for _, pl := range p.Spec.Platforms {
		t.Run(path.Base(pl.URI), func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(dir, path.Base(pl.URI)))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			if got := hex.EncodeToString(sum[:]); got != pl.Sha256 {
				t.Fatalf("sha256 %s, the manifest says %s", got, pl.Sha256)
			}
			extracted := t.TempDir()
			if strings.HasSuffix(pl.URI, ".zip") {
				err = unzip(body, extracted)
			} else {
				err = untar(body, extracted)
			}
			if err != nil {
				t.Fatal(err)
			}
			installDir := t.TempDir()
			for _, f := range pl.Files {
				if err := applyFiles(extracted, installDir, f.From, f.To); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range []string{pl.Bin, "LICENSE"} {
				st, err := os.Stat(filepath.Join(installDir, want))
				if err != nil {
					t.Fatalf("%s not in the install folder: %v", want, err)
				}
				if want == pl.Bin && !strings.HasSuffix(pl.Bin, ".exe") && st.Mode()&0o111 == 0 {
					t.Errorf("%s is not executable", want)
				}
			}
			if pl.selects(runtime.GOOS, runtime.GOARCH) {
				here = installDir
				runThroughKubectl(t, installDir, pl, p.Spec.Version)
			}
		})
	}
	if here == "" {
		t.Errorf("no platform of the manifest is %s/%s", runtime.GOOS, runtime.GOARCH)
	}
}

// runThroughKubectl links the plugin into a PATH of its own, as krew links it into ~/.krew/bin,
// and runs kubectl mesh version, kubectl plugin list and a completion through kubectl.
func runThroughKubectl(t *testing.T, installDir string, pl Platform, version string) {
	kubectl := filepath.Join(testcluster.RequireBinDir(t), "kubectl")
	binDir := t.TempDir()
	for _, name := range []string{"kubectl-mesh", "kubectl_complete-mesh"} {
		if err := os.Symlink(filepath.Join(installDir, name), filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		cmd := exec.Command(kubectl, args...)
		cmd.Env = []string{"PATH=" + binDir, "HOME=" + t.TempDir(), "KUBECONFIG=" + filepath.Join(t.TempDir(), "none")}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("mesh", "version"); !strings.Contains(out, version) {
		t.Errorf("kubectl mesh version printed %q, want %s", out, version)
	}
	if out := run("plugin", "list"); !strings.Contains(out, filepath.Join(binDir, "kubectl-mesh")) {
		t.Errorf("kubectl plugin list:\n%s", out)
	}
	if out := run("__complete", "mesh", "expl"); !strings.Contains(out, "explain") {
		t.Errorf("kubectl __complete mesh expl (through kubectl_complete-mesh):\n%s", out)
	}
	// install dispatches to kubectl-mesh-install, which the files rules put beside the binary.
	if out := run("mesh", "install", "--help"); !strings.Contains(out, "--charts") {
		t.Errorf("kubectl mesh install --help:\n%.400s", out)
	}
}

// applyFiles copies what a files rule names, as krew does: from is a glob in the archive, to a
// folder (or a name) in the install folder.
func applyFiles(from, to, glob, dest string) error {
	matches, err := filepath.Glob(filepath.Join(from, filepath.FromSlash(glob)))
	if err != nil {
		return err
	}
	if len(matches) == 0 {
		return errors.New("files rule " + glob + " matches nothing in the archive")
	}
	for _, m := range matches {
		target := filepath.Join(to, filepath.FromSlash(dest))
		if dest == "." || strings.HasSuffix(dest, "/") {
			target = filepath.Join(target, filepath.Base(m))
		}
		b, err := os.ReadFile(m)
		if err != nil {
			return err
		}
		st, _ := os.Stat(m)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, b, st.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func untar(body []byte, dir string) error {
	gz, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		target := filepath.Join(dir, filepath.Clean(hdr.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			return errors.New("archive entry " + hdr.Name + " leaves the folder")
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, os.FileMode(hdr.Mode).Perm()); err != nil {
			return err
		}
	}
}

func unzip(body []byte, dir string) error {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		target := filepath.Join(dir, filepath.Clean(f.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			return errors.New("archive entry " + f.Name + " leaves the folder")
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, f.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
