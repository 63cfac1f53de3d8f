package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// RetriesExhaustedRule finds requests that failed after every retry (MESH0601) and points to the
// failure that was retried.
type RetriesExhaustedRule struct{}

// Istio's default retry policy, for routes whose VirtualService sets no retries: 2 retries on
// istioDefaultRetryOn, Envoy's retry_on as the config dump shows it, with
// istioDefaultRetriableCodes as its retriable_status_codes. Every text and fix that names the
// default derives it from these.
const (
	istioDefaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled," + envoyRetriableStatusCodes
	istioDefaultRetries = 2
)

// istioDefaultRetriableCodes are the status codes Istio's default policy retries.
var istioDefaultRetriableCodes = []uint32{503}

// envoyRetriableStatusCodes is Envoy's retry_on condition that retries the statuses listed in
// retriable_status_codes. A VirtualService does not take it: its retryOn lists the codes
// themselves ("...,503") and Istio adds the condition.
const envoyRetriableStatusCodes = "retriable-status-codes"

// istioDefaultVirtualServiceRetryOn is Istio's default policy as a VirtualService's retryOn.
var istioDefaultVirtualServiceRetryOn = virtualServiceRetryOn(istioDefaultRetryOn, istioDefaultRetriableCodes)

// istioDefaultRetryWords names the default's conditions in prose: "connect-failure,
// refused-stream, unavailable, cancelled and 503".
var istioDefaultRetryWords = andList(strings.Split(istioDefaultVirtualServiceRetryOn, ","))

// virtualServiceRetryOn translates Envoy's retry_on and retriable_status_codes into the
// retryOn of an Istio VirtualService: the retriable-status-codes condition is dropped and the
// codes it enables are appended, since Istio turns numbers in retryOn into
// retriable_status_codes and adds the condition itself. Codes without the condition were not
// retried by Envoy, so they are left out. An empty retry_on gives Istio's default.
func virtualServiceRetryOn(retryOn string, codes []uint32) string {
	if strings.TrimSpace(retryOn) == "" {
		retryOn, codes = istioDefaultRetryOn, istioDefaultRetriableCodes
	}
	var out []string
	seen := map[string]bool{}
	add := func(item string) {
		if item != "" && !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	withCodes := false
	for _, item := range strings.Split(retryOn, ",") {
		item = strings.TrimSpace(item)
		if item == envoyRetriableStatusCodes {
			withCodes = true
			continue
		}
		add(item)
	}
	if withCodes {
		for _, c := range codes {
			add(fmt.Sprint(c))
		}
	}
	return strings.Join(out, ",")
}

// isIstioDefaultRetry reports whether a route's retry policy is Istio's default.
func isIstioDefaultRetry(p *envoyadmin.RetryPolicy) bool {
	return p.NumRetries == istioDefaultRetries && p.RetryOn == istioDefaultRetryOn &&
		fmt.Sprint(p.RetriableStatusCodes) == fmt.Sprint(istioDefaultRetriableCodes)
}

// Meta describes the rule.
func (RetriesExhaustedRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "RetriesExhaustedRule",
		Description: "Requests that failed after all retries (URX), with the failure that was retried.",
		Codes:       []Code{CodeRetriesExhausted},
		AnyOf:       []Input{InputStats, InputAccessLog},
	}
}

// retryCause is one failure a retry could have been for, how the evidence shows it, and the
// finding that explains it.
type retryCause struct {
	flag, stat, what, code string
}

var retryCauses = []retryCause{
	{"UF", "upstream_cx_connect_fail", "connection failures", "MESH0201-0204"},
	{"UC", "upstream_cx_destroy_remote_with_active_rq", "connections the upstream closed under requests (a keep-alive race)", "MESH0401"},
	{"UT", "upstream_rq_per_try_timeout", "per-try timeouts", "MESH0102"},
	{"UR", "upstream_rq_rx_reset", "resets by the upstream", "MESH0402"},
	{"UH", "upstream_cx_none_healthy", "no healthy host", "MESH0501"},
	{"UO", "upstream_rq_pending_overflow", "circuit-breaker overflows", "MESH0301"},
}

// Check runs the rule.
func (RetriesExhaustedRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.appClusters() {
		g := s.clusterSignal(c, "upstream_rq_retry_limit_exceeded", func(e *envoyadmin.AccessLogEntry) bool { return HasFlag(e, "URX") })
		if g.fires() {
			out = append(out, retriesFinding(s, c, g))
		} else if f, ok := retriesFutile(s, c); ok {
			out = append(out, f)
		}
	}
	return out
}

// retriesFutile reports retries that fail again when the stats hold no retry limit count
// (Envoy writes upstream_rq_retry_limit_exceeded only where a route has a retry policy, and
// excerpts leave it out): fewer retries succeeded than were made.
func retriesFutile(s *Snapshot, c string) (Finding, bool) {
	retry, ok := s.ClusterCounter(c, "upstream_rq_retry")
	if !ok || retry.Value <= 0 {
		return Finding{}, false
	}
	success, successOK := s.ClusterCounter(c, "upstream_rq_retry_success")
	if successOK && success.Value >= retry.Value {
		return Finding{}, false // every retry recovered its request
	}
	if _, limitOK := s.ClusterCounter(c, "upstream_rq_retry_limit_exceeded"); limitOK && !successOK {
		return Finding{}, false
	}
	g := signal{m: retry, ok: true}
	g.small, g.total = s.smallCount(c, retry, true)
	g.excerpt = !retry.Interval && !s.hasClusterTotal(c)
	if !g.counted() {
		return Finding{}, false
	}
	f := NewFinding(CodeRetriesExhausted, ClusterSubject(c))
	f.Title = fmt.Sprintf("Retries to %s do not succeed", ServiceHost(c))
	if successOK && success.Value > 0 {
		f.Title = fmt.Sprintf("Retries to %s hide failures: %.0f of %.0f retried attempts failed again", ServiceHost(c), retry.Value-success.Value, retry.Value)
	}
	f.Severity, f.Impact = g.severity(SeverityWarning), g.impact(s)
	f.Evidence = g.evidence(s, "retried attempts (upstream_rq_retry)", "")
	if successOK {
		f.Evidence = append(f.Evidence, success.Evidence("retries that succeeded (upstream_rq_retry_success)"))
	} else {
		f.Evidence = append(f.Evidence, Evidence{Label: "retries that succeeded (upstream_rq_retry_success)", Text: "not in the stats", Source: retry.Source})
	}
	f.Explanation = fmt.Sprintf("The proxy retried attempts to %s and retries did not recover them all: the upstream fails attempts, and what retries recover still costs the caller the failed attempt's time and the upstream the load. The failure the attempts hit is the cause to fix; the upstream's own 5xx answers (upstream_rq_5xx) are the usual one.", ServiceHost(c))
	f.Fix = Fix{Summary: "Find why the upstream fails the attempts (its log, its 5xx), and keep retries to failures that a second try can fix (connect-failure, refused-stream, reset).", Command: s.proxyCommand("curl -s localhost:15000/stats") + " | grep -F -- " + shellQuote(c) + " | grep -E 'upstream_rq_5|retry'"}
	return f, true
}

// retryPolicies describes the distinct retry policies of the routes to a cluster.
func retryPolicies(s *Snapshot, c string) (ev []Evidence, hasPolicy bool) {
	seen := map[string]bool{}
	for _, r := range s.RoutesTo(c) {
		text := "none: the proxy does not retry on this route"
		if p := r.Retry; p != nil {
			hasPolicy = true
			text = fmt.Sprintf("%d retries on %s", p.NumRetries, orDefault(p.RetryOn, "(unset)"))
			if len(p.RetriableStatusCodes) > 0 {
				codes := make([]string, len(p.RetriableStatusCodes))
				for i, sc := range p.RetriableStatusCodes {
					codes[i] = fmt.Sprint(sc)
				}
				text += " (status " + strings.Join(codes, ",") + ")"
			}
			if p.PerTryTimeout > 0 {
				text += ", per try " + p.PerTryTimeout.String()
			}
			if isIstioDefaultRetry(p) {
				text += " (Istio's default)"
			}
		}
		if seen[text] || len(seen) == maxListedRoutes {
			continue
		}
		seen[text] = true
		ev = append(ev, Evidence{Label: "retry policy of " + routeName(r), Text: text,
			Source: fmt.Sprintf("%s route config %s virtual host %s retry_policy", FileConfigDump, r.RouteConfigName, r.VirtualHost)})
	}
	return ev, hasPolicy
}

func retriesFinding(s *Snapshot, c string, g signal) Finding {
	host := ServiceHost(c)
	f := NewFinding(CodeRetriesExhausted, ClusterSubject(c))
	f.Title = fmt.Sprintf("Requests to %s failed after all retries (URX)", host)
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "requests that failed after the last retry (upstream_rq_retry_limit_exceeded)", "access-log lines with URX")
	for _, stat := range []string{"upstream_rq_retry", "upstream_rq_retry_success"} {
		if m, ok := s.ClusterCounter(c, stat); ok && m.Value > 0 {
			f.Evidence = append(f.Evidence, m.Evidence(stat))
		}
	}
	pev, hasPolicy := retryPolicies(s, c)
	f.Evidence = append(f.Evidence, pev...)

	// What the retried failures were: the flags URX lines carry with it first, then counters.
	byFlag := map[string]int{}
	via503 := 0
	for i := range g.logs {
		for _, fl := range g.logs[i].Flags {
			if fl != "URX" {
				byFlag[fl]++
			}
		}
		if len(g.logs[i].Flags) == 1 && detailsBase(&g.logs[i]) == "via_upstream" {
			via503++
		}
	}
	var causes []string
	for _, rc := range retryCauses {
		if n := byFlag[rc.flag]; n > 0 {
			f.Evidence = append(f.Evidence, s.logEvidence(fmt.Sprintf("URX lines that also carry %s", rc.flag), n))
			if rc.flag == "UF" && s.expiredIdentity() && anyTLSConnectFailure(g.logs) {
				// The TLS connect failures are folded into the expired certificate's finding.
				rc.what, rc.code = "TLS handshake failures: this proxy's certificate has expired", "MESH0902"
			}
			causes = append(causes, fmt.Sprintf("%s (%s, see %s)", rc.what, rc.flag, rc.code))
		}
	}
	if via503 > 0 {
		f.Evidence = append(f.Evidence, s.logEvidence("URX lines whose last answer came from the upstream (via_upstream)", via503))
		causes = append(causes, "the upstream's own error answers (see MESH1801)")
	}
	if len(causes) == 0 {
		type counted struct {
			rc retryCause
			m  Measure
		}
		var cs []counted
		for _, rc := range retryCauses {
			if m, ok := s.ClusterCounter(c, rc.stat); ok && m.Value > 0 {
				cs = append(cs, counted{rc, m})
			}
		}
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].m.Value > cs[j].m.Value })
		for _, x := range cs {
			f.Evidence = append(f.Evidence, x.m.Evidence(fmt.Sprintf("%s (%s)", x.rc.what, x.rc.stat)))
			causes = append(causes, fmt.Sprintf("%s (%s, see %s)", x.rc.what, x.rc.stat, x.rc.code))
		}
	}

	why := []string{fmt.Sprintf("Every attempt of these requests to %s failed, and the proxy gave up when the retries ran out (URX). The retries are not the problem: the failure they retried is, and more retries only add load to a failing upstream.", host)}
	if !hasPolicy && s.Config != nil {
		why = append(why, "No route to this cluster has a retry policy, so these are TCP connections whose connect attempts ran out (max_connect_attempts) or the retries came from a request header.")
	}
	if len(causes) > 0 {
		why = append(why, "The evidence points to "+strings.Join(causes, ", then ")+".")
	} else {
		why = append(why, "Nothing in the evidence says which failure was retried: the URX lines carry no other flag and the cause counters are absent or zero.")
	}
	f.Explanation = strings.Join(why, " ")
	f.Fix = Fix{
		Summary: "Fix the failure being retried (the findings named above for the same upstream); the log lines with URX show it with each request.",
		Command: s.proxyLogGrep("URX"),
	}
	return f
}

// anyTLSConnectFailure reports whether a log line failed its connect on a TLS error.
func anyTLSConnectFailure(lines []envoyadmin.AccessLogEntry) bool {
	for i := range lines {
		if cause, _ := connectFailureCause(&lines[i]); cause == causeTLS && isConnectFailure(&lines[i]) && !isWrongVersion(&lines[i]) {
			return true
		}
	}
	return false
}
