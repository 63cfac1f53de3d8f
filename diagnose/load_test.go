package diagnose

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var testNow = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const promSample1 = `# TYPE envoy_cluster_upstream_rq_timeout counter
envoy_cluster_upstream_rq_timeout{cluster_name="outbound|9080||reviews.default.svc.cluster.local"} 10
# TYPE envoy_server_uptime gauge
envoy_server_uptime{} 3600
`

const promSample2 = `# TYPE envoy_cluster_upstream_rq_timeout counter
envoy_cluster_upstream_rq_timeout{cluster_name="outbound|9080||reviews.default.svc.cluster.local"} 30
# TYPE envoy_server_uptime gauge
envoy_server_uptime{} 3610
`

func TestLoadDirIntervalFromTwoSamples(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		FileStatsProm:  promSample1,
		FileStats2Prom: promSample2,
		FileMeta:       `{"pod":"productpage-v1-abc","namespace":"default","captureTimes":["2026-11-01T10:00:00Z","2026-11-01T10:00:10Z"],"windowSeconds":10}`,
	})
	s, err := LoadDir(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(InputStatsInterval) || s.Window != 10*time.Second {
		t.Fatalf("window = %v, interval = %v", s.Window, s.Has(InputStatsInterval))
	}
	m, ok := s.ClusterCounter("outbound|9080||reviews.default.svc.cluster.local", "upstream_rq_timeout")
	if !ok || !m.Interval || m.Value != 20 || m.Rate != 2 {
		t.Fatalf("measure = %+v ok=%v", m, ok)
	}
	if !strings.Contains(m.Source, `stats.prom envoy_cluster_upstream_rq_timeout{cluster_name="outbound|9080||reviews.default.svc.cluster.local"}`) {
		t.Errorf("source = %q", m.Source)
	}
	if want := time.Date(2026, 11, 1, 10, 0, 10, 0, time.UTC); !s.Now.Equal(want) || s.NowSource != NowFromMeta {
		t.Errorf("Now = %v from %q, want the last capture time %v from meta.json", s.Now, s.NowSource, want)
	}
	if s.Meta.Pod != "productpage-v1-abc" {
		t.Errorf("meta pod = %q", s.Meta.Pod)
	}
}

func TestLoadDirOneSampleIsCumulative(t *testing.T) {
	dir := writeFiles(t, map[string]string{FileStatsProm: promSample1})
	s, err := LoadDir(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := s.ClusterCounter("outbound|9080||reviews.default.svc.cluster.local", "upstream_rq_timeout")
	if !ok || m.Interval || m.Value != 10 || m.Span != time.Hour {
		t.Fatalf("measure = %+v", m)
	}
	if !s.Now.Equal(testNow) || s.NowSource != NowFromClock {
		t.Errorf("Now = %v from %q, want the caller's clock and a source that says so", s.Now, s.NowSource)
	}
	if got := Diagnose(s, nil).Basis; !strings.Contains(got, "cumulative since the proxy started (1h0m0s ago)") {
		t.Errorf("basis = %q", got)
	}
}

func TestLoadDirBadInput(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string   // LoadDir fails with this
		warns   []string // or succeeds with these warnings
		stats   string   // and reads this stats file
	}{
		{name: "empty folder", files: map[string]string{"notes.md": "hello"}, wantErr: "holds no evidence files"},
		{name: "only meta", files: map[string]string{FileMeta: `{}`}, wantErr: "holds no evidence files"},
		{
			name:    "nothing readable",
			files:   map[string]string{FileConfigDump: `{"configs": [`, FileCerts: "not json", FileAccessLog: "hello\n"},
			wantErr: "none of the evidence files",
		},
		{
			name:  "text stats saved as stats.prom beside a good stats.txt",
			files: map[string]string{FileStatsProm: "cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_timeout: 7\n", FileStatsText: "cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_timeout: 7\n"},
			warns: []string{"stats.prom: "},
			stats: FileStatsText,
		},
		{
			name:  "empty stats.prom beside a good stats.txt",
			files: map[string]string{FileStatsProm: "", FileStatsText: "server.uptime: 60\n"},
			warns: []string{"stats.prom: holds no Envoy stats"},
			stats: FileStatsText,
		},
		{
			name:  "second sample of another format",
			files: map[string]string{FileStatsProm: promSample1, FileStats2Text: "server.uptime: 70\n"},
			warns: []string{"stats-2.txt is ignored"},
			stats: FileStatsProm,
		},
		{
			name:  "truncated config dump beside good stats",
			files: map[string]string{FileConfigDump: `{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.Clusters`, FileStatsProm: promSample1},
			warns: []string{"config_dump.json: "},
		},
		{
			name:  "foreign stats",
			files: map[string]string{FileStatsText: "<html><body>502 Bad Gateway</body></html>\n", FileAccessLog: "[2026-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 200 - via_upstream - \"-\" 0 10 3 2 \"-\" \"curl\" \"id\" \"a\" \"10.0.0.1:80\" outbound|80||a.default.svc.cluster.local - 10.0.0.2:80 10.0.0.3:5000 - default\n"},
			warns: []string{"stats.txt: "},
		},
		{
			name:  "pod file holding a service",
			files: map[string]string{FilePod: "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n", FileStatsProm: promSample1},
			warns: []string{"pod.yaml: holds a Service, not a Pod"},
		},
		{
			name:  "second sample without window",
			files: map[string]string{FileStatsProm: promSample1, FileStats2Prom: promSample2},
			warns: []string{"meta.json has no windowSeconds"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LoadDir(writeFiles(t, tc.files), testNow)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(s.Warnings, "\n")
			for _, w := range tc.warns {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q lack %q", all, w)
				}
			}
			if tc.stats != "" && s.StatsFile != tc.stats {
				t.Errorf("stats read from %q, want %q", s.StatsFile, tc.stats)
			}
			Diagnose(s, Rules()) // must not panic on partial evidence
		})
	}
}

func TestLoadDirNotAFolder(t *testing.T) {
	f := filepath.Join(t.TempDir(), "stats.txt")
	os.WriteFile(f, []byte("x: 1\n"), 0o644)
	if _, err := LoadDir(f, testNow); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadDir(filepath.Join(t.TempDir(), "missing"), testNow); err == nil {
		t.Fatal("missing folder loaded")
	}
}

// TestLoadYAMLFilesHoldingJSON checks that pod.yaml and the list files read the same whether
// they hold YAML (kubectl get -o yaml) or JSON (kubectl get -o json, and a live capture in
// memory), and that a diagnosis of either is the same.
func TestLoadYAMLFilesHoldingJSON(t *testing.T) {
	dir := "../testdata/incidents/sidecar-not-ready"
	asJSON := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	converted := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".yaml") {
			j, err := yaml.YAMLToJSON(b)
			if err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			b, converted = j, converted+1
		}
		asJSON[e.Name()] = string(b)
	}
	if converted == 0 {
		t.Fatalf("%s has no .yaml file to convert", dir)
	}
	fromYAML, err := LoadDir(dir, testNow)
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := LoadDir(writeFiles(t, asJSON), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if fromJSON.Pod == nil || !reflect.DeepEqual(fromYAML.Pod, fromJSON.Pod) {
		t.Fatalf("pod.yaml as JSON reads differently:\nYAML %+v\nJSON %+v", fromYAML.Pod, fromJSON.Pod)
	}
	if len(fromJSON.Warnings) != len(fromYAML.Warnings) {
		t.Errorf("warnings differ: %q vs %q", fromJSON.Warnings, fromYAML.Warnings)
	}
	a, b := Diagnose(fromYAML, Rules()), Diagnose(fromJSON, Rules())
	if len(a.Findings) == 0 || len(a.Findings) != len(b.Findings) || a.Findings[0].Code != b.Findings[0].Code {
		t.Errorf("diagnoses differ: %d findings from YAML, %d from JSON", len(a.Findings), len(b.Findings))
	}
}
