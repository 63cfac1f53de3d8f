package diagnose

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func TestAppErrorRule(t *testing.T) {
	appLine := fxIstioLine(500, "-", "via_upstream", "-", fxReviews, "10.0.1.7:9080", 12, 11)
	logSnap := func(t *testing.T, lines ...string) *Snapshot {
		return &Snapshot{Now: fxNow, AccessLog: fxLog(t, lines...)}
	}
	istio := func(series ...envoyadmin.IstioSeries) *Snapshot {
		ss := fxSample(nil, nil)
		ss.Istio = series
		return fxOne(ss)
	}
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"the upstream application answers 500", func(t *testing.T) *Snapshot {
			return logSnap(t, appLine, appLine, fxIstioLine(503, "-", "via_upstream", "-", fxReviews, "10.0.1.7:9080", 3, 3))
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			texts := ""
			for _, e := range f.Evidence {
				texts += e.Text + "|"
			}
			if !strings.Contains(texts, "1×503, 2×500") || !strings.Contains(texts, "GET /api/items -> 500 from 10.0.1.7:9080") ||
				!strings.Contains(f.Fix.Command, "kubectl logs -n default svc/reviews") || !strings.Contains(f.Fix.Command, "status.podIP=10.0.1.7") {
				t.Errorf("evidence %q fix %q", texts, f.Fix.Command)
			}
		}},
		{"two lines are not enough", func(t *testing.T) *Snapshot { return logSnap(t, appLine, appLine) }, nil, nil},
		{"503s the mesh produced are not the application's", func(t *testing.T) *Snapshot {
			l := fxIstioLine(503, "UF,URX", "upstream_reset_before_response_started{connection_failure}", "-", fxReviews, "10.0.1.7:9080", 3, -1)
			return logSnap(t, l, l, l, l)
		}, nil, nil},
		{"real capture: one application 500 among mesh failures", func(t *testing.T) *Snapshot {
			entries, _, err := envoyadmin.ParseAccessLog(strings.NewReader(string(captures.Read(t, "access_log/github-issues-istio-error-flag-lines.log"))))
			if err != nil {
				t.Fatal(err)
			}
			return &Snapshot{Now: fxNow, AccessLog: entries}
		}, nil, nil},
		{"Istio metrics: this pod's application answers 5xx", func(t *testing.T) *Snapshot {
			return istio(
				fxIstio("istio_requests_total", 30, "reporter", "destination", "destination_service", "reviews.default.svc.cluster.local", "response_code", "500", "response_flags", "-"),
				fxIstio("istio_requests_total", 40, "reporter", "source", "destination_service", "ratings.default.svc.cluster.local", "response_code", "503", "response_flags", "UF"),
			)
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Title, "application in this pod") || !strings.Contains(fs[0].Fix.Command, "kubectl logs") {
				t.Errorf("%q %q", fs[0].Title, fs[0].Fix.Command)
			}
		}},
		{"cluster 5xx with no mesh failure", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_5xx": 20, "upstream_rq_total": 1000}}}))
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			if fs[0].Evidence[1].Value != 2 {
				t.Errorf("share %+v", fs[0].Evidence[1])
			}
		}},
		{"retried 5xx: the failure rate is what callers saw (istio_requests_total)", func(t *testing.T) *Snapshot {
			// As in testdata/incidents/retries-exhausted: 87 5xx attempts, 78 of them retried, 9
			// requests failing after their last retry, over 30s.
			return fxTwo(retriedSample(5220, 4680, 33088, 540), retriedSample(5307, 4758, 33233, 549))
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Impact != 0.3 || !fxHasEvidence(f, "5xx answers to attempts, retries included", "upstream_rq_5xx") ||
				!fxHasEvidence(f, "as callers saw them", "istio_requests_total") || !strings.Contains(f.Explanation, "78 of its 87 5xx answers were retried") {
				t.Errorf("impact %v, %+v\n%s", f.Impact, f.Evidence, f.Explanation)
			}
			for _, e := range f.Evidence {
				if e.Label == "share of requests that failed" && e.Value != round(9.0/(145-78)*100, 2) {
					t.Errorf("share %+v", e)
				}
				if e.Label == "share of requests" {
					t.Errorf("attempts reported as requests: %+v", e)
				}
			}
		}},
		{"retried 5xx without Istio metrics: estimated as 5xx attempts minus retries", func(t *testing.T) *Snapshot {
			a, b := retriedSample(5220, 4680, 33088, 540), retriedSample(5307, 4758, 33233, 549)
			a.Istio, b.Istio = nil, nil
			return fxTwo(a, b)
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Impact != 0.3 || !fxHasEvidence(f, "estimated: 5xx attempts minus retries", "upstream_rq_5xx - upstream_rq_retry") || !strings.Contains(f.Explanation, "is an estimate") {
				t.Errorf("impact %v, %+v\n%s", f.Impact, f.Evidence, f.Explanation)
			}
		}},
		{"every 5xx recovered by a retry: still the application's, no failed request", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_5xx": 40, "upstream_rq_retry": 40, "upstream_rq_total": 1040}}}))
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			if f := fs[0]; f.Impact != 0 || !strings.Contains(f.Explanation, "none of them failed in the end") {
				t.Errorf("impact %v: %s", f.Impact, f.Explanation)
			}
		}},
		{"cluster 5xx mixed with timeouts: not claimed", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_5xx": 20, "upstream_rq_timeout": 5, "upstream_rq_total": 1000}}}))
		}, nil, nil},
		{"no new 5xx during the window", func(t *testing.T) *Snapshot {
			c := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_5xx": 20, "upstream_rq_total": 1000}}}
			c2 := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_5xx": 20, "upstream_rq_total": 1300}}}
			return fxTwo(fxSample(nil, c), fxSample(nil, c2))
		}, nil, nil},
		{"Istio 1.3-1.8 lines without details", func(t *testing.T) *Snapshot {
			l := `[2020-11-22T20:04:32.765Z] "GET /products HTTP/1.1" 500 - "-" "-" 0 122 11939 11933 "-" "curl" "id" "svc:8080" "127.0.0.1:8080" inbound|8080|http-8080|scrappers-service.default.svc.cluster.local 127.0.0.1:52034 172.18.0.10:8080 172.18.0.1:37035 - default`
			return logSnap(t, l, l, l)
		}, []string{"MESH1801"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Title, "application in this pod") {
				t.Errorf("%q", fs[0].Title)
			}
		}},
		{"healthy: successes only", func(t *testing.T) *Snapshot {
			ok := fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.1.7:9080", 12, 11)
			return logSnap(t, ok, ok, ok, ok)
		}, nil, nil},
		{"no evidence", func(t *testing.T) *Snapshot { return &Snapshot{} }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, AppErrorRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}

// retriedSample is the stats of a proxy that retries 503s from ratings: the cluster's attempt
// counters and the callers' view in istio_requests_total.
func retriedSample(fivexx, retries, total, failed float64) *envoyadmin.StatsSample {
	const ratings = "outbound|9080||ratings.default.svc.cluster.local"
	ss := fxSample(nil, map[string]fxCluster{ratings: {values: map[string]float64{"upstream_rq_5xx": fivexx, "upstream_rq_retry": retries, "upstream_rq_total": total}}})
	ss.Istio = []envoyadmin.IstioSeries{
		fxIstio("istio_requests_total", total-retries-failed, "reporter", "source", "destination_service", "ratings.default.svc.cluster.local", "response_code", "200", "response_flags", "-"),
		fxIstio("istio_requests_total", failed, "reporter", "source", "destination_service", "ratings.default.svc.cluster.local", "response_code", "503", "response_flags", "URX"),
	}
	return ss
}
