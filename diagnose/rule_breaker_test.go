package diagnose

import (
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const httpbin = "outbound|8000||httpbin.default.svc.cluster.local"

// istioIOPendingOverflow mirrors the istio.io circuit-breaking task's capture
// (stats_text/istio-io-circuit-breaking-pending-overflow.txt): one text sample, no uptime,
// 21 requests rejected of 29 that waited.
func istioIOPendingOverflow() *Snapshot {
	return &Snapshot{
		StatsFile: FileStatsText,
		Stats: upSample(map[string]map[string]float64{httpbin: {
			"circuit_breakers_default_remaining_pending": 1,
			"circuit_breakers_default_rq_pending_open":   0,
			"circuit_breakers_high_rq_pending_open":      0,
			"upstream_rq_pending_active":                 0,
			"upstream_rq_pending_failure_eject":          0,
			"upstream_rq_pending_overflow":               21,
			"upstream_rq_pending_total":                  29,
		}}, nil),
	}
}

// withTaskDestinationRule adds the task's DestinationRule as the config dump shows it:
// maxConnections 1, http1MaxPendingRequests 1, the rest Istio's unlimited.
func withTaskDestinationRule(s *Snapshot) *Snapshot {
	unlimited := u32(4294967295)
	s.Config = &envoyadmin.ConfigSummary{Clusters: []envoyadmin.ClusterConfig{{
		Name: envoyadmin.ParseClusterName(httpbin), DiscoveryType: "EDS", TLSMode: envoyadmin.TLSModeAuto,
		CircuitBreakers: []envoyadmin.CircuitBreaker{{Priority: "DEFAULT", MaxConnections: u32(1), MaxPendingRequests: u32(1), MaxRequests: unlimited, MaxRetries: unlimited}},
	}}}
	return s
}

func TestCircuitBreakerRule(t *testing.T) {
	pendingOpen := upHealthyInterval()
	setCounter(pendingOpen, upReviews, "upstream_rq_pending_overflow", 100, 60)
	setCounter(pendingOpen, upReviews, "circuit_breakers_default_rq_pending_open", 1, 0)
	pendingOpen.Config.Clusters[0].CircuitBreakers = nil // Envoy's defaults: 1024 / 1024 / 1024 / 3

	h2 := upHealthyInterval()
	setCounter(h2, upReviews, "upstream_rq_pending_overflow", 0, 30)
	h2.Config.Clusters[0].HTTP2 = true
	h2.Config.Clusters[0].CircuitBreakers[0].MaxRequests = u32(100)

	cx := upHealthyInterval()
	setCounter(cx, upReviews, "upstream_cx_overflow", 10, 12)
	cx.Config.Clusters[0].CircuitBreakers[0].MaxConnections = u32(50)

	retries := upHealthy()
	setCounter(retries, upReviews, "upstream_rq_retry_overflow", 80, 0)
	setCounter(retries, upReviews, "upstream_rq_retry", 400, 0)
	retries.Config = nil
	retries.Upstreams.Clusters[0].CircuitBreakers = []envoyadmin.CircuitBreaker{{Priority: "DEFAULT", MaxRetries: u32(3)}}
	retries.UpstreamsFile = FileClustersTxt

	cxOpen := upHealthy()
	setCounter(cxOpen, upReviews, "circuit_breakers_default_cx_open", 1, 0)
	cxOpen.Config.Clusters[0].CircuitBreakers[0].MaxConnections = u32(10)

	// HTTP/1.1 with both limits low: the connection limit is told inside MESH0301.
	bothLimits := upHealthyInterval()
	setCounter(bothLimits, upReviews, "upstream_rq_pending_overflow", 0, 20)
	setCounter(bothLimits, upReviews, "upstream_cx_overflow", 0, 25)
	bothLimits.Config.Clusters[0].CircuitBreakers[0].MaxConnections = u32(4)
	bothLimits.Config.Clusters[0].CircuitBreakers[0].MaxPendingRequests = u32(8)

	uoLines := &Snapshot{AccessLog: logLines(4, 503, "UO", "upstream_reset_before_response_started{overflow}", upReviews, 0)}

	runUpCases(t, CircuitBreakerRule{}, []upCase{
		{name: "istio.io task capture: 21 pending overflows", snap: istioIOPendingOverflow(), want: []upWant{{
			code: CodePendingOverflow, subject: httpbin, severity: SeverityError,
			values:  map[string]float64{"upstream_rq_pending_overflow": 21, "upstream_rq_pending_total": 29, "waiting for a connection at capture": 0, "max_pending_requests (connectionPool.http.http1MaxPendingRequests), inferred from": 1},
			explain: []string{"at most 1 request wait", "inferred from the stats", "remaining_pending 1 + upstream_rq_pending_active 0"},
			fix:     []string{"http1MaxPendingRequests: 10", "grep -F -- '" + httpbin + "'"},
		}}},
		{name: "istio.io task capture with its DestinationRule", snap: withTaskDestinationRule(istioIOPendingOverflow()), want: []upWant{{
			code: CodePendingOverflow, subject: httpbin, severity: SeverityError,
			values:  map[string]float64{"upstream_rq_pending_overflow": 21, "max_pending_requests": 1, "max_connections": 1},
			texts:   map[string]string{"max_requests": "unlimited"},
			explain: []string{"at most 1 request wait", "at most 1 connection is allowed"},
			fix:     []string{"http1MaxPendingRequests: 10", "maxConnections: 10", "host: httpbin.default.svc.cluster.local"},
		}}},
		{name: "pending queue full and open now, Envoy's defaults", snap: pendingOpen, want: []upWant{
			{
				code: CodePendingOverflow, subject: upReviews, severity: SeverityError,
				values: map[string]float64{"upstream_rq_pending_overflow": 2, "max_pending_requests (connectionPool.http.http1MaxPendingRequests), not set": 1024},
				fix:    []string{"http1MaxPendingRequests: 2048"},
			},
			{
				code: CodeBreakerOpen, subject: upReviews, severity: SeverityError,
				values: map[string]float64{"max_pending_requests reached at capture": 1},
				fix:    []string{"http1MaxPendingRequests: 2048"},
			},
		}},
		{name: "HTTP/2 upstream at http2MaxRequests", snap: h2, want: []upWant{{
			code: CodePendingOverflow, subject: upReviews,
			values:  map[string]float64{"max_requests": 100},
			explain: []string{"at most 100 requests in flight"},
			fix:     []string{"http2MaxRequests: 200"},
		}}},
		{name: "connection limit reached", snap: cx, want: []upWant{{
			code: CodeConnectionOverflow, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"upstream_cx_overflow": 0.4, "max_connections": 50},
			explain: []string{"the limit of 50 connections"},
			fix:     []string{"maxConnections: 100"},
		}}},
		{name: "retry limit from /clusters", snap: retries, want: []upWant{{
			code: CodeRetryOverflow, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"upstream_rq_retry_overflow": round(80.0/10800, 3), "max_retries": 3},
			explain: []string{"went back to the caller unretried"},
			fix:     []string{"maxRetries: 10"},
		}}},
		{name: "connection breaker open only: requests wait, not rejected", snap: cxOpen, want: []upWant{{
			code: CodeBreakerOpen, subject: upReviews, severity: SeverityWarning,
			values: map[string]float64{"max_connections reached at capture": 1, "max_connections (": 10},
			fix:    []string{"maxConnections: 20"},
		}}},
		{name: "pending and connection overflows: one finding", snap: bothLimits, want: []upWant{{
			code: CodePendingOverflow, subject: upReviews,
			values:  map[string]float64{"max_pending_requests (": 8, "max_connections (": 4},
			explain: []string{"at most 4 connections are allowed"},
			fix:     []string{"maxConnections: 10", "http1MaxPendingRequests: 16"},
		}}},
		{name: "UO lines only", snap: uoLines, want: []upWant{{
			code: CodePendingOverflow, subject: upReviews, severity: SeverityError,
			values: map[string]float64{"access-log lines with UO": 4},
		}}},
	})
}
