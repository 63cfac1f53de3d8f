package envoyadmin

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

const (
	emissaryStats = "stats_text/emissary-envoy-stats-with-histograms.txt"
	istioIOStats  = "stats_text/istio-io-circuit-breaking-pending-overflow.txt"
)

// TestParseStatsTextCaptures parses every /stats capture and checks facts read off the files.
func TestParseStatsTextCaptures(t *testing.T) {
	checks := map[string]func(t *testing.T, s *StatsSample){
		filepath.Base(istioIOStats): func(t *testing.T, s *StatsSample) {
			c := "outbound|8000||httpbin.default.svc.cluster.local"
			wantClusterValues(t, s, c, map[string]float64{
				"upstream_rq_pending_overflow":               21,
				"upstream_rq_pending_total":                  29,
				"upstream_rq_pending_active":                 0,
				"circuit_breakers_default_rq_pending_open":   0,
				"circuit_breakers_high_rq_pending_open":      0,
				"circuit_breakers_default_remaining_pending": 1,
			})
			if len(s.Clusters) != 1 || len(s.Stats) != 0 {
				t.Errorf("got %d clusters and %d other stats, want 1 and 0", len(s.Clusters), len(s.Stats))
			}
			want := ClusterName{Raw: c, Direction: "outbound", Port: 8000, Host: "httpbin.default.svc.cluster.local"}
			if got := s.Clusters[c].Name; got != want {
				t.Errorf("cluster name = %+v, want %+v", got, want)
			}
		},
		filepath.Base(emissaryStats): func(t *testing.T, s *StatsSample) {
			if len(s.Clusters) != 336 {
				t.Errorf("got %d clusters, want 336", len(s.Clusters))
			}
			if got := countNoValues(s); got != 667 {
				t.Errorf("got %d No-recorded-values histograms, want 667", got)
			}
			for _, name := range []string{"cluster_manager_cds_version_text", "listener_manager_lds_version_text"} {
				if s.Strings[name] != "v13" {
					t.Errorf("Strings[%s] = %q, want v13", name, s.Strings[name])
				}
			}
			if v, ok := s.Strings["control_plane_identifier"]; !ok || v != "" {
				t.Errorf("control_plane_identifier = %q, %v; want empty string present", v, ok)
			}
			wantStats(t, s, map[string]float64{
				"server_version":                            11390506,
				"server_uptime":                             21116,
				"server_concurrency":                        4,
				"server_main_thread_watchdog_miss":          30,
				"http_admin_downstream_rq_2xx":              8185,
				"http_admin_downstream_cx_tx_bytes_total":   12723402741,
				"runtime_deprecated_feature_use":            36780,
				"listener_0_0_0_0_8080_downstream_cx_total": 13,
			})
			amb := "cluster_127_0_0_1_8500_ambassador"
			wantClusterValues(t, s, amb, map[string]float64{
				"default_total_match_count":        4220,
				"ext_authz_ok":                     14,
				"circuit_breakers_default_cx_open": 0,
				"internal_upstream_rq_404":         14,
				"internal_upstream_rq_4xx":         14,
				"internal_upstream_rq_completed":   14,
				"http2_rx_reset":                   0,
				"upstream_cx_connect_fail":         0,
				"upstream_rq_timeout":              0,
				"upstream_rq_pending_overflow":     0,
			})
			h := s.Clusters[amb].Histograms["internal_upstream_rq_time"]
			if h == nil || len(h.Quantiles) != 10 {
				t.Fatalf("internal_upstream_rq_time = %+v, want 10 quantiles", h)
			}
			if q := h.Quantiles[0]; q.Q != 0 || !math.IsNaN(q.Interval) || q.Cumulative != 1.0 {
				t.Errorf("P0 = %+v, want {0 NaN 1}", q)
			}
			if q := h.Quantiles[7]; q.Q != 0.995 || q.Cumulative != 2.093 {
				t.Errorf("P99.5 = %+v, want cumulative 2.093", q)
			}
			if got := h.Quantile(0.5); got != 1.0538461538461539 {
				t.Errorf("Quantile(0.5) = %v, want P50 1.0538461538461539", got)
			}
			if h := s.Histograms["server_initialization_time_ms"]; h == nil || h.Quantile(1) != 8.1 {
				t.Errorf("server_initialization_time_ms = %+v, want P100 8.1", h)
			}
			if s.Skipped != 0 {
				t.Errorf("Skipped = %d (%v), want 0", s.Skipped, s.Warnings)
			}
		},
	}
	for _, path := range captures.Files(t, "stats_text") {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no facts checked for capture %s: add some", name)
			}
			s, err := ParseStatsText(bytes.NewReader(captures.Read(t, filepath.Join("stats_text", name))))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != StatsText {
				t.Errorf("Format = %q", s.Format)
			}
			check(t, s)
		})
	}
}

func countNoValues(s *StatsSample) int {
	n := 0
	for _, h := range s.Histograms {
		if h.NoValues {
			n++
		}
	}
	for _, c := range s.Clusters {
		for _, h := range c.Histograms {
			if h.NoValues {
				n++
			}
		}
	}
	return n
}

func wantStats(t *testing.T, s *StatsSample, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if got, ok := s.Stats[k]; !ok || got != v {
			t.Errorf("Stats[%s] = %v (present %v), want %v", k, got, ok, v)
		}
	}
}

func wantClusterValues(t *testing.T, s *StatsSample, cluster string, want map[string]float64) {
	t.Helper()
	cs := s.Clusters[cluster]
	if cs == nil {
		t.Fatalf("no cluster %q", cluster)
	}
	for k, v := range want {
		if got, ok := cs.Values[k]; !ok || got != v {
			t.Errorf("%s: Values[%s] = %v (present %v), want %v", cluster, k, got, ok, v)
		}
	}
}

func TestParseStatsTextForms(t *testing.T) {
	in := strings.Join([]string{
		`Defaulted container "istio-proxy" out of: istio-proxy, istio-init (init)`,
		`cluster.outbound|9080|v2|reviews.default.svc.cluster.local.upstream_rq_503: 7`,
		`cluster.outbound|9080|v2|reviews.default.svc.cluster.local.ssl.versions.TLSv1.2: 3`,
		`cluster.outbound|9080|v2|reviews.default.svc.cluster.local.zone.us-a.us-b.upstream_rq_2xx: 2`,
		`cluster.outbound|9080|v2|reviews.default.svc.cluster.local.outlier_detection.ejections_active: 1`,
		`cluster.inbound|8080||.upstream_cx_total: 5`,
		`cluster.outbound_.8000_._.httpbin.default.svc.cluster.local.upstream_rq_total: 4`,
		`cluster.xds-grpc.upstream_cx_connect_ms: B0.5(0,0) B1(0,1) B5(1,3) B10(0,3)`,
		`cluster.xds-grpc.upstream_rq_time: B0.5(0,1) B1(0,0) B5(1,2)`, // disjoint counts
		`http.inbound_0.0.0.0_8080.downstream_rq_time:`,
		`  totals=1,0.1:2, 3,0.5:1`,
		`  intervals=1,0.1:1`,
		`  summary=P0(1,1) P50(1.05,1.05) P100(3.5,3.5)`,
		`server.memory_allocated: 1.5e+06`,
		`server.weird: P0(1,2`,
		`listener_manager.lds.version_text: "2024-01-01T00:00:00Z/9"`,
		`truncated.line`,
		``,
	}, "\r\n")
	s, err := ParseStatsText(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	reviews := "outbound|9080|v2|reviews.default.svc.cluster.local"
	wantClusterValues(t, s, reviews, map[string]float64{
		"upstream_rq_503":                    7,
		"ssl_versions_TLSv1_2":               3,
		"zone_us-a_us-b_upstream_rq_2xx":     2,
		"outlier_detection_ejections_active": 1,
	})
	wantClusterValues(t, s, "inbound|8080||", map[string]float64{"upstream_cx_total": 5})
	alt := s.Clusters["outbound_.8000_._.httpbin.default.svc.cluster.local"]
	if alt == nil || alt.Name.Host != "httpbin.default.svc.cluster.local" || alt.Name.Port != 8000 || alt.Values["upstream_rq_total"] != 4 {
		t.Errorf("alt-stat-name cluster = %+v", alt)
	}
	if h := s.Clusters["xds-grpc"].Histograms["upstream_cx_connect_ms"]; h == nil || h.Count != 3 || len(h.Buckets) != 4 || h.Buckets[2].Count != 3 {
		t.Errorf("cumulative bucket histogram = %+v", h)
	}
	if h := s.Clusters["xds-grpc"].Histograms["upstream_rq_time"]; h == nil || h.Buckets[1].Count != 1 || h.Buckets[2].Count != 3 {
		t.Errorf("disjoint bucket histogram not made cumulative: %+v", h)
	}
	d := s.Histograms["http_inbound_0_0_0_0_8080_downstream_rq_time"]
	if d == nil || d.Count != 3 || len(d.Buckets) != 5 || d.Buckets[1] != (Bucket{UpperBound: 1.1, Count: 2}) ||
		d.Buckets[2] != (Bucket{UpperBound: 3, Count: 2}) || !math.IsInf(d.Buckets[4].UpperBound, 1) || len(d.Quantiles) != 3 {
		t.Errorf("detailed histogram = %+v", d)
	}
	wantStats(t, s, map[string]float64{"server_memory_allocated": 1.5e6})
	if got := s.Strings["listener_manager_lds_version_text"]; got != "2024-01-01T00:00:00Z/9" {
		t.Errorf("version_text = %q", got)
	}
	if s.Skipped != 3 || len(s.Warnings) != 3 || !strings.Contains(s.Warnings[0], "line 1 ") {
		t.Errorf("Skipped = %d, Warnings = %q; want 3 (lines 1, 15, 17)", s.Skipped, s.Warnings)
	}
}

func TestParseStatsTextForeign(t *testing.T) {
	for _, in := range []string{"<html><body>404</body></html>\n", `{"stats":[]}`, "error: pod not found\n", "Error:\n"} {
		if _, err := ParseStatsText(strings.NewReader(in)); !errors.Is(err, ErrNoStats) {
			t.Errorf("ParseStatsText(%q) error = %v, want ErrNoStats", in, err)
		}
	}
	s, err := ParseStatsText(strings.NewReader("\n\n"))
	if err != nil || len(s.Stats) != 0 {
		t.Errorf("empty input: %+v, %v; want an empty sample", s, err)
	}
}

func BenchmarkParseStatsText(b *testing.B) {
	data := captures.Read(b, emissaryStats)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStatsText(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
