package adminreplay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
)

const incidentsDir = "../../../testdata/incidents"

// incidentNow only matters for a folder whose meta.json has no capture times.
var incidentNow = time.Date(2024, 4, 16, 14, 2, 21, 0, time.UTC)

// incidents lists the evidence folders under testdata/incidents (those with a meta.json).
func incidents(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(incidentsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(incidentsDir, e.Name(), evidence.Meta)); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d incident folders in %s", len(names), incidentsDir)
	}
	return names
}

// TestRoundTrip replays each incident folder as an admin API, collects it again with
// envoyadmin.AdminClient as a capture would, and checks the diagnosis of the copy is the
// diagnosis of the original: same findings, in the same order, about the same subjects.
func TestRoundTrip(t *testing.T) {
	for _, name := range incidents(t) {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(incidentsDir, name)
			h, err := adminreplay.New(src)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			dst := t.TempDir()
			collect(t, &envoyadmin.AdminClient{BaseURL: srv.URL, HTTP: srv.Client()}, src, dst)

			want, wantTop := diagnoseDir(t, src)
			got, gotTop := diagnoseDir(t, dst)
			if wantTop != gotTop {
				t.Errorf("top finding: original %q, replayed %q", wantTop, gotTop)
			}
			if want != got {
				t.Errorf("the replayed capture diagnoses differently\noriginal:\n%s\nreplayed:\n%s", want, got)
			}
		})
	}
}

// collect fetches what a capture fetches into dst, under the evidence folder's names. The
// files that do not come from the admin API (pod.yaml, access.log) are copied, and meta.json
// carries the original's window and capture times.
func collect(t *testing.T, c *envoyadmin.AdminClient, src, dst string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	write := func(file string, b []byte, err error) {
		t.Helper()
		var ee *envoyadmin.EndpointError
		if errors.As(err, &ee) && ee.Status == http.StatusNotFound {
			if _, statErr := os.Stat(filepath.Join(src, file)); statErr == nil {
				t.Errorf("%s is in the folder but the replay answered 404: %v", file, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := os.WriteFile(filepath.Join(dst, file), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	formats := []struct {
		format        envoyadmin.StatsFormat
		first, second string
	}{
		{envoyadmin.StatsPrometheus, evidence.StatsProm, evidence.Stats2Prom},
		{envoyadmin.StatsJSON, evidence.StatsJSON, evidence.Stats2JSON},
		{envoyadmin.StatsText, evidence.StatsText, evidence.Stats2Text},
	}
	for _, f := range formats {
		b, err := c.Stats(ctx, f.format, envoyadmin.DefaultStatsFilter)
		write(f.first, b, err)
		if _, err := os.Stat(filepath.Join(src, f.second)); err == nil {
			b, err := c.Stats(ctx, f.format, envoyadmin.DefaultStatsFilter)
			write(f.second, b, err)
		}
	}
	b, err := c.ConfigDump(ctx, true)
	write(evidence.ConfigDump, envoyadmin.RedactConfigDump(b), err)
	b, err = c.Clusters(ctx)
	write(evidence.ClustersJSON, b, err)
	b, err = c.Certs(ctx)
	write(evidence.Certs, b, err)
	b, err = c.ServerInfo(ctx)
	write(evidence.ServerInfo, b, err)

	// What does not come from the admin API (the pod, its log, node counters, Kubernetes
	// objects, the hop's samples) a capture reads elsewhere: copy it as it is.
	fromAdmin := map[string]bool{evidence.Meta: true, evidence.ConfigDump: true, evidence.ClustersJSON: true,
		evidence.Certs: true, evidence.ServerInfo: true}
	for _, f := range formats {
		fromAdmin[f.first], fromAdmin[f.second] = true, true
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && !fromAdmin[e.Name()] {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			write(e.Name(), b, err)
		}
	}
	var meta evidence.MetaFile
	if b, err := os.ReadFile(filepath.Join(src, evidence.Meta)); err == nil {
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatalf("%s: %v", evidence.Meta, err)
		}
	}
	meta.CapturedBy = "adminreplay round-trip test"
	b, err = json.Marshal(meta)
	write(evidence.Meta, b, err)
}

// diagnoseDir returns the findings of a folder's diagnosis, one "code subject" per line after
// the window it covered, and its top finding alone.
func diagnoseDir(t *testing.T, dir string) (all, top string) {
	t.Helper()
	s, err := diagnose.LoadDir(dir, incidentNow)
	if err != nil {
		t.Fatalf("LoadDir(%s): %v", dir, err)
	}
	r := diagnose.Diagnose(s, diagnose.Rules())
	var b strings.Builder
	fmt.Fprintf(&b, "window %gs, %d warnings\n", r.WindowSeconds, len(r.Warnings))
	top = "(no finding)"
	for i, f := range r.Findings {
		line := fmt.Sprintf("%s %s", f.Code, f.Subject)
		if i == 0 {
			top = line
		}
		b.WriteString(line + "\n")
	}
	return b.String(), top
}
