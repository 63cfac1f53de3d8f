package envoyadmin

import (
	"encoding/json"
	"strings"
	"testing"
)

// Values no Envoy writes are taken out of a sample with a warning, and the rest is kept.
func TestHostileStatsNumbers(t *testing.T) {
	text := strings.Join([]string{
		"cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_total: 100",
		"cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_timeout: nan",
		"cluster.outbound|80||a.default.svc.cluster.local.upstream_cx_overflow: inf",
		"cluster.outbound|80||a.default.svc.cluster.local.upstream_rq_pending_overflow: 1e300",
		"cluster.outbound|80||a.default.svc.cluster.local.upstream_cx_connect_fail: 20000000000000000000",
		"server.uptime: 3600",
	}, "\n")
	s, err := ParseStatsText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clusters["outbound|80||a.default.svc.cluster.local"]
	if c == nil || c.Values["upstream_rq_total"] != 100 || len(c.Values) != 1 {
		t.Fatalf("kept %+v", c)
	}
	if s.Skipped < 4 || !strings.Contains(strings.Join(s.Warnings, "\n"), "not one Envoy writes") {
		t.Errorf("skipped %d, warnings %q", s.Skipped, s.Warnings)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Errorf("the sample does not encode: %v", err)
	}
	prom := strings.Join([]string{
		`# TYPE envoy_cluster_upstream_rq_time histogram`,
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="a",le="-5"} 1`,
		`envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="a",le="+Inf"} 2`,
		`envoy_cluster_upstream_rq_time_sum{envoy_cluster_name="a"} 3`,
		`envoy_cluster_upstream_rq_time_count{envoy_cluster_name="a"} 2`,
		`# TYPE envoy_cluster_upstream_cx_connect_ms histogram`,
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="5"} 9`,
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="10"} 4`,
		`envoy_cluster_upstream_cx_connect_ms_bucket{envoy_cluster_name="a",le="+Inf"} 9`,
		`envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="a"} 30`,
		`envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="a"} 9`,
		`# TYPE envoy_cluster_upstream_rq_total counter`,
		`envoy_cluster_upstream_rq_total{envoy_cluster_name="a"} 7`,
	}, "\n")
	p, err := ParseStatsPrometheus(strings.NewReader(prom))
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Clusters["a"]; c == nil || len(c.Histograms) != 0 || c.Values["upstream_rq_total"] != 7 {
		t.Errorf("histograms kept: %+v", c)
	}
	w := strings.Join(p.Warnings, "\n")
	if !strings.Contains(w, "negative") || !strings.Contains(w, "fall") {
		t.Errorf("warnings %q", w)
	}
}

func TestHostileStatsLongLine(t *testing.T) {
	long := `envoy_cluster_upstream_rq_total{envoy_cluster_name="` + strings.Repeat("x", 2*maxStatLine) + `"} 1`
	p, err := ParseStatsPrometheus(strings.NewReader("# TYPE envoy_cluster_upstream_rq_total counter\n" + long + "\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"b\"} 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Clusters) != 1 || p.Clusters["b"] == nil || p.Skipped != 1 {
		t.Errorf("clusters %v, skipped %d", p.Clusters, p.Skipped)
	}
}
