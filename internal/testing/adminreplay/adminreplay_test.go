package adminreplay

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

func TestHandler(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		evidence.StatsText: "text-1", evidence.Stats2Text: "text-2",
		evidence.StatsProm: "prom-1", evidence.Stats2Prom: "prom-2",
		evidence.StatsJSON:  "json-1", // no second JSON sample
		evidence.ConfigDump: "dump", evidence.ClustersJSON: "clusters-json", evidence.ServerInfo: "info",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// In order: the stats endpoints alternate between their two samples, each counted apart.
	steps := []struct {
		method, path string
		status       int
		body         string
		contentType  string
	}{
		{"GET", "/stats/prometheus?usedonly&filter=upstream_rq", 200, "prom-1", "text/plain; version=0.0.4"},
		{"GET", "/stats?usedonly", 200, "text-1", "text/plain"},
		{"GET", "/stats/prometheus?usedonly", 200, "prom-2", "text/plain; version=0.0.4"},
		{"GET", "/stats?format=prometheus", 200, "prom-1", "text/plain; version=0.0.4"},
		{"GET", "/stats", 200, "text-2", "text/plain"},
		{"GET", "/stats?format=json&usedonly", 200, "json-1", "application/json"},
		{"GET", "/stats?format=json&usedonly", 200, "json-1", "application/json"}, // one sample: served again
		{"GET", "/stats?format=xml", 400, "", ""},
		{"GET", "/config_dump?include_eds", 200, "dump", "application/json"},
		{"GET", "/clusters?format=json", 200, "clusters-json", "application/json"},
		{"GET", "/clusters", 404, "clusters.txt", ""},
		{"GET", "/certs", 404, "certs.json", ""},
		{"GET", "/server_info", 200, "info", "application/json"},
		{"GET", "/ready", 200, "LIVE\n", "text/plain"},
		{"GET", "/quitquitquit", 404, "invalid path", ""},
		{"POST", "/stats", 405, "", ""},
		{"HEAD", "/config_dump", 200, "", "application/json"},
	}
	for _, s := range steps {
		req, err := http.NewRequest(s.method, srv.URL+s.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.status {
			t.Errorf("%s %s: status %d, want %d (%s)", s.method, s.path, resp.StatusCode, s.status, body)
			continue
		}
		if s.status == 200 && string(body) != s.body || s.status != 200 && !strings.Contains(string(body), s.body) {
			t.Errorf("%s %s: body %q, want %q", s.method, s.path, body, s.body)
		}
		if ct := resp.Header.Get("Content-Type"); s.contentType != "" && !strings.HasPrefix(ct, s.contentType) {
			t.Errorf("%s %s: Content-Type %q, want %q", s.method, s.path, ct, s.contentType)
		}
	}
}

func TestNewRejectsMissingFolder(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("New of a missing folder: no error")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(f); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("New of a file: %v, want a not-a-folder error", err)
	}
}
