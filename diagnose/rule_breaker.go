package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// CircuitBreakerRule finds requests rejected by a cluster's circuit breakers: the pending queue
// or the request limit (MESH0301), the connection limit (MESH0302), the retry limit (MESH0303),
// and breakers open at the moment of capture (MESH0304).
type CircuitBreakerRule struct{}

// Meta describes the rule.
func (CircuitBreakerRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "CircuitBreakerRule",
		Description: "Requests rejected by circuit breakers (UO): pending requests, connections, requests or retries over the DestinationRule's connectionPool limits.",
		Codes:       []Code{CodePendingOverflow, CodeConnectionOverflow, CodeRetryOverflow, CodeBreakerOpen},
		AnyOf:       []Input{InputStats, InputAccessLog},
	}
}

// breakerLimit is one circuit-breaker threshold: Envoy's field, Istio's DestinationRule field,
// and the stats that show it overflowing or open.
type breakerLimit struct {
	envoy    string // max_pending_requests
	istio    string // connectionPool.http.http1MaxPendingRequests
	yamlPath string // "http:\n        http1MaxPendingRequests"
	open     string // circuit_breakers_default_rq_pending_open
	def      uint32 // Envoy's default when unset
	value    func(cb envoyadmin.CircuitBreaker) *uint32
	one      string // what it counts: "connection"
	many     string // "connections"
}

// count says "1 connection" or "8 connections".
func (l breakerLimit) count(v uint32) string {
	if v == 1 {
		return "1 " + l.one
	}
	return fmt.Sprintf("%d %s", v, l.many)
}

var (
	limitPending = breakerLimit{"max_pending_requests", "connectionPool.http.http1MaxPendingRequests", "http:\n        http1MaxPendingRequests", "circuit_breakers_default_rq_pending_open", defaultBreakerLimit,
		func(cb envoyadmin.CircuitBreaker) *uint32 { return cb.MaxPendingRequests }, "pending request", "pending requests"}
	limitRequests = breakerLimit{"max_requests", "connectionPool.http.http2MaxRequests", "http:\n        http2MaxRequests", "circuit_breakers_default_rq_open", defaultBreakerLimit,
		func(cb envoyadmin.CircuitBreaker) *uint32 { return cb.MaxRequests }, "request", "requests"}
	limitConnections = breakerLimit{"max_connections", "connectionPool.tcp.maxConnections", "tcp:\n        maxConnections", "circuit_breakers_default_cx_open", defaultBreakerLimit,
		func(cb envoyadmin.CircuitBreaker) *uint32 { return cb.MaxConnections }, "connection", "connections"}
	limitRetries = breakerLimit{"max_retries", "connectionPool.http.maxRetries", "http:\n        maxRetries", "circuit_breakers_default_rq_retry_open", defaultMaxRetries,
		func(cb envoyadmin.CircuitBreaker) *uint32 { return cb.MaxRetries }, "retry", "retries"}
)

// breakers are a cluster's DEFAULT-priority thresholds and where they were read: all of them
// from the configuration (known), or some inferred from the stats (inferred, by Envoy field).
type breakers struct {
	cb       envoyadmin.CircuitBreaker
	source   string
	known    bool
	inferred map[string]inferredLimit
}

func clusterBreakers(s *Snapshot, c string) breakers {
	if cc := s.ClusterConfig(c); cc != nil {
		return breakers{cb: defaultPriority(cc.CircuitBreakers), source: FileConfigDump + " cluster " + c + " circuit_breakers (DEFAULT priority)", known: true}
	}
	if u := s.Upstream(c); u != nil && len(u.CircuitBreakers) > 0 {
		return breakers{cb: defaultPriority(u.CircuitBreakers), source: orDefault(s.UpstreamsFile, "clusters") + " " + c + "::default_priority", known: true}
	}
	return inferBreakers(s, c)
}

// limit returns the effective value of a threshold and whether it limits anything.
func (b breakers) limit(l breakerLimit) (v uint32, limited bool) {
	if p := l.value(b.cb); p != nil {
		return *p, *p != istioUnlimited
	}
	return l.def, true
}

// evidence describes a threshold; none when it is unknown.
func (b breakers) evidence(l breakerLimit) []Evidence {
	if !b.has(l) {
		return nil
	}
	e := Evidence{Label: fmt.Sprintf("%s (%s)", l.envoy, l.istio), Unit: UnitCount, Source: b.source + " " + l.envoy}
	v, limited := b.limit(l)
	if il, ok := b.inferred[l.envoy]; ok {
		e.Label += ", " + b.atLeast(l) + "inferred from " + il.how
		e.Source = il.source
	}
	switch {
	case l.value(b.cb) == nil:
		e.Label += ", not set: Envoy's default"
		e.Value = float64(v)
	case !limited:
		e.Text, e.Unit = "unlimited (4294967295, Istio's default)", ""
	default:
		e.Value = float64(v)
	}
	return []Evidence{e}
}

// suggestLimit proposes a higher threshold: double, and at least 10.
func suggestLimit(v uint32) uint64 { return max(2*uint64(v), 10) }

// Check runs the rule.
func (CircuitBreakerRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.appClusters() {
		b := clusterBreakers(s, c)
		if pending := s.clusterSignal(c, "upstream_rq_pending_overflow", func(e *envoyadmin.AccessLogEntry) bool { return HasFlag(e, "UO") }); pending.fires() {
			out = append(out, pendingOverflowFinding(s, c, b, pending))
		}
		// With a pending overflow on an HTTP/1.1 limit, MESH0301 already names the connection
		// limit that fills the queue and its fix raises it: no separate MESH0302.
		pending := s.clusterSignal(c, "upstream_rq_pending_overflow", func(e *envoyadmin.AccessLogEntry) bool { return HasFlag(e, "UO") })
		_, climited := b.limit(limitConnections)
		toldInPending := pending.fires() && b.has(limitConnections) && climited && pendingLimit(s, c, b).envoy == limitPending.envoy
		if g := s.clusterSignal(c, "upstream_cx_overflow", nil); g.fires() && !toldInPending {
			out = append(out, limitFinding(s, c, b, g, CodeConnectionOverflow, limitConnections))
		}
		if g := s.clusterSignal(c, "upstream_rq_retry_overflow", nil); g.fires() {
			out = append(out, limitFinding(s, c, b, g, CodeRetryOverflow, limitRetries))
		}
		if f, ok := breakerOpenFinding(s, c, b); ok {
			out = append(out, f)
		}
	}
	return out
}

// gaugeOpen reports whether a breaker's open gauge reads 1 now.
func gaugeOpen(s *Snapshot, c string, l breakerLimit) (Evidence, bool) {
	v, src, ok := s.ClusterGauge(c, l.open)
	if !ok || v < 1 {
		return Evidence{}, false
	}
	return Evidence{Label: fmt.Sprintf("%s reached at capture, breaker open (%s)", l.envoy, dottedSuffix(l.open)), Value: v, Unit: UnitCount, Source: src}, true
}

// pendingLimit decides which limit rejected requests counted as upstream_rq_pending_overflow:
// Envoy counts both a full pending queue (max_pending_requests) and reaching max_requests there.
func pendingLimit(s *Snapshot, c string, b breakers) breakerLimit {
	_, pendingOpen := gaugeOpen(s, c, limitPending)
	_, rqOpen := gaugeOpen(s, c, limitRequests)
	switch {
	case rqOpen && !pendingOpen:
		return limitRequests
	case pendingOpen && !rqOpen:
		return limitPending
	}
	pv, pl := b.limit(limitPending)
	rv, rl := b.limit(limitRequests)
	pl, rl = pl && b.has(limitPending), rl && b.has(limitRequests)
	if rl && (!pl || rv < pv) {
		return limitRequests
	}
	if cc := s.ClusterConfig(c); cc != nil && cc.HTTP2 && rl {
		return limitRequests
	}
	return limitPending
}

func pendingOverflowFinding(s *Snapshot, c string, b breakers, g signal) Finding {
	l := pendingLimit(s, c, b)
	f := NewFinding(CodePendingOverflow, ClusterSubject(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "requests rejected by the circuit breaker (upstream_rq_pending_overflow)", "access-log lines with UO")
	if m, ok := s.ClusterCounter(c, "upstream_rq_pending_total"); ok && m.Value > 0 {
		f.Evidence = append(f.Evidence, m.Evidence("requests that waited for a connection (upstream_rq_pending_total)"))
	}
	if v, src, ok := s.ClusterGauge(c, "upstream_rq_pending_active"); ok {
		f.Evidence = append(f.Evidence, Evidence{Label: "requests waiting for a connection at capture", Value: v, Unit: UnitCount, Source: src})
	}
	f.Evidence = append(f.Evidence, b.evidence(limitPending)...)
	f.Evidence = append(f.Evidence, b.evidence(limitRequests)...)
	f.Evidence = append(f.Evidence, b.evidence(limitConnections)...)
	host := ServiceHost(c)
	v, limited := b.limit(l)
	cv, climited := b.limit(limitConnections)
	climited = climited && b.has(limitConnections)
	var why string
	switch {
	case !b.has(l):
		f.Title = fmt.Sprintf("Requests to %s are rejected: circuit breaker full (UO)", host)
		why = fmt.Sprintf("The proxy rejected requests to %s at once with 503 UO because a circuit breaker was full: the pending-request queue (%s) or the concurrent-request limit (%s). Without the config dump or /clusters the limits are unknown.", host, limitPending.istio, limitRequests.istio)
	case !limited:
		f.Title = fmt.Sprintf("Requests to %s were rejected by a circuit breaker (UO)", host)
		why = fmt.Sprintf("The proxy rejected requests to %s with 503 UO, but its current limits are unlimited: the limit was lowered when they happened and has been raised since, or they came from another priority.", host)
	case l.envoy == limitRequests.envoy:
		f.Title = fmt.Sprintf("Requests to %s are rejected: %s (%d) reached (UO)", host, l.envoy, v)
		why = fmt.Sprintf("The proxy allows at most %s in flight to %s at once (%s, from %s). Past it, new requests are rejected at once with 503 UO; Envoy counts them as upstream_rq_pending_overflow.", plural(int(v), "request"), host, l.envoy, l.istio)
	default:
		f.Title = fmt.Sprintf("Requests to %s are rejected: pending queue (%d) full (UO)", host, v)
		why = fmt.Sprintf("The proxy lets at most %s wait for a connection to %s (%s, from %s). When more wait, it rejects the next ones at once with 503 UO instead of queueing them.", plural(int(v), "request"), host, l.envoy, l.istio)
		if climited {
			why += fmt.Sprintf(" Over HTTP/1.1 each connection carries one request at a time and at most %s (%s), so the queue fills whenever requests arrive faster than those connections complete them.", connectionsAllowed(cv), limitConnections.istio)
		}
	}
	f.Explanation = why + b.inferredNote() + " The limit protects the upstream: raise it only if the upstream can take the extra concurrency."
	f.Fix = Fix{
		Summary: fmt.Sprintf("Raise %s in the DestinationRule for %s if the upstream has spare capacity; otherwise scale the upstream out (the limit applies per calling pod).", l.istio, host),
		Command: s.proxyCommand("pilot-agent request GET stats") + " | grep -F -- " + shellQuote(c) + " | grep -E 'pending|circuit_breakers'",
	}
	if !b.known {
		f.Fix.Command += "\n" + s.proxyCommand("pilot-agent request GET clusters") + fmt.Sprintf(" | grep -F '%s::default_priority'", c)
	}
	if b.has(l) && limited {
		policy := fmt.Sprintf("    connectionPool:\n      %s: %d", l.yamlPath, suggestLimit(v))
		if l.envoy == limitPending.envoy && climited {
			policy = fmt.Sprintf("    connectionPool:\n      tcp:\n        maxConnections: %d\n      http:\n        http1MaxPendingRequests: %d", suggestLimit(cv), suggestLimit(v))
			f.Fix.Summary = fmt.Sprintf("Raise http1MaxPendingRequests (now %d) and tcp.maxConnections (now %d), which drains the queue, in the DestinationRule for %s if the upstream has spare capacity; otherwise scale the upstream out (the limits apply per calling pod).", v, cv, host)
		}
		f.Fix.YAML = destinationRuleFix(c, policy)
	}
	return f
}

// limitFinding reports overflows of the connection or retry limit.
func limitFinding(s *Snapshot, c string, b breakers, g signal, code Code, l breakerLimit) Finding {
	f := NewFinding(code, ClusterSubject(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	host := ServiceHost(c)
	v, limited := b.limit(l)
	limitText := "its limit"
	if b.has(l) && limited {
		limitText = "the limit of " + b.atLeast(l) + l.count(v)
	}
	if l.envoy == limitConnections.envoy {
		f.Title = fmt.Sprintf("Connections to %s reach %s", host, strings.Replace(limitText, "its limit", "the connection limit", 1))
		f.Evidence = g.evidence(s, "times the connection limit was reached (upstream_cx_overflow)", "")
		f.Explanation = fmt.Sprintf("The proxy wanted a new connection to %s and %s (%s) was reached. HTTP requests then wait for a busy connection to free up, adding latency and filling the pending queue; TCP connections are refused with UO.", host, limitText, l.istio)
	} else {
		f.Title = fmt.Sprintf("Retries to %s are refused: %s reached", host, strings.Replace(limitText, "its limit", "the retry limit", 1))
		f.Evidence = g.evidence(s, "retries not made because the retry limit was reached (upstream_rq_retry_overflow)", "")
		if m, ok := s.ClusterCounter(c, "upstream_rq_retry"); ok && m.Value > 0 {
			f.Evidence = append(f.Evidence, m.Evidence("retries made (upstream_rq_retry)"))
		}
		f.Explanation = fmt.Sprintf("Requests to %s failed and should have been retried, but %s in flight at once (%s) was reached, so the failure went back to the caller unretried. Many concurrent retries mean many failures: the retried failures are the real problem.", host, limitText, l.istio)
	}
	f.Evidence = append(f.Evidence, b.evidence(l)...)
	f.Fix = Fix{
		Summary: fmt.Sprintf("Raise %s in the DestinationRule for %s if the upstream can take it, or scale the upstream out.", l.istio, host),
		Command: s.proxyCommand("pilot-agent request GET stats") + " | grep -F -- " + shellQuote(c) + " | grep -E 'overflow|circuit_breakers'",
	}
	if l.envoy == limitRetries.envoy {
		f.Fix.Summary = fmt.Sprintf("Fix the failures that are being retried (see the other findings for %s); raise %s only if bursts of retries are expected.", host, l.istio)
	}
	f.Explanation += b.inferredNote()
	if b.has(l) && limited {
		f.Fix.YAML = destinationRuleFix(c, fmt.Sprintf("    connectionPool:\n      %s: %d", l.yamlPath, suggestLimit(v)))
	}
	return f
}

// breakerOpenFinding reports the breakers whose open gauge reads 1 at capture.
func breakerOpenFinding(s *Snapshot, c string, b breakers) (Finding, bool) {
	var ev []Evidence
	var open []breakerLimit
	rejecting := false
	for _, l := range []breakerLimit{limitPending, limitRequests, limitConnections, limitRetries} {
		if e, ok := gaugeOpen(s, c, l); ok {
			ev = append(ev, e)
			ev = append(ev, b.evidence(l)...)
			open = append(open, l)
			rejecting = rejecting || l.envoy == limitPending.envoy || l.envoy == limitRequests.envoy
		}
	}
	if len(open) == 0 {
		return Finding{}, false
	}
	f := NewFinding(CodeBreakerOpen, ClusterSubject(c))
	host := ServiceHost(c)
	names := make([]string, len(open))
	fields := make([]string, len(open))
	for i, l := range open {
		names[i], fields[i] = l.envoy, l.istio
	}
	f.Title = fmt.Sprintf("Circuit breaker of %s open now: %s", host, strings.Join(names, ", "))
	f.Evidence = ev
	if m, ok := s.ClusterCounter(c, "upstream_rq_pending_overflow"); ok {
		f.Impact = m.Rate
	}
	atLimit := strings.Join(names, " and ") + " was at its limit"
	if len(names) > 1 {
		atLimit = strings.Join(names, " and ") + " were at their limits"
	}
	if rejecting {
		f.Explanation = fmt.Sprintf("At the moment of capture %s for %s, so new requests are rejected with 503 UO right now, not only in the past.", atLimit, host)
	} else {
		f.Severity = SeverityWarning
		f.Explanation = fmt.Sprintf("At the moment of capture %s for %s: new requests wait for a connection (max_connections) or failures go unretried (max_retries), but requests are not rejected by it alone.", atLimit, host)
	}
	f.Fix = Fix{
		Summary: fmt.Sprintf("Raise %s in the DestinationRule for %s if the upstream has spare capacity, or scale the upstream out.", strings.Join(fields, " and "), host),
		Command: s.proxyCommand("pilot-agent request GET stats") + " | grep -F -- " + shellQuote(c) + " | grep circuit_breakers",
	}
	var parts []string
	for _, l := range open {
		if v, limited := b.limit(l); b.has(l) && limited {
			parts = append(parts, fmt.Sprintf("      %s: %d", l.yamlPath, suggestLimit(v)))
		}
	}
	if len(parts) > 0 {
		f.Fix.YAML = destinationRuleFix(c, "    connectionPool:\n"+mergeYAMLPaths(parts))
	}
	return f, true
}

// mergeYAMLPaths joins "      http:\n        x: 1" fragments so that each parent key appears once.
func mergeYAMLPaths(parts []string) string {
	var order []string
	children := map[string][]string{}
	for _, p := range parts {
		parent, child, _ := strings.Cut(p, "\n")
		if _, seen := children[parent]; !seen {
			order = append(order, parent)
		}
		children[parent] = append(children[parent], child)
	}
	var b strings.Builder
	for i, parent := range order {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(parent + "\n" + strings.Join(children[parent], "\n"))
	}
	return b.String()
}

// connectionsAllowed says "1 connection is allowed" or "8 connections are allowed".
func connectionsAllowed(n uint32) string {
	if n == 1 {
		return "1 connection is allowed"
	}
	return fmt.Sprintf("%d connections are allowed", n)
}
