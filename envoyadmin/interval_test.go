package envoyadmin

import (
	"math"
	"strings"
	"testing"
	"time"
)

func mustText(t *testing.T, lines ...string) *StatsSample {
	t.Helper()
	s, err := ParseStatsText(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStatsInterval(t *testing.T) {
	const c = "outbound|9080||reviews.default.svc.cluster.local"
	prev := mustText(t,
		"server.uptime: 100",
		"cluster."+c+".upstream_rq_total: 100",
		"cluster."+c+".upstream_rq_pending_overflow: 5",
		"cluster."+c+".upstream_rq_pending_active: 9",
		"cluster."+c+".upstream_cx_connect_ms: B1(0,1) B10(0,3) B100(0,4)",
		"cluster."+c+".upstream_rq_time: P0(nan,1) P100(nan,9)",
	)
	cur := mustText(t,
		"server.uptime: 110",
		"cluster."+c+".upstream_rq_total: 300",
		"cluster."+c+".upstream_rq_pending_overflow: 25",
		"cluster."+c+".upstream_rq_pending_active: 2",
		"cluster."+c+".upstream_rq_503: 20", // created during the window
		"cluster."+c+".upstream_cx_connect_ms: B1(0,1) B10(0,5) B100(0,8)",
		"cluster."+c+".upstream_rq_time: P0(nan,1) P100(nan,12)",
	)
	iv := NewStatsInterval(prev, cur, 10*time.Second)
	if iv.Restarted || !iv.Interval() {
		t.Fatalf("Restarted %v, Interval %v", iv.Restarted, iv.Interval())
	}
	tests := []struct {
		stat string
		want StatReading
	}{
		{"upstream_rq_total", StatReading{Found: true, Value: 200, Rate: 20}},
		{"upstream_rq_pending_overflow", StatReading{Found: true, Value: 20, Rate: 2}},
		{"upstream_rq_503", StatReading{Found: true, Value: 20, Rate: 2}},
		{"upstream_rq_pending_active", StatReading{Found: true, Gauge: true, Value: 2}},
		{"upstream_rq_timeout", StatReading{}},
	}
	for _, tt := range tests {
		if got := iv.Cluster(c, tt.stat); got != tt.want {
			t.Errorf("Cluster(%s) = %+v, want %+v", tt.stat, got, tt.want)
		}
	}
	if got := iv.Stat("server_uptime"); got != (StatReading{Found: true, Gauge: true, Value: 110}) {
		t.Errorf("Stat(server_uptime) = %+v", got)
	}
	h := iv.ClusterHistogram(c, "upstream_cx_connect_ms")
	if h.Cumulative || h.Reset || h.Count != 4 || h.Buckets[1].Count != 2 {
		t.Errorf("interval histogram = %+v %+v", h, h.Histogram)
	}
	if q := iv.ClusterHistogram(c, "upstream_rq_time"); !q.Cumulative || q.Quantile(1) != 12 {
		t.Errorf("quantile-only histogram = %+v: want the latest, cumulative", q)
	}
	if q := iv.ClusterHistogram(c, "nope"); q.Histogram != nil || q.Quantile(0.5) == q.Quantile(0.5) {
		t.Errorf("absent histogram = %+v: want nil and NaN quantiles", q)
	}

	// One sample: cumulative readings.
	one := NewStatsInterval(nil, cur, 0)
	if got := one.Cluster(c, "upstream_rq_total"); got != (StatReading{Found: true, Value: 300, Cumulative: true}) {
		t.Errorf("single sample: %+v", got)
	}
	if got := NewStatsInterval(cur, nil, time.Minute).Cluster(c, "upstream_rq_total"); !got.Cumulative || got.Value != 300 {
		t.Errorf("only prev given: %+v", got)
	}

	// Restart: counters went back; never a negative rate.
	restarted := mustText(t,
		"server.uptime: 3",
		"cluster."+c+".upstream_rq_total: 7",
		"cluster."+c+".upstream_cx_connect_ms: B1(0,0) B10(0,1) B100(0,1)",
	)
	r := NewStatsInterval(cur, restarted, 10*time.Second)
	if !r.Restarted {
		t.Error("Restarted = false after uptime and counters went down")
	}
	if got := r.Cluster(c, "upstream_rq_total"); got != (StatReading{Found: true, Value: 7, Rate: 0.7, Reset: true}) {
		t.Errorf("after restart: %+v", got)
	}
	if h := r.ClusterHistogram(c, "upstream_cx_connect_ms"); !h.Reset || !h.Cumulative || h.Count != 1 {
		t.Errorf("histogram after restart: %+v", h)
	}
	// A gauge going down is no restart.
	if NewStatsInterval(prev, mustText(t, "server.uptime: 200", "cluster."+c+".upstream_rq_pending_active: 0"), time.Second).Restarted {
		t.Error("a falling gauge was taken for a restart")
	}
}

func TestStatsIntervalIstio(t *testing.T) {
	series := func(code string, v float64) IstioSeries {
		return IstioSeries{Metric: "istio_requests_total", Value: v,
			Labels: map[string]string{"response_code": code, "reporter": "source"}}
	}
	prev := &StatsSample{Format: StatsPrometheus, Istio: []IstioSeries{series("200", 100), series("503", 10)}}
	cur := &StatsSample{Format: StatsPrometheus, Istio: []IstioSeries{series("200", 160), series("503", 40)}}
	iv := NewStatsInterval(prev, cur, 30*time.Second)
	if got := iv.Istio("istio_requests_total", map[string]string{"response_code": "503"}); got != (StatReading{Found: true, Value: 30, Rate: 1}) {
		t.Errorf("503s = %+v", got)
	}
	if got := iv.Istio("istio_requests_total", nil); got.Value != 90 || got.Rate != 3 {
		t.Errorf("all = %+v", got)
	}
	if got := iv.Istio("istio_requests_total", map[string]string{"response_code": "404"}); got.Found {
		t.Errorf("404s = %+v, want not found", got)
	}
}

func TestStatsIntervalIstioHistogram(t *testing.T) {
	hist := func(le10, le100, inf float64) *Histogram {
		return &Histogram{Buckets: []Bucket{{10, le10}, {100, le100}, {math.Inf(1), inf}}, Count: inf, Sum: inf * 20}
	}
	s := func(dest string, h *Histogram) IstioSeries {
		return IstioSeries{Metric: "istio_request_duration_milliseconds", Histogram: h, Labels: map[string]string{"reporter": "destination", "destination_workload": dest}}
	}
	prev := &StatsSample{Format: StatsPrometheus, Istio: []IstioSeries{s("v2", hist(10, 10, 10)), s("v1", hist(5, 5, 5))}}
	cur := &StatsSample{Format: StatsPrometheus, Istio: []IstioSeries{s("v2", hist(10, 60, 110)), s("v1", hist(5, 5, 1005))}}
	iv := NewStatsInterval(prev, cur, 10*time.Second)
	h := iv.IstioHistogram("istio_request_duration_milliseconds", map[string]string{"destination_workload": "v2"})
	if h == nil || h.Count != 100 || h.Buckets[0].Count != 0 || h.Buckets[1].Count != 50 {
		t.Fatalf("v2's window %+v: want 100 observations, 50 of them at most 100 ms", h)
	}
	if p99 := h.Quantile(0.99); p99 != 100 {
		t.Errorf("p99 %v: it falls in the +Inf bucket, which Prometheus reads as the highest finite bound, 100", p99)
	}
	if all := iv.IstioHistogram("istio_request_duration_milliseconds", nil); all.Count != 1100 {
		t.Errorf("both series: %v observations, want 1100", all.Count)
	}
	if iv.IstioHistogram("istio_request_duration_milliseconds", map[string]string{"destination_workload": "v3"}) != nil {
		t.Error("a histogram for a workload with no series")
	}
}
