package envoyadmin

import (
	"strings"
	"testing"
)

func TestSplitClusterStat(t *testing.T) {
	tests := []struct {
		rest, cluster, suffix string
		n                     int
	}{
		{"outbound|8000||httpbin.default.svc.cluster.local.circuit_breakers.default.rq_pending_open",
			"outbound|8000||httpbin.default.svc.cluster.local", "circuit_breakers.default.rq_pending_open", 1},
		{"outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow",
			"outbound|8000||httpbin.default.svc.cluster.local", "upstream_rq_pending_overflow", 1},
		{"inbound|8080||.upstream_rq_total", "inbound|8080||", "upstream_rq_total", 1},
		{"cluster_127_0_0_1_8500_ambassador.internal.upstream_rq_time",
			"cluster_127_0_0_1_8500_ambassador", "internal.upstream_rq_time", 2}, // or "...ambassador.internal"
		{"cluster_127_0_0_1_8500_ambassador.default.total_match_count",
			"cluster_127_0_0_1_8500_ambassador", "default.total_match_count", 1},
		{"xds-grpc.ssl.versions.TLSv1.2", "xds-grpc", "ssl.versions.TLSv1.2", 1},
		{"xds-grpc.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256", "xds-grpc", "ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256", 1},
		{"a.b.zone.z1.z2.upstream_rq_200", "a.b", "zone.z1.z2.upstream_rq_200", 2},
		{"a.canary.upstream_rq_completed", "a", "canary.upstream_rq_completed", 2},
		{"outbound|443||ssl.example.com.outlier_detection.ejections_active",
			"outbound|443||ssl.example.com", "outlier_detection.ejections_active", 1},
		{"local_app.grpc.envoy.service.discovery.v3.AggregatedDiscoveryService.StreamAggregatedResources.success",
			"local_app", "grpc.envoy.service.discovery.v3.AggregatedDiscoveryService.StreamAggregatedResources.success", 1},
		{"db.default.dc1.internal.11111111-2222.consul.upstream_cx_total",
			"db.default.dc1.internal.11111111-2222.consul", "upstream_cx_total", 1},
		{"foo.unknown_stat", "", "", 0},
		{"nodots", "", "", 0},
		{".upstream_rq_total", "", "", 0},
		{"outbound|80||x.upstream_rq_total|y", "", "", 0},
	}
	for _, tt := range tests {
		c, s, n := splitClusterStat(tt.rest)
		if c != tt.cluster || s != tt.suffix || n != tt.n {
			t.Errorf("splitClusterStat(%q) = %q, %q, %d; want %q, %q, %d", tt.rest, c, s, n, tt.cluster, tt.suffix, tt.n)
		}
	}
}

// TestClusterStatAmbiguity checks that a host that looks like a stat scope ("api.internal")
// resolves to the cluster the sample shows exists, in either order of lines.
func TestClusterStatAmbiguity(t *testing.T) {
	lines := []string{
		"cluster.outbound|80||api.internal.upstream_rq_time: P0(1,1) P100(2,2)",
		"cluster.outbound|80||api.internal.upstream_cx_total: 3",
		"cluster.emissary.internal.upstream_rq_200: 4",
		"cluster.emissary.upstream_rq_200: 5",
		"cluster.foo.bar.custom_stat: 6",
		"cluster.foo.bar.upstream_rq_total: 7",
		"cluster.lonely.custom_stat: 8",
		"cluster.outbound|80||x.y.z.custom: 9",
	}
	for _, reverse := range []bool{false, true} {
		in := append([]string(nil), lines...)
		if reverse {
			for i, j := 0, len(in)-1; i < j; i, j = i+1, j-1 {
				in[i], in[j] = in[j], in[i]
			}
		}
		s, err := ParseStatsText(strings.NewReader(strings.Join(in, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		if h := s.Clusters["outbound|80||api.internal"].Histograms["upstream_rq_time"]; h == nil {
			t.Errorf("reverse=%v: api.internal's upstream_rq_time misplaced; clusters %v", reverse, keys(s.Clusters))
		}
		if _, ok := s.Clusters["outbound|80||api"]; ok {
			t.Errorf("reverse=%v: invented cluster outbound|80||api", reverse)
		}
		wantClusterValues(t, s, "emissary", map[string]float64{"internal_upstream_rq_200": 4, "upstream_rq_200": 5})
		wantClusterValues(t, s, "foo.bar", map[string]float64{"custom_stat": 6, "upstream_rq_total": 7})
		wantClusterValues(t, s, "lonely", map[string]float64{"custom_stat": 8})
		if s.Stats["cluster_outbound|80||x_y_z_custom"] != 9 {
			t.Errorf("reverse=%v: an unsplittable stat should stay whole in Stats; got %v", reverse, s.Stats)
		}
		if len(s.Clusters) != 4 {
			t.Errorf("reverse=%v: clusters %v, want 4", reverse, keys(s.Clusters))
		}
	}
}

func TestWithClusterNames(t *testing.T) {
	in := "cluster.outbound|80||api.internal.upstream_rq_200: 1\ncluster.kuma_10.0.0.1_80.upstream_cx_total: 2\n"
	s, err := ParseStatsText(strings.NewReader(in), WithClusterNames("outbound|80||api.internal", "kuma_10.0.0.1:80"))
	if err != nil {
		t.Fatal(err)
	}
	wantClusterValues(t, s, "outbound|80||api.internal", map[string]float64{"upstream_rq_200": 1})
	wantClusterValues(t, s, "kuma_10.0.0.1:80", map[string]float64{"upstream_cx_total": 2})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestIsGauge(t *testing.T) {
	gauges := []string{
		"upstream_cx_active", "upstream_rq_pending_active", "upstream_rq_active", "membership_healthy",
		"membership_total", "circuit_breakers_default_rq_pending_open", "circuit_breakers_high_cx_open",
		"circuit_breakers_default_remaining_pending", "outlier_detection_ejections_active", "version",
		"max_host_weight", "upstream_cx_rx_bytes_buffered", "lb_subsets_active", "http2_streams_active",
		"http2_pending_send_bytes", "server_uptime", "server_concurrency", "server_live", "server_state",
		"server_memory_allocated", "server_version", "server_days_until_first_cert_expiring",
		"cluster_manager_active_clusters", "cluster_manager_warming_clusters", "cluster_manager_cds_version",
		"control_plane_connected_state", "control_plane_pending_requests", "runtime_num_keys",
		"http_admin_downstream_cx_active", "listener_0_0_0_0_8080_downstream_cx_active",
		"listener_manager_total_listeners_active", "health_check_healthy", "ring_hash_lb_size",
		"filesystem_write_total_buffered", "runtime_admin_overrides_active",
	}
	counters := []string{
		"upstream_rq_total", "upstream_rq_pending_overflow", "upstream_cx_connect_fail",
		"upstream_rq_503", "upstream_rq_5xx", "membership_change", "outlier_detection_ejections_enforced_total",
		"upstream_cx_destroy_remote_with_active_rq", "server_watchdog_miss", "server_debug_assertion_failures",
		"cluster_manager_cds_update_rejected", "cluster_manager_cluster_added", "http_admin_downstream_rq_2xx",
		"filesystem_write_buffered", "ssl_handshake", "default_total_match_count",
	}
	for _, n := range gauges {
		if !IsGauge(n) {
			t.Errorf("IsGauge(%q) = false, want true", n)
		}
	}
	for _, n := range counters {
		if IsGauge(n) {
			t.Errorf("IsGauge(%q) = true, want false", n)
		}
	}
	s := &StatsSample{Gauges: map[string]bool{"upstream_cx_active": false, "custom": true}}
	if s.IsGauge("upstream_cx_active") || !s.IsGauge("custom") || !s.IsGauge("membership_total") {
		t.Error("StatsSample.IsGauge should prefer the recorded TYPE and fall back to IsGauge")
	}
}
