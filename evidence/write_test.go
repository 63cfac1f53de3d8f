package evidence

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestEvidenceOnDisk checks that the Kubernetes objects a capture keeps as JSON are stored as
// YAML under their .yaml names, in a folder and in an archive, and that other files are stored
// byte for byte.
func TestEvidenceOnDisk(t *testing.T) {
	var e Set
	e.Add("pod.yaml", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-0"}}`))
	e.Add("events.yaml", []byte("apiVersion: v1\nkind: EventList\nitems: []\n")) // already YAML
	e.Add("meta.json", []byte(`{"pod":"web-0"}`))
	e.Add("stats.prom", []byte("# TYPE envoy_x counter\nenvoy_x 1\n"))
	want := map[string]string{
		"pod.yaml":    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n",
		"events.yaml": "apiVersion: v1\nkind: EventList\nitems: []\n",
		"meta.json":   `{"pod":"web-0"}`,
		"stats.prom":  "# TYPE envoy_x counter\nenvoy_x 1\n",
	}
	dir := t.TempDir()
	if err := e.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != w {
			t.Errorf("%s in the folder: %q (%v), want %q", name, got, err, w)
		}
	}
	var archive bytes.Buffer
	if err := e.WriteTarGz(&archive, "capture", time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	back, err := ReadArchive(&archive, "capture.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		if got := back.File(name); string(got) != w {
			t.Errorf("%s in the archive: %q, want %q", name, got, w)
		}
	}
}
