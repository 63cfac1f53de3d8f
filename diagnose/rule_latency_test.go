package diagnose

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const fxInboundCluster = "inbound|8080||"

func fxRqTime(h *envoyadmin.Histogram, total float64) fxCluster {
	return fxCluster{values: map[string]float64{"upstream_rq_total": total}, hists: map[string]*envoyadmin.Histogram{"upstream_rq_time": h}}
}

func TestLatencyRule(t *testing.T) {
	slow := fxHist(fxValues(100, 10, 20, 3000)...)
	fast := fxHist(fxValues(100, 10, 20, 800)...)
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"slow tail of an upstream", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(slow, 100)}))
		}, []string{"MESH1101"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if !strings.Contains(f.Title, "reviews.default.svc.cluster.local") || !strings.Contains(f.Explanation, "minority") || f.Impact <= 0 {
				t.Errorf("%q impact %v: %s", f.Title, f.Impact, f.Explanation)
			}
			if f.Evidence[2].Label != "p99 latency since proxy start" || f.Evidence[2].Value < highLatencyP99Millis {
				t.Errorf("p99 evidence %+v", f.Evidence[2])
			}
		}},
		{"p99 under a second", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(fast, 100)}))
		}, nil, nil},
		{"too few requests to judge", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(fxHist(fxRepeat(3000, 10)...), 10)}))
		}, nil, nil},
		{"this pod's application is slow", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxInboundCluster: fxRqTime(fxHist(fxRepeat(2000, 50)...), 50)}))
		}, []string{"MESH1101"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Title, "application in this pod") || !strings.Contains(fs[0].Explanation, "most requests are slow") {
				t.Errorf("%q: %s", fs[0].Title, fs[0].Explanation)
			}
		}},
		{"slow before the window, fast during it", func(t *testing.T) *Snapshot {
			later := fxHist(append(fxValues(100, 10, 20, 3000), fxRepeat(20, 200)...)...)
			return fxTwo(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(slow, 100)}), fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(later, 300)}))
		}, nil, nil},
		{"slow during the window", func(t *testing.T) *Snapshot {
			first := fxHist(fxRepeat(20, 100)...)
			later := fxHist(append(fxRepeat(20, 100), fxRepeat(4000, 50)...)...)
			return fxTwo(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(first, 100)}), fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(later, 150)}))
		}, []string{"MESH1101"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Evidence[0].Label, "over 30s") || !strings.Contains(fs[0].Evidence[0].Source, "difference of 2 samples") {
				t.Errorf("evidence %+v", fs[0].Evidence[0])
			}
		}},
		{"Envoy's text quantiles: the cumulative p99", func(t *testing.T) *Snapshot {
			h := &envoyadmin.Histogram{Quantiles: []envoyadmin.Quantile{{Q: 0.5, Interval: math.NaN(), Cumulative: 40}, {Q: 0.99, Interval: math.NaN(), Cumulative: 1500}, {Q: 1, Interval: math.NaN(), Cumulative: 2000}}}
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: fxRqTime(h, 500)}))
		}, []string{"MESH1101"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Evidence[2].Label, "cumulative quantile") || fs[0].Evidence[2].Value != 1500 {
				t.Errorf("evidence %+v", fs[0].Evidence[2])
			}
		}},
		{"Istio's request duration when per-cluster stats are off", func(t *testing.T) *Snapshot {
			ss := fxSample(nil, map[string]fxCluster{"xds-grpc": {values: map[string]float64{"upstream_cx_total": 1}}})
			for _, code := range []string{"200", "503"} {
				s := fxIstio("istio_request_duration_milliseconds", 50, "reporter", "source", "destination_service", "ratings.default.svc.cluster.local", "response_code", code)
				s.Histogram = fxHist(fxValues(50, 5, 30, 2500)...)
				ss.Istio = append(ss.Istio, s)
			}
			return fxOne(ss)
		}, []string{"MESH1101"}, func(t *testing.T, fs []Finding) {
			if fs[0].Subject.Name != "ratings.default.svc.cluster.local" || fs[0].Evidence[3].Value != 100 || !strings.Contains(fs[0].Evidence[0].Source, "istio_request_duration_milliseconds") {
				t.Errorf("%v %+v", fs[0].Subject, fs[0].Evidence)
			}
		}},
		{"time lost in the proxy on the inbound side", func(t *testing.T) *Snapshot {
			c := fxRqTime(fxHist(fxRepeat(20, 100)...), 100)
			c.values["upstream_rq_retry"] = 12
			ss := fxSample(nil, map[string]fxCluster{fxInboundCluster: c})
			ss.Histograms["http_inbound_0_0_0_0_8080_downstream_rq_time"] = fxHist(fxRepeat(60, 100)...)
			return fxOne(ss)
		}, []string{"MESH1102"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Subject.Name != "inbound 0.0.0.0:8080" || !strings.Contains(f.Explanation, "Retries happened") || !strings.Contains(f.Fix.Command, "cpu.stat") {
				t.Errorf("%v: %s / %s", f.Subject, f.Explanation, f.Fix.Command)
			}
		}},
		{"proxy time within the noise", func(t *testing.T) *Snapshot {
			ss := fxSample(nil, map[string]fxCluster{fxInboundCluster: fxRqTime(fxHist(fxRepeat(20, 100)...), 100)})
			ss.Histograms["http_inbound_0_0_0_0_8080_downstream_rq_time"] = fxHist(fxRepeat(24, 100)...)
			return fxOne(ss)
		}, nil, nil},
		{"access log: DURATION well above the upstream's time", func(t *testing.T) *Snapshot {
			var lines []string
			for i := 0; i < 25; i++ {
				lines = append(lines, fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 80, 20))
			}
			return &Snapshot{Now: fxNow, AccessLog: fxLog(t, lines...)}
		}, []string{"MESH1102"}, nil},
		{"access log: retried requests are not proxy overhead", func(t *testing.T) *Snapshot {
			// As in testdata/incidents/retries-exhausted: every logged request failed after its
			// retries, so DURATION covers four attempts and their back-off, the header only the last.
			var lines []string
			for i := 0; i < 25; i++ {
				lines = append(lines, fxIstioLine(503, "URX", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 180, 35))
			}
			return &Snapshot{Now: fxNow, AccessLog: fxLog(t, lines...)}
		}, nil, nil},
		{"access log: failures and timeouts are left out, the clean lines measured", func(t *testing.T) *Snapshot {
			var lines []string
			for i := 0; i < 25; i++ {
				lines = append(lines, fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 22, 20))
			}
			for _, flags := range []string{"UF,URX", "UT", "UC", "UO", "UH", "DC", "NR", "NC"} {
				for i := 0; i < 4; i++ {
					lines = append(lines, fxIstioLine(503, flags, "-", "-", fxReviews, "10.0.1.1:9080", 1000, 5))
				}
			}
			for i := 0; i < 10; i++ {
				lines = append(lines, fxIstioLine(503, "-", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 300, 10))
			}
			return &Snapshot{Now: fxNow, AccessLog: fxLog(t, lines...)}
		}, nil, nil},
		{"access log: retries that succeeded are named beside the overhead", func(t *testing.T) *Snapshot {
			var lines []string
			for i := 0; i < 25; i++ {
				lines = append(lines, fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 80, 20))
			}
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_retry_success": 40}}}))
			s.AccessLog = fxLog(t, lines...)
			return s
		}, []string{"MESH1102"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if !strings.Contains(f.Explanation, "succeeded on a retry") || !strings.Contains(f.Evidence[0].Source, "without a response flag") || !fxHasEvidence(f, "succeeded on a retry", "upstream_rq_retry_success") {
				t.Errorf("%s %+v", f.Explanation, f.Evidence)
			}
		}},
		{"access log: the upstream takes the time", func(t *testing.T) *Snapshot {
			var lines []string
			for i := 0; i < 25; i++ {
				lines = append(lines, fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.1.1:9080", 80, 75))
			}
			return &Snapshot{Now: fxNow, AccessLog: fxLog(t, lines...)}
		}, nil, nil},
		{"slow TCP connects to an upstream", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_cx_total": 20}, hists: map[string]*envoyadmin.Histogram{"upstream_cx_connect_ms": fxHist(fxValues(20, 5, 1, 1200)...)}}}))
		}, []string{"MESH1103"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Explanation, "lost SYN") || !strings.Contains(fs[0].Fix.Command, "nf_conntrack_count") {
				t.Errorf("%s / %s", fs[0].Explanation, fs[0].Fix.Command)
			}
		}},
		{"slow connects to the local application", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxInboundCluster: {values: map[string]float64{"upstream_cx_total": 40}, hists: map[string]*envoyadmin.Histogram{"upstream_cx_connect_ms": fxHist(fxRepeat(300, 40)...)}}}))
		}, []string{"MESH1103"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Explanation, "listen backlog") {
				t.Errorf("%s", fs[0].Explanation)
			}
		}},
		{"a few slow connects are noise", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_cx_total": 5}, hists: map[string]*envoyadmin.Histogram{"upstream_cx_connect_ms": fxHist(fxRepeat(1200, 5)...)}}}))
		}, nil, nil},
		{"requests queued at both samples, one request per connection", func(t *testing.T) *Snapshot {
			c1 := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_pending_active": 3, "upstream_rq_pending_total": 100, "upstream_rq_total": 1000}}}
			c2 := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_pending_active": 5, "upstream_rq_pending_total": 160, "upstream_rq_total": 1300}}}
			s := fxTwo(fxSample(nil, c1), fxSample(nil, c2))
			s.Config = &envoyadmin.ConfigSummary{Clusters: []envoyadmin.ClusterConfig{{Name: envoyadmin.ParseClusterName(fxReviews), MaxRequestsPerConnection: 1}}}
			return s
		}, []string{"MESH1104"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Fix.YAML, "maxRequestsPerConnection: 0") || fs[0].Impact != 2 {
				t.Errorf("YAML %q impact %v", fs[0].Fix.YAML, fs[0].Impact)
			}
		}},
		{"most requests wait for a pool capped at 10 connections", func(t *testing.T) *Snapshot {
			limit := uint32(10)
			s := fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_pending_total": 500, "upstream_rq_total": 600, "upstream_cx_total": 10}}}))
			s.Config = &envoyadmin.ConfigSummary{Clusters: []envoyadmin.ClusterConfig{{Name: envoyadmin.ParseClusterName(fxReviews), CircuitBreakers: []envoyadmin.CircuitBreaker{{Priority: "DEFAULT", MaxConnections: &limit}}}}}
			return s
		}, []string{"MESH1104"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Fix.YAML, "maxConnections: 20") {
				t.Errorf("YAML %q", fs[0].Fix.YAML)
			}
		}},
		{"connections not reused", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_pending_total": 550, "upstream_rq_total": 600, "upstream_cx_total": 540}}}))
		}, []string{"MESH1104"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Explanation, "not reused") {
				t.Errorf("%s", fs[0].Explanation)
			}
		}},
		{"healthy: fast upstream, pool keeps up", func(t *testing.T) *Snapshot {
			c := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_total": 5000, "upstream_rq_pending_total": 40, "upstream_cx_total": 40, "upstream_rq_pending_active": 0},
				hists: map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxValues(200, 2, 15, 300)...), "upstream_cx_connect_ms": fxHist(fxRepeat(1, 40)...)}}}
			ss := fxSample(nil, c)
			ss.Histograms["http_outbound_0_0_0_0_9080_downstream_rq_time"] = fxHist(fxValues(200, 2, 16, 300)...)
			return fxOne(ss)
		}, nil, nil},
		{"real capture: Kuma's connect histograms", func(t *testing.T) *Snapshot {
			return fxOne(fxCaptureStats(t, "stats_prometheus/kuma-dp-envoy-histograms.prom"))
		}, nil, nil},
		{"real capture: Emissary's text histograms", func(t *testing.T) *Snapshot {
			return fxOne(fxCaptureStats(t, "stats_text/emissary-envoy-stats-with-histograms.txt"))
		}, nil, nil},
		{"no evidence", func(t *testing.T) *Snapshot { return &Snapshot{} }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, LatencyRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}
