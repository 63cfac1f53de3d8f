package evidence

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKnownWaypointNames(t *testing.T) {
	for name, want := range map[string]bool{
		"waypoint-stats.prom":       true,
		"waypoint-config_dump.json": true,
		"waypoint-meta.json":        true,
		"waypoint-ztunnel.log":      false, // a waypoint has no ztunnel files of its own
		"waypoint-notes.txt":        false,
		"waypoint-../stats.prom":    false,
		"stats.prom":                true,
	} {
		if got := Known(name); got != want {
			t.Errorf("Known(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestAmbientFilesRoundTrip: an ambient pod's files, the waypoint's among them, are written
// and read back, as a folder and as an archive.
func TestAmbientFilesRoundTrip(t *testing.T) {
	var s Set
	files := map[string]string{
		Pod: "apiVersion: v1\nkind: Pod\n", ZtunnelLog: "line\n", ZtunnelDump: "{}", ZtunnelProm: "# EOF\n",
		WaypointPrefix + StatsProm: "# TYPE x counter\nx 1\n", WaypointPrefix + ConfigDump: "{}",
	}
	for name, body := range files {
		s.Add(name, []byte(body))
	}
	dir := filepath.Join(t.TempDir(), "capture")
	if err := s.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "capture.tar.gz")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteTarGz(f, "capture", time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{dir, archive} {
		got, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for name := range files {
			if got.File(name) == nil {
				t.Errorf("%s: %s not read back (warnings %q)", p, name, got.Warnings)
			}
		}
	}
}
