package helm

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxChartFile bounds a file unpacked from a --charts archive; Istio's largest, the CRDs, is
// well under a megabyte.
const maxChartFile = 64 << 20

// unpackCharts unpacks a .tgz of chart folders (or of chart archives) into a temporary folder, and
// returns that folder and the one that holds the charts: the archive's root, or its one top
// folder.
func unpackCharts(archive string) (root, charts string, err error) {
	root, err = os.MkdirTemp("", "kubectl-mesh-charts-")
	if err != nil {
		return "", "", err
	}
	charts, err = unpackInto(archive, root)
	if err != nil {
		os.RemoveAll(root)
		return "", "", err
	}
	return root, charts, nil
}

func unpackInto(archive, dir string) (string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", fmt.Errorf("--charts: %w", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("--charts %s is not a .tgz archive: %w", archive, err)
	}
	tops := map[string]bool{}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("--charts %s: %w", archive, err)
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if name == "." || filepath.IsAbs(name) || strings.HasPrefix(name, ".."+string(filepath.Separator)) || name == ".." {
			return "", fmt.Errorf("--charts %s: entry %q leaves the archive", archive, hdr.Name)
		}
		tops[strings.SplitN(name, string(filepath.Separator), 2)[0]] = true
		target := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return "", err
			}
		case tar.TypeReg:
			if hdr.Size > maxChartFile {
				return "", fmt.Errorf("--charts %s: %s is %d bytes, more than a chart file", archive, hdr.Name, hdr.Size)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return "", err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(out, io.LimitReader(tr, maxChartFile))
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", err
			}
		}
	}
	if len(tops) == 1 {
		for top := range tops {
			if st, err := os.Stat(filepath.Join(dir, top)); err == nil && st.IsDir() {
				if _, err := os.Stat(filepath.Join(dir, top, "Chart.yaml")); err != nil {
					return filepath.Join(dir, top), nil // a folder of charts, not a chart
				}
			}
		}
	}
	return dir, nil
}
