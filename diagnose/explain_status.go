package diagnose

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// What a text says about a request's outcome without naming its cause: HTTP status lines,
// Envoy's headers, load testers' summaries. finish draws what they show together.

var (
	// Load testers' summaries: hey's "[503]	12 responses", fortio's "Code 503 : 12 (40.0 %)",
	// vegeta's "Status Codes  [code:count]  200:195  500:5"; hey's "Slowest:	10.1 secs" and
	// "99% in 10.3 secs", fortio's "# target 99% 0.0159" (seconds).
	heyStatus     = lazyregexp.New(`^\s*\[([1-5][0-9][0-9])\]\s+(\d+)\s+responses`)
	fortioCode    = lazyregexp.New(`^\s*Code\s+([1-5][0-9][0-9])\s*:\s*(\d+)`)
	vegetaStatus  = lazyregexp.New(`Status Codes\s+\[code:count\]\s+(.+)`)
	codeCount     = lazyregexp.New(`\b([1-5][0-9][0-9]):(\d+)\b`)
	heySlowest    = lazyregexp.New(`^\s*Slowest:\s+([0-9.]+) secs`)
	heyPercentile = lazyregexp.New(`^\s*(\d+)% in ([0-9.]+) secs`)
	fortioTarget  = lazyregexp.New(`^# target (\d+)% ([0-9.]+)`)
)

// httpSignals reads status lines and Envoy's headers.
func (t *textScan) httpSignals(n int, s string) {
	if m := statusLine.FindStringSubmatch(s); m != nil {
		t.status, _ = strconv.Atoi(m[1])
		t.statusN = n
		t.known = true
	} else if m := statusField.FindStringSubmatch(s); m != nil {
		t.status, _ = strconv.Atoi(m[1])
		t.statusN, t.known = n, true
	} else if code, ok := statusWord(strings.TrimSpace(s)); ok && code >= 400 {
		// A status alone on its line (curl -w '%{http_code}').
		t.status, t.statusN, t.known = code, n, true
	}
	m := headerLine.FindStringSubmatch(s)
	if m == nil {
		return
	}
	name, value := strings.ToLower(m[1]), strings.ToLower(m[2])
	switch {
	case name == "server" && (strings.Contains(value, "envoy") || strings.Contains(value, "kuma")):
		t.fromEnvoy, t.known = true, true
		t.headerN, t.headerText = n, s
	case name == "x-envoy-upstream-service-time":
		t.answered, t.known = true, true
		t.headerN, t.headerText = n, s
	case name == "x-envoy-overloaded":
		f := flagFinding("UO", "", "", t.ctx, t.ev(n, "header", s, s))
		f.Explanation = "Envoy adds x-envoy-overloaded to the 503 it sends when a circuit breaker of the upstream's connection pool refused the request (or the cluster is in maintenance mode). " + f.Explanation
		t.add(f)
	case name == "grpc-status" || name == "grpc-message":
		// The reply's gRPC form: its message is scanned as text on this line already.
		t.known = true
		if name == "grpc-status" && value != "0" && value != "" {
			t.failed = "gRPC status " + value
		}
	case name == "x-envoy-ratelimited":
		t.add(flagFinding("RL", "", "", t.ctx, t.ev(n, "header", s, s)))
	}
}

// loadTester reads the status counts and latencies of hey, fortio and vegeta summaries.
func (t *textScan) loadTester(n int, s string) {
	count := func(code, num string) {
		c, _ := strconv.Atoi(code)
		k, _ := strconv.Atoi(num)
		if t.statusCounts == nil {
			t.statusCounts = map[int]int{}
		}
		t.statusCounts[c] += k
		t.known = true
		if t.statusN == 0 {
			t.statusN = n
		}
	}
	if m := heyStatus.FindStringSubmatch(s); m != nil {
		count(m[1], m[2])
	} else if m := fortioCode.FindStringSubmatch(s); m != nil {
		count(m[1], m[2])
	} else if m := vegetaStatus.FindStringSubmatch(s); m != nil {
		for _, p := range codeCount.FindAllStringSubmatch(m[1], -1) {
			count(p[1], p[2])
		}
	}
	var secs string
	if m := heySlowest.FindStringSubmatch(s); m != nil {
		secs = m[1]
	} else if m := heyPercentile.FindStringSubmatch(s); m != nil && m[1] == "99" {
		secs = m[2]
	} else if m := fortioTarget.FindStringSubmatch(s); m != nil && m[1] == "99" {
		secs = m[2]
	}
	if v, err := strconv.ParseFloat(secs, 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) && v > t.slowest {
		t.slowest, t.slowestN, t.slowestText, t.known = v, n, s, true
	}
}

// slowAnswer is the time from which a load tester's slowest answers are reported.
const slowAnswer = 1.0 // seconds

// finish draws what the status and headers say when nothing else on the input named a cause:
// Envoy marks the responses its upstream produced, so a 5xx with that mark is the upstream's.
func (t *textScan) finish() {
	if t.slowest >= slowAnswer {
		f := NewFinding(CodeHighUpstreamLatency, explainSubject(t.ctx))
		f.Title = fmt.Sprintf("Requests take up to %s", strconv.FormatFloat(t.slowest, 'f', -1, 64)+" s")
		f.Evidence = []Evidence{{Label: "slowest answers the load tester measured", Value: round(t.slowest*1000, 1), Unit: UnitMillis, Source: t.source(t.slowestN)},
			{Label: "pasted text", Text: clip(oneLine(t.slowestText), 200), Source: t.source(t.slowestN)}}
		f.Explanation = "The load tester measured answers of a second or more. Through a proxy that is the upstream's time plus any wait for a connection: a slow backend, or requests queued behind a circuit breaker's limits (maxParallelRequests, http1MaxPendingRequests) until the ones ahead finish."
		f.Fix = Fix{Summary: "Compare the upstream's own latency (its p99 in istio_request_duration_milliseconds or upstream_rq_time) with what the caller sees; set timeouts and limits from it."}
		t.add(f)
	}
	if t.status == 0 {
		for code := range t.statusCounts {
			if code >= 500 && (t.status == 0 || code < t.status) {
				t.status = code
			}
		}
	}
	if len(t.found) > 0 && !(len(t.found) == 1 && t.found[0].Code == string(CodeHighUpstreamLatency)) || t.status == 0 {
		return
	}
	ev := []Evidence{{Label: "HTTP status", Value: float64(t.status), Source: t.source(t.statusN)}}
	if t.headerText != "" {
		ev = append(ev, Evidence{Label: "header", Text: clip(oneLine(t.headerText), 200), Source: t.source(t.headerN)})
	}
	switch {
	case t.status >= 500 && t.answered:
		f := appErrorExplained(t.ctx, ev)
		f.Explanation = "The response carries x-envoy-upstream-service-time, which Envoy sets only on responses its upstream produced: the upstream answered " + strconv.Itoa(t.status) + " and the proxy passed it on. When that upstream is another proxy or load balancer, its own timeout or failure produced it. " + f.Explanation
		t.add(f)
	case t.status == 504 && t.fromEnvoy:
		f := flagFinding("UT", "", "", t.ctx, ev)
		f.Explanation = "Envoy answered 504 itself (no x-envoy-upstream-service-time): its 504 is the route's timeout. " + f.Explanation
		t.add(f)
	case t.status == 504:
		f := flagFinding("UT", "", "", t.ctx, ev)
		f.Severity = SeverityWarning
		f.Explanation = "A 504 is a gateway's timeout: a proxy on the way (in a mesh, usually the route's timeout in Envoy) gave up waiting for the upstream. Nothing pasted says which proxy; the access-log line of the request does. " + f.Explanation
		t.add(f)
	case (t.status == 403 || t.status == 401) && t.fromEnvoy && !t.answered:
		f := NewFinding(CodeAuthzDenied, explainSubject(t.ctx))
		f.Evidence = ev
		f.Explanation = fmt.Sprintf("Envoy answered %d itself (no x-envoy-upstream-service-time): one of its authorization filters refused the request before any upstream saw it. RBAC (an AuthorizationPolicy) answers 403 with the body \"RBAC: access denied\"; ext_authz (a CUSTOM policy) answers with its server's status and, by default, an empty body; JWT authentication answers 401.", t.status)
		f.Fix = Fix{Summary: "Check the policies that select the workload: AuthorizationPolicies (ALLOW, DENY, CUSTOM) and RequestAuthentications.", Command: "kubectl get authorizationpolicies,requestauthentications -A"}
		t.add(f)
	case t.status == 404 && t.fromEnvoy && !t.answered:
		t.add(flagFinding("NR", "", "", t.ctx, ev))
	case t.status == 429:
		t.add(flagFinding("RL", "", "", t.ctx, ev))
	case t.status == 500:
		f := appErrorExplained(t.ctx, ev)
		f.Explanation = "Envoy's own replies are 503 (no upstream, a refused or broken connection, a circuit breaker), 504 (a timeout), 404 (no route), 403 (a policy), 429 (a rate limit): a 500 comes from the application, or from a route configured to answer it. " + f.Explanation
		t.add(f)
	}
}

// unexplained says, when nothing was found, that the input still shows a failed request.
func (t *textScan) unexplained() string {
	what := t.failed
	if t.status >= 500 {
		what = "HTTP " + strconv.Itoa(t.status)
	}
	if what == "" || len(t.found) > 0 {
		return ""
	}
	return "The input shows a failed request (" + what + ") but nothing that says why: no reply body, response flag, details or log line of it. Paste the body Envoy answered with, or the access-log line of the same request (kubectl logs POD -c istio-proxy), and explain them."
}
