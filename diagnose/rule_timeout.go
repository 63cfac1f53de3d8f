package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// TimeoutRule finds requests cut off by a timeout: the route timeout (MESH0101), the per-try
// timeout of a retry policy (MESH0102), and callers that give up before the answer (MESH0103).
type TimeoutRule struct{}

const (
	// tailNearTimeout: an upstream whose p99 reaches this share of a timeout has a tail that
	// crosses it. upstream_rq_time holds completed requests only, so its p99 understates.
	tailNearTimeout = 0.8
	// minCallerGaveUp: fewer DC lines or caller resets than this are ordinary cancellations.
	minCallerGaveUp = 3
	// minCallerGaveUpShare: caller resets below this share of a listener's requests are
	// ordinary cancellations (users leaving a page, gRPC streams ended by the client).
	minCallerGaveUpShare = 0.01
	// maxListedRoutes bounds the routes named in evidence.
	maxListedRoutes = 3
)

// Meta describes the rule.
func (TimeoutRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "TimeoutRule",
		Description: "Requests that hit the route or per-try timeout (UT, 504), and callers that close the connection before the answer (DC).",
		Codes:       []Code{CodeUpstreamTimeout, CodePerTryTimeout, CodeDownstreamGaveUp},
		AnyOf:       []Input{InputStats, InputAccessLog, InputUpstreams},
	}
}

// Check runs the rule.
func (TimeoutRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.appClusters() {
		if g := s.clusterSignalOrHosts(c, "upstream_rq_timeout", "rq_timeout", isRouteTimeout); g.fires() {
			out = append(out, routeTimeoutFinding(s, c, g))
		} else if f, ok := gatewayTimeoutFinding(s, c, g); ok {
			out = append(out, f)
		}
		if g := s.clusterSignal(c, "upstream_rq_per_try_timeout", isPerTryTimeout); g.fires() {
			out = append(out, perTryTimeoutFinding(s, c, g))
		}
		if dc := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == c && isCallerGaveUp(e) }); len(dc) >= minCallerGaveUp {
			out = append(out, callerGaveUpFinding(s, c, dc))
		}
	}
	return append(out, callerResetFindings(s)...)
}

func detailsBase(e *envoyadmin.AccessLogEntry) string {
	base, _, _ := envoyadmin.ParseResponseCodeDetails(e.Details)
	return base
}

// isPerTryTimeout matches the last attempt of a request cut by the per-try timeout.
func isPerTryTimeout(e *envoyadmin.AccessLogEntry) bool {
	b := detailsBase(e)
	return b == "upstream_per_try_timeout" || b == "upstream_per_try_idle_timeout"
}

// isRouteTimeout matches a request cut by the route timeout: UT that is not a per-try timeout.
func isRouteTimeout(e *envoyadmin.AccessLogEntry) bool {
	return (HasFlag(e, "UT") && !isPerTryTimeout(e)) || detailsBase(e) == "upstream_response_timeout"
}

func isCallerGaveUp(e *envoyadmin.AccessLogEntry) bool {
	return HasFlag(e, "DC") || detailsBase(e) == "downstream_remote_disconnect"
}

// upstreamP99 is the cluster's p99 of upstream_rq_time in ms, NaN when unknown.
func upstreamP99(s *Snapshot, cluster string) (p99 float64, ev Evidence) {
	h, interval, src := s.ClusterHistogram(cluster, "upstream_rq_time")
	p99 = h.Quantile(0.99)
	if math.IsNaN(p99) || math.IsInf(p99, 0) {
		return math.NaN(), Evidence{}
	}
	basis := "since proxy start"
	if interval {
		basis = "over the window"
	}
	return p99, Evidence{Label: "upstream p99 latency of completed requests " + basis, Value: round(p99, 1), Unit: UnitMillis, Source: src + " P99"}
}

// routeTimeouts returns evidence for the distinct timeouts of the routes to a cluster and the
// smallest enabled one (0 when none is). An unset timeout is Envoy's 15s; 0 disables it.
func routeTimeouts(s *Snapshot, cluster string) (ev []Evidence, smallest time.Duration, routes int) {
	seen := map[time.Duration]bool{}
	rs := s.RoutesTo(cluster)
	for _, r := range rs {
		t, label := defaultRouteTimeout, "route timeout (not set: Envoy's default)"
		if r.Timeout != nil {
			t, label = *r.Timeout, "route timeout"
		}
		if t > 0 && (smallest == 0 || t < smallest) {
			smallest = t
		}
		if seen[t] || len(seen) == maxListedRoutes {
			continue
		}
		seen[t] = true
		e := Evidence{Label: label + " of " + routeName(r), Value: millis(t), Unit: UnitMillis,
			Source: fmt.Sprintf("%s route config %s virtual host %s timeout", FileConfigDump, r.RouteConfigName, r.VirtualHost)}
		if t == 0 {
			e.Label, e.Value, e.Unit, e.Text = "route timeout of "+routeName(r), 0, "", "0s (disabled, Istio's default without a VirtualService timeout)"
		}
		ev = append(ev, e)
	}
	return ev, smallest, len(rs)
}

func routeName(r envoyadmin.RouteConfig) string {
	if r.Name != "" {
		return r.VirtualHost + "/" + r.Name
	}
	return r.VirtualHost
}

// tailVersusTimeout explains how the upstream's p99 compares with a timeout, and says whether
// the timeout is what is too short.
func tailVersusTimeout(p99 float64, t time.Duration, what string) (text string, tooShort bool) {
	tm := millis(t)
	switch {
	case p99 >= tm:
		return fmt.Sprintf("The upstream's p99 (%.0f ms) is at or above the %s (%s), so the timeout is below the upstream's tail latency and 1%% or more of requests need longer than it. Requests that timed out are not in upstream_rq_time, so the real tail is longer still.", p99, what, t), true
	case p99 >= tailNearTimeout*tm:
		return fmt.Sprintf("The upstream's p99 (%.0f ms) is within %.0f%% of the %s (%s): its tail crosses the timeout, and timed-out requests are not even in that p99.", p99, (1-tailNearTimeout)*100, what, t), true
	}
	return fmt.Sprintf("Most requests finish well within the %s (p99 %.0f ms against %s), so the timeout is not set too low: the requests that hit it stall, on a slow or overloaded host, a long pause of the upstream (GC, CPU throttling) or a slow dependency of it.", what, p99, t), false
}

// suggestTimeout proposes a timeout above the upstream's tail: 1.5 × p99, rounded up to a
// second and above the current value.
func suggestTimeout(p99 float64, current time.Duration) time.Duration {
	d := time.Duration(math.Ceil(p99*1.5/1000)) * time.Second
	if d <= current {
		d = current + time.Second
	}
	return d
}

// gatewayTimeoutFinding reports 504 answers counted for a cluster when no route timeout was:
// Envoy counts its own route timeouts as 504s too, so where the stats lack upstream_rq_timeout
// (an excerpt) the 504s are the timeouts; where it is there and zero, a proxy behind the
// upstream timed out (the upstream is a gateway).
func gatewayTimeoutFinding(s *Snapshot, c string, timeouts signal) (Finding, bool) {
	var g signal
	for _, stat := range []string{"upstream_rq_504", "external_upstream_rq_504"} {
		if m, ok := s.ClusterCounter(c, stat); ok && m.Value > 0 {
			g = signal{m: m, ok: true}
			g.small, g.total = s.smallCount(c, m, true)
			g.excerpt = !m.Interval && !s.hasClusterTotal(c)
			break
		}
	}
	if !g.counted() {
		return Finding{}, false
	}
	host := ServiceHost(c)
	f := NewFinding(CodeUpstreamTimeout, ClusterSubject(c))
	f.Title = fmt.Sprintf("Requests to %s end in 504 Gateway Timeout", host)
	f.Severity, f.Impact = g.severity(SeverityWarning), g.impact(s)
	f.Evidence = g.evidence(s, "504 answers ("+g.m.Source+")", "")
	if timeouts.ok {
		f.Evidence = append(f.Evidence, timeouts.m.Evidence("route timeouts of this proxy (upstream_rq_timeout)"))
		f.Explanation = fmt.Sprintf("Requests to %s got 504 Gateway Timeout, and this proxy's route timeout did not fire: a proxy or gateway behind %s gave up waiting for its own upstream and answered 504.", host, host)
	} else {
		f.Explanation = fmt.Sprintf("Requests to %s got 504 Gateway Timeout. Envoy counts its own route timeouts (UT) as 504s, and the stats hold no upstream_rq_timeout to tell them from a 504 of the upstream: in a mesh it is usually the route's timeout expiring before %s answered.", host, host)
	}
	tev, _, _ := routeTimeouts(s, c)
	f.Evidence = append(f.Evidence, tev...)
	f.Fix = Fix{Summary: "Compare the route timeout with the upstream's slowest answers; raise it above the p99, or make the upstream (or the gateway behind it) faster.", YAML: VirtualServiceYAML(orDefault(host, "<service>.<namespace>.svc.cluster.local"), "    timeout: 30s    # above the upstream's p99\n")}
	return f, true
}

func routeTimeoutFinding(s *Snapshot, c string, g signal) Finding {
	f := NewFinding(CodeUpstreamTimeout, ClusterSubject(c))
	f.Title = fmt.Sprintf("Requests to %s hit the route timeout (UT, 504)", ServiceHost(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "requests cut by the route timeout (upstream_rq_timeout)", "access-log lines with UT / upstream_response_timeout")
	tev, smallest, nroutes := routeTimeouts(s, c)
	f.Evidence = append(f.Evidence, tev...)
	p99, pev := upstreamP99(s, c)
	if !math.IsNaN(p99) {
		f.Evidence = append(f.Evidence, pev)
	}
	hev, with, total := s.hostStat(c, "rq_timeout", "requests timed out")
	f.Evidence = append(f.Evidence, hev...)

	var why []string
	tooShort := false
	switch {
	case s.Config == nil:
		why = append(why, "Without the config dump the route timeout is unknown, so this cannot say whether it is set too low.")
	case nroutes > 0 && smallest == 0:
		why = append(why, "No route to this cluster sets a timeout (Istio's default without a VirtualService timeout is 0s, disabled), so the deadline came with the request: a gRPC client's deadline (grpc-timeout header, which Istio's routes honour) or an x-envoy-upstream-rq-timeout-ms header set by the caller.")
	case nroutes == 0:
		why = append(why, "No HTTP route in the config dump sends traffic to this cluster, so the deadline came from the request's grpc-timeout or x-envoy-upstream-rq-timeout-ms header.")
	case math.IsNaN(p99):
		why = append(why, fmt.Sprintf("The route timeout is %s; the upstream's latency histogram (upstream_rq_time) is not in the stats, so it cannot be compared with it.", smallest))
	default:
		var text string
		text, tooShort = tailVersusTimeout(p99, smallest, "route timeout")
		why = append(why, text)
	}
	if spread := hostSpread(with, total); spread != "" {
		why = append(why, spread)
	}
	why = append(why, "The proxy answers 504 with flag UT and resets the upstream request; the caller sees \"upstream request timeout\".")
	f.Explanation = strings.Join(why, " ")

	hostsCmd := s.proxyCommand("pilot-agent request GET clusters") + fmt.Sprintf(" | grep -F '%s::' | grep rq_timeout", c)
	switch {
	case tooShort:
		t := suggestTimeout(p99, smallest)
		f.Fix = Fix{
			Summary: fmt.Sprintf("Raise the timeout of the VirtualService route to %s above the upstream's tail (p99 %.0f ms), for example to %s, or make the upstream's slow requests faster.", ServiceHost(c), p99, durationText(t)),
			YAML:    virtualServiceFix(c, "    timeout: "+durationText(t)),
			Command: hostsCmd,
		}
	case s.Config != nil && smallest == 0:
		f.Fix = Fix{
			Summary: "Give the caller a deadline longer than the upstream needs (its gRPC deadline or client timeout), or make the upstream answer within it; find which hosts time out with the command.",
			Command: hostsCmd,
		}
	default:
		f.Fix = Fix{
			Summary: "Find the hosts that stall (per-host rq_timeout) and what they wait on; raise the route timeout only if those slow requests are expected.",
			Command: hostsCmd,
		}
	}
	return f
}

func perTryTimeoutFinding(s *Snapshot, c string, g signal) Finding {
	f := NewFinding(CodePerTryTimeout, ClusterSubject(c))
	f.Title = fmt.Sprintf("Attempts to %s hit the per-try timeout", ServiceHost(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "attempts cut by the per-try timeout (upstream_rq_per_try_timeout)", "access-log lines failed by upstream_per_try_timeout")
	if m, ok := s.ClusterCounter(c, "upstream_rq_retry_success"); ok && m.Value > 0 {
		f.Evidence = append(f.Evidence, m.Evidence("retries that succeeded (upstream_rq_retry_success)"))
	}
	var policy *envoyadmin.RetryPolicy
	var policyRoute envoyadmin.RouteConfig
	for _, r := range s.RoutesTo(c) {
		if r.Retry != nil && r.Retry.PerTryTimeout > 0 && (policy == nil || r.Retry.PerTryTimeout < policy.PerTryTimeout) {
			policy, policyRoute = r.Retry, r
		}
	}
	src := func(field string) string {
		return fmt.Sprintf("%s route config %s virtual host %s retry_policy.%s", FileConfigDump, policyRoute.RouteConfigName, policyRoute.VirtualHost, field)
	}
	if policy != nil {
		f.Evidence = append(f.Evidence,
			Evidence{Label: "per-try timeout of " + routeName(policyRoute), Value: millis(policy.PerTryTimeout), Unit: UnitMillis, Source: src("per_try_timeout")},
			Evidence{Label: "retries allowed", Value: float64(policy.NumRetries), Unit: UnitCount, Source: src("num_retries")})
	}
	p99, pev := upstreamP99(s, c)
	if !math.IsNaN(p99) {
		f.Evidence = append(f.Evidence, pev)
	}

	var why []string
	tooShort := false
	if policy == nil {
		why = append(why, "No route in the config dump sets a per-try timeout to this cluster, so it came with the request (x-envoy-upstream-rq-per-try-timeout-ms) or the config dump is missing.")
	} else {
		why = append(why, fmt.Sprintf("Each attempt is cut after %s and retried, up to %d retries, within the route timeout. An attempt cut by the per-try timeout is not cancelled on the upstream's side: it keeps working while the retry adds the same request again, so a slow upstream receives more load exactly when it is slow.", policy.PerTryTimeout, policy.NumRetries))
		if !math.IsNaN(p99) {
			var text string
			text, tooShort = tailVersusTimeout(p99, policy.PerTryTimeout, "per-try timeout")
			why = append(why, text)
		}
	}
	f.Explanation = strings.Join(why, " ")
	f.Fix = Fix{
		Summary: "Set the per-try timeout above the upstream's normal tail latency so that it only cuts attempts that are really stuck, and keep attempts × perTryTimeout within the route timeout.",
		Command: s.proxyLogGrep("upstream_per_try_timeout|UT"),
	}
	if policy != nil && tooShort {
		t := suggestTimeout(p99, policy.PerTryTimeout)
		f.Fix.Summary = fmt.Sprintf("Raise perTryTimeout for %s above its p99 (%.0f ms), for example to %s, and keep attempts × perTryTimeout within the route timeout.", ServiceHost(c), p99, durationText(t))
		f.Fix.YAML = virtualServiceFix(c, fmt.Sprintf("    retries:\n      attempts: %d\n      perTryTimeout: %s\n      retryOn: %s", policy.NumRetries, durationText(t), virtualServiceRetryOn(policy.RetryOn, policy.RetriableStatusCodes)))
	}
	return f
}

// virtualServiceFix renders a VirtualService for the cluster's service, "" for clusters a
// VirtualService cannot address.
func virtualServiceFix(cluster, httpRoute string) string {
	n := envoyadmin.ParseClusterName(cluster)
	if n.Host == "" || n.Direction != "outbound" {
		return ""
	}
	return VirtualServiceYAML(n.Host, httpRoute)
}

func callerGaveUpFinding(s *Snapshot, c string, dc []envoyadmin.AccessLogEntry) Finding {
	f := NewFinding(CodeDownstreamGaveUp, ClusterSubject(c))
	g := signal{logs: dc}
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = []Evidence{s.logEvidence("access-log lines with DC (caller closed first)", len(dc))}
	var waited []time.Duration
	for _, e := range dc {
		if e.Duration >= 0 {
			waited = append(waited, e.Duration)
		}
	}
	median := time.Duration(-1)
	if len(waited) > 0 {
		sort.Slice(waited, func(i, j int) bool { return waited[i] < waited[j] })
		median = waited[len(waited)/2]
		f.Evidence = append(f.Evidence, Evidence{Label: "median time before the caller gave up", Value: millis(median), Unit: UnitMillis, Source: "access.log duration of the DC lines"})
	}
	p99, pev := upstreamP99(s, c)
	if !math.IsNaN(p99) {
		f.Evidence = append(f.Evidence, pev)
	}
	waitedText := "before the answer"
	if median >= 0 {
		waitedText = fmt.Sprintf("after a median of %s, which is most likely the caller's timeout", median.Round(time.Millisecond))
	}
	if classifyCluster(c) == kindInbound {
		f.Title = "Callers of this pod close their connection before the application answers (DC)"
		f.Explanation = fmt.Sprintf("Callers gave up %s: the application behind the sidecar takes longer than the callers' timeout for these requests, so the work it does is wasted and the caller sees its own timeout, not a 5xx.", waitedText)
		f.Fix = Fix{Summary: "Make the callers' timeout longer than the application's worst-case time for these requests, or make those requests faster; the DC lines show which paths are slow.", Command: s.proxyLogGrep(" DC ")}
	} else {
		f.Title = fmt.Sprintf("The application gives up on %s before it answers (DC)", ServiceHost(c))
		f.Explanation = fmt.Sprintf("This pod's application closed its request to %s %s: its client timeout is shorter than the time the upstream needs, so the proxy cancels the upstream request and no 5xx is counted for it.", ServiceHost(c), waitedText)
		f.Fix = Fix{Summary: fmt.Sprintf("Raise the application's client timeout for %s above the upstream's tail latency, or make the upstream faster; the DC lines show which paths are slow.", ServiceHost(c)), Command: s.proxyLogGrep(" DC ")}
	}
	switch {
	case math.IsNaN(p99) || median < 0:
	case millis(median) > p99:
		f.Explanation += fmt.Sprintf(" The upstream's p99 for completed requests is %.0f ms: the requests given up on are its slow tail, longer than that.", p99)
	default:
		f.Explanation += fmt.Sprintf(" The upstream's p99 for completed requests is %.0f ms, above that timeout: the timeout cuts the upstream's ordinary tail, not only stalls.", p99)
	}
	return f
}

// callerResetFindings reports HTTP connection managers whose callers reset requests or close
// connections with requests in flight (http.<prefix>.downstream_cx_destroy_remote_active_rq,
// downstream_rq_rx_reset) above minCallerGaveUp and minCallerGaveUpShare of its requests.
func callerResetFindings(s *Snapshot) []Finding {
	last := s.latestStats()
	if last == nil {
		return nil
	}
	suffixes := []string{"_downstream_cx_destroy_remote_active_rq", "_downstream_rq_rx_reset"}
	prefixes := map[string]bool{}
	for name := range last.Stats {
		for _, suf := range suffixes {
			if p, ok := strings.CutSuffix(name, suf); ok && strings.HasPrefix(p, "http_") {
				prefixes[strings.TrimPrefix(p, "http_")] = true
			}
		}
	}
	var out []Finding
	for _, p := range sortedKeys(prefixes) {
		if p == "admin" || p == "stats" || p == "agent" {
			continue // the proxy's own admin, metrics and health listeners
		}
		var ev []Evidence
		var sum, rate float64
		var basis Measure
		for _, suf := range suffixes {
			if m, ok := s.Counter("http_" + p + suf); ok && m.Value > 0 {
				ev = append(ev, m.Evidence(strings.TrimPrefix(suf, "_")))
				sum, rate, basis = sum+m.Value, rate+m.Rate, m
			}
		}
		if sum < minCallerGaveUp {
			continue
		}
		if total, ok := s.Counter("http_" + p + "_downstream_rq_total"); ok && total.Value > 0 {
			if sum/total.Value < minCallerGaveUpShare {
				continue
			}
			ev = append(ev, Evidence{Label: "share of the listener's requests", Value: round(100*sum/total.Value, 2), Unit: UnitPercent, Source: total.Source})
		}
		f := NewFinding(CodeDownstreamGaveUp, Subject{Kind: SubjectListener, Name: "http." + p})
		f.Evidence, f.Impact = ev, rate
		f.Severity = signal{m: Measure{Value: sum, Rate: rate, Interval: basis.Interval, Span: basis.Span}, ok: true}.severity(f.Severity)
		if strings.HasPrefix(p, "inbound") {
			f.Title = "Callers of this pod reset requests or close connections before the answer"
			f.Explanation = "Clients of this pod closed their connection or reset the stream while requests were in flight: they gave up, usually because their timeout is shorter than the time the application takes for some requests."
		} else {
			f.Title = "The application resets its outbound requests before the answer"
			f.Explanation = "This pod's application closed connections or reset streams to its sidecar while requests were in flight: its client timeouts are shorter than the upstreams' answer times (or it cancels requests on purpose)."
		}
		f.Explanation += fmt.Sprintf(" These counters are %s.", basis.Basis())
		f.Fix = Fix{Summary: "Align the timeouts: the caller's must be longer than the callee's worst case; the access-log DC lines show which requests.", Command: s.proxyLogGrep(" DC ")}
		out = append(out, f)
	}
	return out
}
