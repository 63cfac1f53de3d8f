package whyslow

import (
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
)

// loadFrom reads an evidence folder, or an archive written by `kubectl mesh capture -o
// FILE.tar.gz`, under the evidence package's rules for input from strangers.
func loadFrom(path string, now time.Time) (*diagnose.Snapshot, error) {
	return diagnose.Load(path, now)
}
