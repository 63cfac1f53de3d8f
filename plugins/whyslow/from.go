package whyslow

import (
	"fmt"
	"os"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
)

// loadFrom reads an evidence folder, or an archive written by `kubectl mesh capture -o
// FILE.tar.gz`.
func loadFrom(path string, now time.Time) (*diagnose.Snapshot, error) {
	if !collect.IsArchive(path) {
		return diagnose.LoadDir(path, now)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("evidence archive: %w", err)
	}
	defer f.Close()
	ev, err := collect.ReadTarGz(f)
	if err != nil {
		return nil, fmt.Errorf("evidence archive %s: %w", path, err)
	}
	return diagnose.LoadFS(ev.FS(), path, now)
}
