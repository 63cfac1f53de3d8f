package diagnose

import (
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// setP99 gives a cluster's upstream_rq_time a p99 in ms in every sample.
func setP99(s *Snapshot, cluster string, p99 float64) {
	for _, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss != nil && ss.Clusters[cluster] != nil {
			ss.Clusters[cluster].Histograms = map[string]*envoyadmin.Histogram{"upstream_rq_time": upHistogram(p99/4, p99)}
		}
	}
}

func hostStatSet(s *Snapshot, cluster, addr, stat string, v uint64) {
	for i := range s.Upstreams.Clusters {
		if s.Upstreams.Clusters[i].Name.Raw != cluster {
			continue
		}
		for j := range s.Upstreams.Clusters[i].Hosts {
			if h := &s.Upstreams.Clusters[i].Hosts[j]; h.Address == addr {
				h.Stats[stat] = v
			}
		}
	}
}

func logLines(n int, code int, flags, details, cluster string, d time.Duration) []envoyadmin.AccessLogEntry {
	var out []envoyadmin.AccessLogEntry
	for i := 0; i < n; i++ {
		e := upLogLine(code, flags, details, cluster)
		e.Timestamp = e.Timestamp.Add(time.Duration(i) * time.Second)
		e.Duration = d
		out = append(out, e)
	}
	return out
}

func TestTimeoutRule(t *testing.T) {
	belowTail := upHealthyInterval()
	belowTail.Config.Routes[0].Timeout = dur(time.Second)
	setCounter(belowTail, upReviews, "upstream_rq_timeout", 10, 15)
	setP99(belowTail, upReviews, 1500)

	callerDeadline := upHealthy()
	setCounter(callerDeadline, upReviews, "upstream_rq_timeout", 50, 0)

	stalls := upHealthy()
	stalls.Config.Routes[0].Timeout = dur(5 * time.Second)
	setCounter(stalls, upReviews, "upstream_rq_timeout", 40, 0)
	hostStatSet(stalls, upReviews, "10.1.0.12:9080", "rq_timeout", 40)

	utLines := &Snapshot{AccessLog: logLines(3, 504, "UT", "upstream_response_timeout", upReviews, 15*time.Second)}

	perTry := upHealthy()
	perTry.Config.Routes[0].Retry = &envoyadmin.RetryPolicy{RetryOn: "5xx", NumRetries: 2, PerTryTimeout: 200 * time.Millisecond}
	setCounter(perTry, upReviews, "upstream_rq_per_try_timeout", 30, 0)
	setP99(perTry, upReviews, 250)

	perTryLines := upHealthy()
	perTryLines.AccessLog = append(perTryLines.AccessLog, logLines(2, 504, "UT,URX", "upstream_per_try_timeout", upReviews, time.Second)...)

	dcOut := upHealthy()
	dcOut.AccessLog = append(dcOut.AccessLog, logLines(3, 0, "DC", "downstream_remote_disconnect", upReviews, 2*time.Second)...)
	dcOut.AccessLog = append(dcOut.AccessLog, logLines(1, 0, "DC", "downstream_remote_disconnect", upReviews, 3*time.Second)...)

	dcIn := upHealthy()
	dcIn.AccessLog = append(dcIn.AccessLog, logLines(3, 0, "DC", "downstream_remote_disconnect", upInbound, 5*time.Second)...)

	resets := upHealthyInterval()
	setGlobal(resets, "http_inbound_0_0_0_0_9080_downstream_rq_total", 1000, 600)
	setGlobal(resets, "http_inbound_0_0_0_0_9080_downstream_rq_rx_reset", 10, 30)

	fewResets := upHealthyInterval()
	setGlobal(fewResets, "http_inbound_0_0_0_0_9080_downstream_rq_total", 1000, 600)
	setGlobal(fewResets, "http_inbound_0_0_0_0_9080_downstream_rq_rx_reset", 10, 2)

	rareResets := upHealthy()
	setGlobal(rareResets, "http_inbound_0_0_0_0_9080_downstream_rq_total", 100000, 0)
	setGlobal(rareResets, "http_inbound_0_0_0_0_9080_downstream_cx_destroy_remote_active_rq", 10, 0)

	runUpCases(t, TimeoutRule{}, []upCase{
		{name: "route timeout below the upstream's p99", snap: belowTail, want: []upWant{{
			code: CodeUpstreamTimeout, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"upstream_rq_timeout": 0.5, "route timeout of": 1000, "upstream p99": 1500},
			explain: []string{"below the upstream's tail latency"},
			fix:     []string{"kind: VirtualService", "timeout: 3s", "host: reviews.default.svc.cluster.local"},
		}}},
		{name: "routes without timeout: the caller's deadline", snap: callerDeadline, want: []upWant{{
			code: CodeUpstreamTimeout, subject: upReviews, severity: SeverityError,
			texts:   map[string]string{"route timeout of": "disabled"},
			explain: []string{"deadline came with the request", "grpc-timeout"},
			fix:     []string{"grep rq_timeout"},
		}}},
		{name: "p99 far below the timeout: one host stalls", snap: stalls, want: []upWant{{
			code: CodeUpstreamTimeout, subject: upReviews,
			values:  map[string]float64{"requests timed out on host 10.1.0.12:9080": 40, "route timeout of": 5000},
			explain: []string{"not set too low", "Only 1 of 3 hosts"},
		}}},
		{name: "UT lines in the access log only", snap: utLines, want: []upWant{{
			code: CodeUpstreamTimeout, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"access-log lines with UT": 3},
			explain: []string{"config dump the route timeout is unknown"},
		}}},
		{name: "per-try timeout below the upstream's p99", snap: perTry, want: []upWant{{
			code: CodePerTryTimeout, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"per-try timeout of": 200, "retries allowed": 2, "upstream_rq_per_try_timeout": round(30.0/10800, 3)},
			explain: []string{"Each attempt is cut after 200ms"},
			fix:     []string{"perTryTimeout: 1s", "attempts: 2"},
		}}},
		{name: "per-try timeouts in the access log", snap: perTryLines, want: []upWant{{
			code: CodePerTryTimeout, subject: upReviews, severity: SeverityInfo,
			values: map[string]float64{"upstream_per_try_timeout": 2},
		}}},
		{name: "the application gives up on its upstream", snap: dcOut, want: []upWant{{
			code: CodeDownstreamGaveUp, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"DC": 4, "median time before the caller gave up": 2000},
			explain: []string{"client timeout is shorter", "p99"},
			fix:     []string{"grep -E ' DC '"},
		}}},
		{name: "callers give up on this pod", snap: dcIn, want: []upWant{{
			code: CodeDownstreamGaveUp, subject: upInbound,
			values:  map[string]float64{"median time before the caller gave up": 5000},
			explain: []string{"the application behind the sidecar takes longer"},
		}}},
		{name: "callers reset requests over the window", snap: resets, want: []upWant{{
			code: CodeDownstreamGaveUp, subject: "http.inbound_0_0_0_0_9080", severity: SeverityWarning,
			values:  map[string]float64{"downstream_rq_rx_reset": 1, "share of the listener's requests": 5},
			explain: []string{"Clients of this pod"},
		}}},
		{name: "two caller resets are ordinary cancellations", snap: fewResets},
		{name: "caller resets under 1% of requests", snap: rareResets},
	})
}
