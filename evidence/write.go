package evidence

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Writing evidence: a capture's files, in the order they were taken, to a folder or an archive
// that ReadDir and ReadArchive read back.

// WriteDir writes the files into dir, creating it when missing. A file already in dir with the
// name of an evidence file is replaced; other files are left alone.
func (s *Set) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("evidence folder: %w", err)
	}
	for _, name := range s.names {
		b, err := s.onDisk(name)
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
func (s *Set) onDisk(name string) ([]byte, error) {
	b := s.files[name]
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
func (s *Set) WriteTarGz(w io.Writer, dir string, mtime time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: mtime}); err != nil {
		return err
	}
	for _, name := range s.names {
		b, err := s.onDisk(name)
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

// ArchiveFolderName is the top folder inside an archive written to path.
func ArchiveFolderName(path string) string {
	base := filepath.Base(path)
	base = strings.TrimSuffix(strings.TrimSuffix(base, ".tgz"), ".tar.gz")
	if base == "" || base == "." {
		return "capture"
	}
	return base
}
