package envoyadmin

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// TestParseStatsPrometheusCaptures parses every /stats/prometheus capture and checks facts read
// off the files.
func TestParseStatsPrometheusCaptures(t *testing.T) {
	checks := map[string]func(t *testing.T, s *StatsSample){
		"datadog-istio-1.5-sidecar-excerpt.prom": func(t *testing.T, s *StatsSample) {
			wantClusterValues(t, s, "outbound|9080||reviews.default.svc.cluster.local", map[string]float64{
				"client_ssl_socket_factory_ssl_context_update_by_sds": 4,
			})
			wantClusterValues(t, s, "outbound|9080||ratings.default.svc.cluster.local", map[string]float64{
				"client_ssl_socket_factory_ssl_context_update_by_sds": 8,
			})
			wantClusterValues(t, s, "xds-grpc", map[string]float64{
				"upstream_rq_5xx":                    1, // upstream_rq{response_code_class="5xx"}
				"upstream_rq_503":                    1,
				"upstream_cx_destroy_with_active_rq": 1,
				"upstream_cx_none_healthy":           1,
				"upstream_rq_pending_failure_eject":  1,
				"lb_healthy_panic":                   1,
				"ssl_handshake":                      2,
				"ssl_versions_TLSv1_2":               2,
				"upstream_rq_timeout":                0,
				"upstream_cx_connect_fail":           0,
			})
			if r := s.Clusters["outbound|9080||reviews.default.svc.cluster.local"].Name; r.Port != 9080 || r.Host != "reviews.default.svc.cluster.local" {
				t.Errorf("cluster name = %+v", r)
			}
			wantStats(t, s, map[string]float64{
				"server_watchdog_mega_miss":        2,
				"server_main_thread_watchdog_miss": 7,
				"cluster_manager_cluster_added":    62,
			})
			if len(s.Clusters) != 9 {
				t.Errorf("got %d clusters %v, want 9", len(s.Clusters), keys(s.Clusters))
			}
			if g, ok := s.Gauges["upstream_rq_timeout"]; !ok || g || s.IsGauge("upstream_rq_timeout") {
				t.Errorf("upstream_rq_timeout TYPE counter not recorded: %v, %v", g, ok)
			}
		},
		"kuma-dp-envoy-histograms.prom": func(t *testing.T, s *StatsSample) {
			if len(s.Clusters) != 12 {
				t.Errorf("got %d clusters, want 12", len(s.Clusters))
			}
			ads := s.Clusters["ads_cluster"].Histograms["upstream_cx_connect_ms"]
			if ads == nil || ads.Count != 1 || ads.Sum != 20.5 || len(ads.Buckets) != 20 ||
				ads.Buckets[4] != (Bucket{UpperBound: 25, Count: 1}) || !math.IsInf(ads.Buckets[19].UpperBound, 1) {
				t.Fatalf("ads_cluster upstream_cx_connect_ms = %+v (the scoped_ copy must not be added)", ads)
			}
			if got := ads.Quantile(0.5); got != 17.5 { // (10,25] holds the one connection
				t.Errorf("ads_cluster p50 = %v, want 17.5", got)
			}
			echo := s.Clusters["echo-server_kuma-test_svc_8080-369bce2d30623ffb"].Histograms["upstream_cx_connect_ms"]
			if echo == nil || echo.Count != 4 || math.Abs(echo.Sum-27.65) > 1e-9 || echo.Buckets[2] != (Bucket{UpperBound: 5, Count: 3}) {
				t.Fatalf("echo-server upstream_cx_connect_ms = %+v", echo)
			}
			for q, want := range map[float64]float64{0.5: 1 + 4*2.0/3, 0.75: 5, 0.99: 10 + 15*0.96} {
				if got := echo.Quantile(q); math.Abs(got-want) > 1e-9 {
					t.Errorf("echo-server Quantile(%v) = %v, want %v", q, got, want)
				}
			}
			if len(s.Stats)+len(s.Histograms)+len(s.Istio) != 0 {
				t.Errorf("unexpected non-cluster stats: %v %v %v", s.Stats, s.Histograms, s.Istio)
			}
		},
	}
	for _, path := range captures.Files(t, "stats_prometheus") {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no facts checked for capture %s: add some", name)
			}
			s, err := ParseStatsPrometheus(bytes.NewReader(captures.Read(t, filepath.Join("stats_prometheus", name))))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != StatsPrometheus || s.Skipped != 0 {
				t.Errorf("Format %q, Skipped %d (%v)", s.Format, s.Skipped, s.Warnings)
			}
			check(t, s)
		})
	}
}

const promSample = `# TYPE envoy_cluster_upstream_rq counter
envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="backend"} 7
envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="backend"} 90
# TYPE envoy_cluster_upstream_rq_xx counter
envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="backend"} 7
# TYPE envoy_cluster_upstream_cx_active gauge
envoy_cluster_upstream_cx_active{envoy_cluster_name="backend"} 3
envoy_cluster_upstream_cx_active{envoy_cluster_name="backend",otel_scope_name="copy"} 3
# TYPE envoy_http_downstream_rq_xx counter
envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="admin"} 5
envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress"} 6
this line is not prometheus
# TYPE envoy_control_plane_identifier gauge
envoy_control_plane_identifier{text_value="istiod-7d9"} 0
# TYPE envoy_server_uptime gauge
envoy_server_uptime 3600
# TYPE envoy_http_downstream_rq_time histogram
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="a",le="1"} 1
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="a",le="+Inf"} 2
envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix="a"} 3
envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="a"} 2
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="b",le="1"} 2
envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="b",le="+Inf"} 2
envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix="b"} 1
envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="b"} 2
# TYPE envoy_cluster_upstream_rq_time summary
envoy_cluster_upstream_rq_time{envoy_cluster_name="backend",quantile="0.5"} 12
envoy_cluster_upstream_rq_time{envoy_cluster_name="backend",quantile="0.99"} 80
envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="backend"} 1500
envoy_cluster_upstream_rq_time_count{envoy_cluster_name="backend"} 97
# TYPE istio_requests_total counter
istio_requests_total{reporter="source",destination_service="reviews.default.svc.cluster.local",response_code="503",response_flags="UO",connection_security_policy="unknown"} 21
istio_requests_total{reporter="source",destination_service="reviews.default.svc.cluster.local",response_code="200",response_flags="-",connection_security_policy="unknown"} 400
# TYPE istio_request_duration_milliseconds histogram
istio_request_duration_milliseconds_bucket{reporter="source",response_code="200",le="10"} 300
istio_request_duration_milliseconds_bucket{reporter="source",response_code="200",le="+Inf"} 400
istio_request_duration_milliseconds_sum{reporter="source",response_code="200"} 4000
istio_request_duration_milliseconds_count{reporter="source",response_code="200"} 400
# TYPE app_requests_total counter
app_requests_total 99
envoy_untyped_thing{} 4
`

func TestParseStatsPrometheusMapping(t *testing.T) {
	s, err := ParseStatsPrometheus(strings.NewReader(promSample))
	if err != nil {
		t.Fatal(err)
	}
	wantClusterValues(t, s, "backend", map[string]float64{
		"upstream_rq_503": 7, "upstream_rq_200": 90, "upstream_rq_5xx": 7, "upstream_cx_active": 3,
	})
	wantStats(t, s, map[string]float64{"http_admin_downstream_rq_2xx": 5, "http_ingress_downstream_rq_2xx": 6, "server_uptime": 3600, "untyped_thing": 4})
	if _, ok := s.Stats["app_requests_total"]; ok {
		t.Error("non-Envoy metric app_requests_total should be ignored")
	}
	if s.Strings["control_plane_identifier"] != "istiod-7d9" {
		t.Errorf("text readout: %v", s.Strings)
	}
	if !s.IsGauge("upstream_cx_active") || s.IsGauge("upstream_rq_503") || !s.IsGauge("server_uptime") {
		t.Errorf("Gauges = %v", s.Gauges)
	}
	// Each connection manager's histogram stays its own, named as in the text format.
	a, b := s.Histograms["http_a_downstream_rq_time"], s.Histograms["http_b_downstream_rq_time"]
	if a == nil || a.Count != 2 || a.Sum != 3 || len(a.Buckets) != 2 || a.Buckets[0].Count != 1 || a.Buckets[1].Count != 2 {
		t.Errorf("histogram of prefix a = %+v", a)
	}
	if b == nil || b.Count != 2 || b.Sum != 1 || b.Buckets[0].Count != 2 {
		t.Errorf("histogram of prefix b = %+v", b)
	}
	if _, ok := s.Histograms["http_downstream_rq_time"]; ok {
		t.Errorf("connection managers' histograms were summed: %v", s.Histograms)
	}
	sum := s.Clusters["backend"].Histograms["upstream_rq_time"]
	if sum == nil || sum.Count != 97 || sum.Quantile(0.99) != 80 || sum.Quantile(0.5) != 12 {
		t.Errorf("summary = %+v", sum)
	}
	if len(s.Istio) != 3 {
		t.Fatalf("Istio = %+v, want 3 series", s.Istio)
	}
	var uo, dur *IstioSeries
	for i := range s.Istio {
		switch {
		case s.Istio[i].Labels["response_flags"] == "UO":
			uo = &s.Istio[i]
		case s.Istio[i].Metric == "istio_request_duration_milliseconds":
			dur = &s.Istio[i]
		}
	}
	if uo == nil || uo.Value != 21 || uo.Metric != "istio_requests_total" || uo.Labels["response_code"] != "503" ||
		uo.Labels["destination_service"] != "reviews.default.svc.cluster.local" {
		t.Errorf("UO series = %+v", uo)
	}
	if dur == nil || dur.Value != 400 || dur.Histogram == nil || math.Abs(dur.Histogram.Quantile(0.5)-20.0/3) > 1e-9 {
		t.Errorf("duration series = %+v", dur)
	}
	if s.Skipped != 1 || !strings.Contains(s.Warnings[0], "line 12") {
		t.Errorf("Skipped %d, Warnings %q; want line 12 skipped", s.Skipped, s.Warnings)
	}
}

func TestParseStatsPrometheusErrors(t *testing.T) {
	for _, in := range []string{"<html>\n<body>nope</body>\n</html>\n", `{"stats":[]}`, "a b c\nd e f\n"} {
		if _, err := ParseStatsPrometheus(strings.NewReader(in)); !errors.Is(err, ErrNoStats) {
			t.Errorf("ParseStatsPrometheus(%q) error = %v, want ErrNoStats", in, err)
		}
	}
	s, err := ParseStatsPrometheus(strings.NewReader(""))
	if err != nil || len(s.Clusters) != 0 {
		t.Errorf("empty input = %v, %v; want an empty sample", s, err)
	}
	// No final newline, and a second TYPE line for a family: both tolerated.
	s, err = ParseStatsPrometheus(strings.NewReader("# TYPE envoy_a counter\nenvoy_a 1\n# TYPE envoy_a counter\nenvoy_b 2"))
	if err != nil || s.Stats["a"] != 1 || s.Stats["b"] != 2 {
		t.Errorf("got %+v, %v", s, err)
	}
}

// TestWithPrometheusFamilies checks that parsing only some families of a sample gives the same
// values for them as parsing all of it, and nothing else: on a real capture and on a bundled
// incident in Istio's format (the families a capture reads for its upstream Services).
func TestWithPrometheusFamilies(t *testing.T) {
	for _, tc := range []struct {
		name     string
		read     func(t *testing.T) []byte
		families map[string]string // family -> the cluster stat it becomes
	}{
		{"datadog-istio-1.5-sidecar-excerpt.prom", func(t *testing.T) []byte {
			return captures.Read(t, filepath.Join("stats_prometheus", "datadog-istio-1.5-sidecar-excerpt.prom"))
		}, map[string]string{"envoy_cluster_upstream_cx_none_healthy": "upstream_cx_none_healthy", "envoy_cluster_upstream_cx_connect_fail": "upstream_cx_connect_fail"}},
		{"incident keepalive-race", func(t *testing.T) []byte {
			b, err := os.ReadFile("../testdata/incidents/keepalive-race/stats.prom")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, map[string]string{"envoy_cluster_upstream_rq_total": "upstream_rq_total", "envoy_cluster_upstream_cx_total": "upstream_cx_total"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.read(t)
			all, err := ParseStatsPrometheus(bytes.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			want := map[string]bool{}
			for f, stat := range tc.families {
				names, want[stat] = append(names, f), true
			}
			some, err := ParseStatsPrometheus(bytes.NewReader(text), WithPrometheusFamilies(names...))
			if err != nil {
				t.Fatal(err)
			}
			compared := 0
			for cname, c := range all.Clusters {
				got := some.Clusters[cname]
				for stat, v := range c.Values {
					switch {
					case want[stat]:
						compared++
						if got == nil || got.Values[stat] != v {
							t.Errorf("%s %s: %v with the families picked out, %v without", cname, stat, got, v)
						}
					case got != nil && got.Values[stat] != 0:
						t.Errorf("%s %s parsed although its family was not asked for", cname, stat)
					}
				}
			}
			if compared == 0 {
				t.Fatal("the sample has none of the families: nothing compared")
			}
			if len(some.Istio)+len(some.Histograms)+len(some.Stats) != 0 {
				t.Errorf("other families parsed: %d Istio series, %d histograms, %d stats", len(some.Istio), len(some.Histograms), len(some.Stats))
			}
		})
	}
	// A histogram family keeps its _bucket, _sum and _count lines.
	b, err := os.ReadFile("../testdata/incidents/stats-disabled/stats.prom")
	if err != nil {
		t.Fatal(err)
	}
	all, _ := ParseStatsPrometheus(bytes.NewReader(b))
	some, err := ParseStatsPrometheus(bytes.NewReader(b), WithPrometheusFamilies("istio_request_duration_milliseconds"))
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range all.Istio {
		if s.Metric == "istio_request_duration_milliseconds" {
			want++
		}
	}
	if want == 0 || len(some.Istio) != want || some.Istio[0].Histogram == nil || some.Istio[0].Histogram.Count == 0 {
		t.Errorf("the histogram family picked out: %d series (want %d) %+v", len(some.Istio), want, some.Istio)
	}
}
