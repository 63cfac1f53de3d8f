package diagnose

import (
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Impact is the affected request rate per second, in every rule (see Finding.Impact).

// TestLatencyImpactIsRequestRate: the latency rule ranked by rate × p99 seconds (impact 44 beside
// "request rate 20/s"); the impact is the rate of requests to the slow upstream.
func TestLatencyImpactIsRequestRate(t *testing.T) {
	// One sample an hour after start: 72000 requests is 20/s; a p99 of 2.2 s.
	s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(fxHist(fxValues(100, 5, 20, 2200)...), 72000)}))
	fs := fxRun(t, LatencyRule{}, s)
	if len(fs) != 1 || fs[0].Code != string(CodeHighUpstreamLatency) {
		t.Fatalf("findings %v", fxCodes(fs))
	}
	rate, ok := upEvidence(&fs[0], "request rate")
	if !ok || rate.Value != 20 {
		t.Fatalf("request rate evidence %+v", fs[0].Evidence)
	}
	if fs[0].Impact != rate.Value {
		t.Errorf("impact %v, want the request rate %v", fs[0].Impact, rate.Value)
	}
}

// TestSlowConnectImpactIsConnectRate: slow connects affect the requests that wait for them, one
// new connection each, not rate × p99.
func TestSlowConnectImpactIsConnectRate(t *testing.T) {
	c := fxCluster{
		values: map[string]float64{"upstream_cx_total": 7200}, // 2/s over the hour
		hists:  map[string]*envoyadmin.Histogram{"upstream_cx_connect_ms": fxHist(fxValues(100, 5, 1, 3000)...)},
	}
	fs := fxRun(t, LatencyRule{}, fxOne(fxSample(nil, map[string]fxCluster{fxReviews: c})))
	if len(fs) != 1 || fs[0].Code != string(CodeSlowConnect) {
		t.Fatalf("findings %v", fxCodes(fs))
	}
	if fs[0].Impact != 2 {
		t.Errorf("impact %v, want 2 connects/s", fs[0].Impact)
	}
}

// TestProxyOverheadImpactIsRequestRate: the listener's request rate, not rate × overhead.
func TestProxyOverheadImpactIsRequestRate(t *testing.T) {
	c := fxRqTime(fxHist(fxRepeat(20, 100)...), 100)
	ss := fxSample(map[string]float64{"http_inbound_0_0_0_0_8080_downstream_rq_total": 100}, map[string]fxCluster{fxInboundCluster: c})
	ss.Histograms["http_inbound_0_0_0_0_8080_downstream_rq_time"] = fxHist(fxRepeat(60, 100)...)
	fs := fxRun(t, LatencyRule{}, fxOne(ss))
	if len(fs) != 1 || fs[0].Code != string(CodeProxyOverhead) {
		t.Fatalf("findings %v", fxCodes(fs))
	}
	if want := round(100.0/3600, 3); fs[0].Impact != want {
		t.Errorf("impact %v, want %v requests/s", fs[0].Impact, want)
	}
}

func logAt(times ...time.Time) []envoyadmin.AccessLogEntry {
	var out []envoyadmin.AccessLogEntry
	for _, ts := range times {
		out = append(out, envoyadmin.AccessLogEntry{Timestamp: ts})
	}
	return out
}

// TestLogRateNeedsAPlausibleSpan: lines per second of the log's span, only over a span one
// capture could cover; a log of pasted lines from several years gave ~3e-08.
func TestLogRateNeedsAPlausibleSpan(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		log  []envoyadmin.AccessLogEntry
		want float64
	}{
		{"10 s of lines", logAt(t0, t0.Add(5*time.Second), t0.Add(10*time.Second)), 0.5},
		{"lines of several years", logAt(time.Date(2020, 11, 22, 20, 4, 32, 0, time.UTC), t0), 0},
		{"a span over a day", logAt(t0, t0.Add(25*time.Hour)), 0},
		{"a burst under a second", logAt(t0, t0.Add(500*time.Millisecond)), 0},
		{"no timestamps", logAt(time.Time{}, time.Time{}), 0},
	}
	for _, tc := range cases {
		s := &Snapshot{AccessLog: tc.log}
		if got := s.logRate(5); got != tc.want {
			t.Errorf("%s: logRate(5) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLogOnlyImpactWithoutTimeBase: the lines users pasted from GitHub issues span 2020 to 2023;
// the UC finding resting on them has no rate.
func TestLogOnlyImpactWithoutTimeBase(t *testing.T) {
	_, r := corpusDiagnose(t, map[string]string{FileAccessLog: "access_log/github-issues-istio-error-flag-lines.log"}, corpusNow)
	for _, f := range r.Findings {
		if f.Impact != 0 {
			t.Errorf("%s %s: impact %v from lines years apart, want 0", f.Code, f.Subject, f.Impact)
		}
	}
}
