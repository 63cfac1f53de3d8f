// Command dist builds the release archives: for each platform, kubectl-mesh, kubectl-mesh-install
// and kubectl_complete-mesh with LICENSE and README.md, as kubectl-mesh_VERSION_OS_ARCH.tar.gz
// (.zip for Windows), and checksums.txt with their SHA-256, as `make dist VERSION=vX.Y.Z` runs it.
// Archives are reproducible: fixed file order, modes, owners and times.
//
//	go run ./hack/dist -version v0.2.0 -commit abc1234 -out dist
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Platform is one os/arch a release ships for.
type Platform struct{ OS, Arch string }

// Platforms are the release's, as krew names them.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

const pkg = "github.com/kubectl-mesh/kubectl-mesh"

// completeScript is kubectl_complete-mesh: kubectl (1.26+) runs it to complete the arguments of
// `kubectl mesh`, and it asks kubectl-mesh, which sits beside it on PATH.
const completeScript = `#!/bin/sh
# kubectl runs this to complete "kubectl mesh ..." (kubectl 1.26 and later): put it on PATH.
exec kubectl-mesh __complete "$@"
`

// mtime is the time every archived file carries, so that two builds of a version are the same.
var mtime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

func main() {
	version := flag.String("version", "", "release version, vX.Y.Z")
	commit := flag.String("commit", "unknown", "commit the version is built from")
	out := flag.String("out", "dist", "folder of the archives")
	only := flag.String("platforms", "", "comma-separated os/arch to build (default: all)")
	flag.Parse()
	if !semver.MatchString(*version) {
		fail(fmt.Errorf("-version %q is not a semantic version with a v (v0.2.0): krew requires one", *version))
	}
	platforms := Platforms
	if *only != "" {
		platforms = nil
		for _, p := range strings.Split(*only, ",") {
			os, arch, ok := strings.Cut(p, "/")
			if !ok {
				fail(fmt.Errorf("-platforms takes os/arch, got %q", p))
			}
			platforms = append(platforms, Platform{os, arch})
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	var sums []string
	for _, p := range platforms {
		name, err := build(p, *version, *commit, *out)
		if err != nil {
			fail(fmt.Errorf("%s/%s: %w", p.OS, p.Arch, err))
		}
		sum, err := fileSHA256(filepath.Join(*out, name))
		if err != nil {
			fail(err)
		}
		sums = append(sums, sum+"  "+name)
		fmt.Fprintf(os.Stderr, "dist: %s\n", name)
	}
	sort.Strings(sums)
	if err := os.WriteFile(filepath.Join(*out, "checksums.txt"), []byte(strings.Join(sums, "\n")+"\n"), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dist:", err)
	os.Exit(1)
}

// ArchiveName is the archive of a platform.
func ArchiveName(version string, p Platform) string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("kubectl-mesh_%s_%s_%s%s", version, p.OS, p.Arch, ext)
}

type entry struct {
	name string
	mode int64
	body []byte
}

func build(p Platform, version, commit, out string) (string, error) {
	tmp, err := os.MkdirTemp("", "kubectl-mesh-dist-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	exe := ""
	if p.OS == "windows" {
		exe = ".exe"
	}
	ldflags := fmt.Sprintf("-s -w -X %s/plugins/version.Version=%s -X %s/plugins/version.Commit=%s", pkg, version, pkg, commit)
	var entries []entry
	for _, bin := range []string{"kubectl-mesh", "kubectl-mesh-install"} {
		path := filepath.Join(tmp, bin+exe)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", path, "./cmd/"+bin)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go build %s: %w", bin, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		entries = append(entries, entry{bin + exe, 0o755, b})
	}
	if p.OS != "windows" {
		entries = append(entries, entry{"kubectl_complete-mesh", 0o755, []byte(completeScript)})
	}
	for _, f := range []string{"LICENSE", "README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		entries = append(entries, entry{f, 0o644, b})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	name := ArchiveName(version, p)
	var buf bytes.Buffer
	if p.OS == "windows" {
		err = writeZip(&buf, entries)
	} else {
		err = writeTarGz(&buf, entries)
	}
	if err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(out, name), buf.Bytes(), 0o644)
}

func writeTarGz(w io.Writer, entries []entry) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	gz.ModTime = mtime
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(e.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, entries []entry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mtime}
		hdr.SetMode(os.FileMode(e.mode))
		f, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := f.Write(e.body); err != nil {
			return err
		}
	}
	return zw.Close()
}

func fileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}
