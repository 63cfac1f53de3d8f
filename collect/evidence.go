package collect

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// Evidence is an evidence folder held in memory: file names and their content, in the order
// they were captured.
type Evidence struct {
	names []string
	files map[string][]byte
}

// Add stores a file, replacing one of the same name.
func (e *Evidence) Add(name string, b []byte) {
	if e.files == nil {
		e.files = map[string][]byte{}
	}
	if _, ok := e.files[name]; !ok {
		e.names = append(e.names, name)
	}
	e.files[name] = b
}

// Names returns the file names in capture order.
func (e *Evidence) Names() []string { return append([]string(nil), e.names...) }

// File returns a file's content, or nil.
func (e *Evidence) File(name string) []byte { return e.files[name] }

// FS returns the evidence as a read-only file system, for diagnose.LoadFS.
func (e *Evidence) FS() fs.FS {
	return evidence.MemFS(e.files)
}

// WriteDir writes the files into dir, creating it when missing. A file already in dir with the
// name of an evidence file is replaced; other files are left alone.
func (e *Evidence) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("evidence folder: %w", err)
	}
	for _, name := range e.names {
		b, err := e.onDisk(name)
		if err != nil {
			return fmt.Errorf("evidence folder: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return fmt.Errorf("evidence folder: %w", err)
		}
	}
	return nil
}

// onDisk is a file as it is stored: the Kubernetes objects a capture keeps as JSON in memory
// (cheap to write and to read back in a sweep) are written as YAML, as `kubectl get -o yaml`
// prints them, under their .yaml names.
func (e *Evidence) onDisk(name string) ([]byte, error) {
	b := e.files[name]
	if !strings.HasSuffix(name, ".yaml") || !json.Valid(b) {
		return b, nil
	}
	y, err := yaml.JSONToYAML(b)
	if err != nil {
		return nil, fmt.Errorf("%s as YAML: %w", name, err)
	}
	return y, nil
}

// writeFileAtomic writes through a temporary file and a rename, so an interrupted capture never
// leaves a truncated evidence file that would later read as a damaged proxy output.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteTarGz writes the files as a gzip-compressed tar archive under a top folder named dir
// (the archive's base name without .tar.gz, so unpacking it gives an evidence folder).
func (e *Evidence) WriteTarGz(w io.Writer, dir string, mtime time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mtime}); err != nil {
		return err
	}
	for _, name := range e.names {
		b, err := e.onDisk(name)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: dir + "/" + name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// IsArchive reports whether a path names a .tar.gz or .tgz archive rather than a folder.
func IsArchive(path string) bool {
	return strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz")
}

// ArchiveFolderName is the top folder inside an archive written to path.
func ArchiveFolderName(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".tgz"), ".tar.gz")
	if base == "" || base == "." {
		return "capture"
	}
	return base
}

// ReadTarGz reads an evidence archive written by WriteTarGz (or by tar -czf of an evidence
// folder) under the evidence package's rules for input from strangers.
func ReadTarGz(r io.Reader) (*Evidence, error) {
	set, err := evidence.ReadArchive(r, "archive")
	if err != nil {
		return nil, err
	}
	e := &Evidence{}
	for _, name := range set.Files() {
		e.Add(name, set.File(name))
	}
	return e, nil
}
