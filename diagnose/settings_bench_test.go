package diagnose

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/benchdump"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// BenchmarkClustersFile is `kubectl mesh clusters --file` in process, phase by phase, on the
// 5,000-cluster dump (10.4 MB) that make bench-process times as a whole process: reading the
// file, parsing it, the settings and the table, then all four in a row as the command runs them.
func BenchmarkClustersFile(b *testing.B) {
	dump, err := benchdump.Grow(captures.Read(b, benchdump.Capture), 5000)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "config_dump.json")
	if err := os.WriteFile(path, dump, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := envoyadmin.ParseConfigDump(dump)
	if err != nil {
		b.Fatal(err)
	}
	settings := Settings(cfg)
	if len(settings) != 5002 {
		b.Fatalf("%d clusters' settings, want 5002", len(settings))
	}
	phases := []struct {
		name string
		run  func() error
	}{
		{"read", func() error { _, err := evidence.ReadFile(path); return err }},
		{"parse", func() error { _, err := envoyadmin.ParseConfigDump(dump); return err }},
		{"settings", func() error { Settings(cfg); return nil }},
		{"render", func() error { return RenderSettingsText(io.Discard, settings) }},
		{"all", func() error {
			data, err := evidence.ReadFile(path)
			if err != nil {
				return err
			}
			cfg, err := envoyadmin.ParseConfigDump(data)
			if err != nil {
				return err
			}
			return RenderSettingsText(io.Discard, Settings(cfg))
		}},
	}
	for _, p := range phases {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
