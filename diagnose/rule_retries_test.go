package diagnose

import (
	"testing"
)

func TestRetriesExhaustedRule(t *testing.T) {
	withUF := upHealthyInterval()
	setCounter(withUF, upReviews, "upstream_rq_retry_limit_exceeded", 0, 9)
	setCounter(withUF, upReviews, "upstream_rq_retry", 0, 30)
	withUF.AccessLog = append(withUF.AccessLog, ufLines(3, upReviews, "10.1.0.11:9080", "delayed connect error: 111")...)

	countersUC := upHealthy()
	setCounter(countersUC, upReviews, "upstream_rq_retry_limit_exceeded", 40, 0)
	setCounter(countersUC, upReviews, "upstream_cx_destroy_remote_with_active_rq", 120, 0)
	setCounter(countersUC, upReviews, "upstream_cx_connect_fail", 7, 0)

	appErrors := upHealthy()
	appErrors.AccessLog = append(appErrors.AccessLog, logLines(3, 503, "URX", "via_upstream", upReviews, 0)...)

	noCause := upHealthy()
	setCounter(noCause, upReviews, "upstream_rq_retry_limit_exceeded", 40, 0)

	few := upHealthy()
	setCounter(few, upReviews, "upstream_rq_retry_limit_exceeded", 2, 0)

	runUpCases(t, RetriesExhaustedRule{}, []upCase{
		{name: "connection failures retried until the limit", snap: withUF, want: []upWant{{
			code: CodeRetriesExhausted, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"upstream_rq_retry_limit_exceeded": 0.3, "upstream_rq_retry ": 1, "URX lines that also carry UF": 3},
			texts:   map[string]string{"retry policy of": "2 retries on " + istioDefaultRetryOn + " (status 503) (Istio's default)"},
			explain: []string{"connection failures (UF, see MESH0201-0204)"},
			fix:     []string{"grep -E 'URX'"},
		}}},
		{name: "counters point to a keep-alive race first", snap: countersUC, want: []upWant{{
			code: CodeRetriesExhausted, subject: upReviews,
			values:  map[string]float64{"upstream_cx_destroy_remote_with_active_rq": round(120.0/10800, 3), "upstream_cx_connect_fail": round(7.0/10800, 3)},
			explain: []string{"keep-alive race) (upstream_cx_destroy_remote_with_active_rq, see MESH0401), then connection failures"},
		}}},
		{name: "the upstream's own 503s", snap: appErrors, want: []upWant{{
			code: CodeRetriesExhausted, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"via_upstream": 3},
			explain: []string{"MESH1801"},
		}}},
		{name: "nothing says what was retried", snap: noCause, want: []upWant{{
			code: CodeRetriesExhausted, subject: upReviews,
			explain: []string{"Nothing in the evidence says which failure was retried"},
		}}},
		{name: "two since start are noise", snap: few},
	})
}
