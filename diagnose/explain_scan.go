package diagnose

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// This file finds what explain knows wherever it stands in pasted text, instead of parsing a
// grammar: the bodies of Envoy's local replies, the 503 reset body, response flags and
// response-code details, transport failure reasons, HTTP status lines and Envoy's headers,
// gRPC client errors. Words it does not know are skipped.

// localReply is the body of a reply Envoy (or one of its filters) sends itself, and the flag or
// response-code detail whose knowledge explains it. Bodies come from Envoy's router, connection
// manager and HTTP filters (rbac, local_ratelimit, fault, jwt_authn, buffer, overload manager).
type localReply struct {
	body    string // lower case, as it stands in the reply
	flag    string // the response flag it goes with, or ""
	details string // else the response-code detail it goes with
	unless  string // a longer body that contains this one and means something else
}

var localReplies = []localReply{
	{body: "no healthy upstream", flag: "UH"},
	{body: "upstream request timeout", flag: "UT"},
	{body: "upstream max stream duration reached", flag: "UMSDR"},
	{body: "rbac: access denied", details: "rbac_access_denied_matched_policy[none]"},
	{body: "local_rate_limited", flag: "RL"},
	{body: "fault filter abort", flag: "FI"},
	{body: "envoy overloaded", flag: "OM"},
	{body: "stream timeout", flag: "SI", unless: "upstream request timeout"},
	{body: "request timeout", flag: "DT", unless: "upstream request timeout"},
	{body: "jwt is missing", details: "jwt_authn_access_denied"},
	{body: "jwt verification fails", details: "jwt_authn_access_denied"},
	{body: "jwt is expired", details: "jwt_authn_access_denied"},
	{body: "jwt issuer is not configured", details: "jwt_authn_access_denied"},
	{body: "jwks remote fetch is failed", details: "jwt_authn_access_denied"},
	{body: "jwt is not in the form of header.payload.signature", details: "jwt_authn_access_denied"},
	{body: "request payload too large", flag: "DPE"},
	{body: "payload too large", flag: "DPE", unless: "request payload too large"},
	{body: "request header fields too large", flag: "DPE"},
	{body: "maintenance mode", flag: "UO"},
	{body: "unconditional drop overload", flag: "UDO"},
	{body: "drop overload", flag: "DO", unless: "unconditional drop overload"},
	{body: "downstream duration timeout", flag: "DT"},
	{body: "request header timeout", flag: "DT"},
	{body: "reached concurrency limit", flag: "UO"},
	{body: "dynamic forward proxy pending request overflow", flag: "UO"},
	{body: "dns resolution failure", flag: "DF"},
	{body: "jwks doesn't have key to match kid or alg from jwt", details: "jwt_authn_access_denied"},
	{body: "audiences in jwt are not allowed", details: "jwt_authn_access_denied"},
	{body: "user authentication failed.", details: "jwt_authn_access_denied"},
	{body: "client authentication failed.", details: "jwt_authn_access_denied"},
	{body: "client is forbidden.", details: "ext_authz_denied"},
	{body: "oauth flow failed.", details: "jwt_authn_access_denied"},
	{body: "denied by ext_authz", details: "ext_authz_denied"},
	{body: "ext_authz filter rejected the request", details: "ext_authz_denied"},
	// Consul's troubleshoot proxy says UH in its own words.
	{body: "no healthy endpoints for cluster", flag: "UH"},
	// The proxy's own debug lines (component "router", "rbac") say the same of one request.
	{body: "] upstream timeout", flag: "UT"},
	{body: "] upstream per try timeout", details: "upstream_per_try_timeout"},
	{body: "enforced denied", details: "rbac_access_denied_matched_policy[none]"},
}

// routerReset finds the router's debug line of a reset: "upstream reset: reset reason:
// connection termination" (older releases write no colon after "reason").
var routerReset = lazyregexp.New(`(?i)upstream reset: reset reason:? ([a-z ]+[a-z])`)

var (
	// statusLine finds an HTTP status line (curl -v, wget, an HTTP client's log) or HTTP/2's
	// :status pseudo-header.
	statusLine = lazyregexp.New(`(?:\bHTTP/[0-9.]+\s+|:status:?\s*)([1-5][0-9][0-9])\b`)
	// headerLine finds "name: value" as curl -v prints it ("< server: envoy").
	headerLine = lazyregexp.New(`^[<>]?\s*([A-Za-z][A-Za-z0-9-]*):\s*(.*?)\s*$`)
	// flagsField finds response flags named as such: response_flags=UF, "response_flags":"UF,URX",
	// response_flags="UO" in Istio's metric labels.
	flagsField = lazyregexp.New(`(?i)response_?flags?\\?"?\s*[:=]\s*\\?"?([A-Za-z,]+)`)
	// longFlag finds a flag in %RESPONSE_FLAGS_LONG% spelling.
	longFlag = lazyregexp.New(`\b(FailedLocalHealthCheck|NoHealthyUpstream|UpstreamRequestTimeout|UpstreamRemoteReset|UpstreamConnectionFailure|UpstreamConnectionTermination|UpstreamOverflow|NoRouteFound|DelayInjected|FaultInjected|UnauthorizedExternalService|RateLimitServiceError|DownstreamConnectionTermination|UpstreamRetryLimitExceeded|StreamIdleTimeout|InvalidEnvoyRequestHeaders|DownstreamProtocolError|UpstreamMaxStreamDurationReached|NoFilterConfigFound|DurationTimeout|UpstreamProtocolError|NoClusterFound|OverloadManagerTerminated|DnsResolutionFailed|DropOverload|DownstreamRemoteReset|UnconditionalDropOverload)\b`)
	// detailsWord finds words that may be response-code details: lower case with '_' or '.',
	// and their {reason,transport failure} or [policy] suffix.
	detailsWord = lazyregexp.New(`[a-z][a-z0-9]*(?:[._][a-z0-9]+)+(?:\{[^}\s"']*\}|\[[^\s"']*\])?`)
	// transportFailure finds an upstream transport failure reason on its own.
	transportFailure = lazyregexp.New(`(?i)(?:TLS[_ ]error:[^"'\\,}\n]*|delayed[_ ]connect[_ ]error:[_ ]?\d+|\b[A-Z_:]*(?:WRONG_VERSION_NUMBER|CERTIFICATE_VERIFY_FAILED|CERTIFICATE_REQUIRED)\b)`)
	// clusterName finds an Istio cluster name, for the fixes to name the service.
	clusterName = lazyregexp.New(`\b(?:outbound|inbound)\|\d+\|[A-Za-z0-9._-]*\|[A-Za-z0-9._-]+`)
	// statusField finds a status in JSON an application or client logged ("status":504).
	statusField = lazyregexp.New(`(?i)"(?:status|status_?code|response_?code|http_?status)"\s*:\s*"?([1-5][0-9][0-9])\b`)
	// grpcMaxRequests is proxyless gRPC's circuit breaker (grpc-go's xDS cluster_impl).
	grpcMaxRequests = lazyregexp.New(`(?i)max requests \d+ exceeded on service`)
	// connReset finds a client's "connection reset by peer" on a mesh call: curl's exit code 56
	// (kubectl exec prints "command terminated with exit code 56") or its message.
	connReset = lazyregexp.New(`(?i)(?:curl: \(56\)|exit code 56\b|recv failure: connection reset by peer)`)
	// grpcCode finds a gRPC client error's code ("rpc error: code = Unavailable desc = ...").
	grpcCode = lazyregexp.New(`code\s*=\s*([A-Za-z]+)`)
)

// textScan collects what explain recognised in pasted lines that are not access-log lines.
type textScan struct {
	ctx     explainCtx
	src     func(line int) string // names a line in evidence
	found   []Finding
	known   bool // something was recognised, even if it shows nothing wrong
	status  int
	statusN int
	// fromEnvoy: a server header names Envoy; answered: x-envoy-upstream-service-time says the
	// upstream answered (Envoy sets it only on responses that came from the upstream).
	fromEnvoy, answered bool
	headerN             int
	headerText          string
	// A load tester's summary: responses by status, and the slowest time (seconds) it shows
	// with the line it came from.
	statusCounts map[int]int
	// failed names a failure the input shows without its cause ("gRPC status 14").
	failed      string
	slowest     float64
	slowestN    int
	slowestText string
}

// newTextScan starts a scan; cluster is an upstream cluster the text names, "" when none.
func newTextScan(cluster string, src func(line int) string) *textScan {
	return &textScan{ctx: newExplainCtx(cluster, ""), src: src}
}

func (t *textScan) source(n int) string { return t.src(n) }

// add keeps a finding, quoting the line it came from.
func (t *textScan) add(f Finding) {
	t.known = true
	t.found = mergeFindings(t.found, []Finding{f})
}

// ev is the evidence of one signal: what it is and the text of the line.
func (t *textScan) ev(n int, label, signal, line string) []Evidence {
	out := []Evidence{{Label: label, Text: clip(oneLine(signal), 200), Source: t.source(n)}}
	if l := clip(oneLine(line), 300); l != "" && l != out[0].Text {
		out = append(out, Evidence{Label: "pasted text", Text: l, Source: t.source(n)})
	}
	return out
}

// line scans one line, and its percent-decoded form when it has one (grpc-message headers
// carry the reply body percent-encoded).
func (t *textScan) line(n int, s string) {
	if strings.Contains(s, "%20") {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
	}
	low := strings.ToLower(s)
	if m := routerReset.FindStringSubmatch(s); m != nil {
		if _, ok := resetKnowledge[strings.ToLower(m[1])]; ok {
			t.add(resetFinding(strings.ToLower(m[1]), "", t.ctx, t.ev(n, "the router's reset", m[0], s)))
		}
	}
	resetBody := false
	if re, ok := envoyadmin.ParseResetError(s); ok {
		resetBody = true
		t.reset(n, s, re)
	}
	for _, lr := range localReplies {
		if !strings.Contains(low, lr.body) || (lr.unless != "" && strings.Contains(low, lr.unless)) {
			continue
		}
		ev := t.ev(n, "Envoy's local reply", lr.body, s)
		if lr.flag != "" {
			t.add(flagFinding(lr.flag, "", "", t.ctx, ev))
		} else if fs, err := explainDetails(lr.details, 0, t.ctx, ev); err == nil {
			for _, f := range fs {
				t.add(f)
			}
		}
	}
	t.details(n, s)
	t.flags(n, s)
	if !resetBody {
		for _, tf := range transportFailure.FindAllString(s, 2) {
			if k, ok := transportKnowledge(tf, t.ctx); ok {
				f := NewFinding(k.code, explainSubject(t.ctx))
				f.Evidence = t.ev(n, "transport failure reason", tf, s)
				f.Explanation = strings.TrimSpace(k.meaning + " " + k.causes)
				f.Fix = k.fix(t.ctx)
				t.add(f)
				break
			}
		}
	}
	t.httpSignals(n, s)
	t.loadTester(n, s)
	if m := grpcMaxRequests.FindString(s); m != "" {
		f := flagFinding("UO", "", "", t.ctx, t.ev(n, "proxyless gRPC's circuit breaker", m, s))
		f.Explanation = "The gRPC client's own xDS circuit breaker (proxyless gRPC) refused the call: the cluster's maxRequests (a DestinationRule's http2MaxRequests, 1024 by default) concurrent calls were already in flight. " + f.Explanation
		t.add(f)
	}
	if m := connReset.FindString(s); m != "" {
		f := NewFinding(CodeTLSModeMismatch, explainSubject(t.ctx))
		f.Severity = SeverityWarning
		f.Title = "The server side reset the connection: mTLS or an L4 policy refused it"
		f.Evidence = t.ev(n, "connection reset", m, s)
		f.Explanation = "The connection was reset by the other side before any HTTP answer (curl's exit code 56). In a mesh that is how a listener refuses a connection it will not serve: a sidecar or ztunnel in STRICT mTLS reset a plaintext client (one without a sidecar), or an L4 AuthorizationPolicy denied the caller (ztunnel and sidecar TCP policies reset instead of answering 403)."
		f.Fix = Fix{Summary: "Check whether the caller is in the mesh and the server's PeerAuthentication mode, then the AuthorizationPolicies that select the server.", Command: "kubectl get peerauthentications,authorizationpolicies -A"}
		t.add(f)
	}
	if m := grpcCode.FindStringSubmatch(s); m != nil && strings.Contains(low, "rpc error") && strings.EqualFold(m[1], "DeadlineExceeded") {
		t.add(flagFinding("DR", "", "", t.ctx, t.ev(n, "gRPC client error", m[0], s)))
	}
}

// reset explains the 503 reset body.
func (t *textScan) reset(n int, s string, re envoyadmin.ResetError) {
	ev := []Evidence{{Label: "Envoy's 503 body", Text: clip(oneLine(s), 300), Source: t.source(n)}}
	if re.Reason != "" {
		ev = append(ev, Evidence{Label: "reset reason", Text: re.Reason, Source: t.source(n)})
	}
	if re.TransportFailure != "" {
		ev = append(ev, Evidence{Label: "transport failure reason", Text: clip(re.TransportFailure, 200), Source: t.source(n)})
	}
	if re.Retried {
		ev = append(ev, Evidence{Label: "retried", Text: "yes: this is the last attempt's failure", Source: t.source(n)})
	}
	if _, known := resetKnowledge[re.Reason]; !known {
		// No reason (Envoy before 1.16 wrote none) or one this release does not know: the
		// connection to the upstream failed or broke before it answered.
		f := flagFinding("UF", "", "", t.ctx, ev)
		f.Severity = SeverityWarning
		f.Explanation = "Envoy could not get response headers from the upstream: the connection failed or was reset before it answered. This message carries no reset reason Envoy documents (older releases leave it out), so which of the two it was is not known: the access-log line of the same request says (its response flags UF, UC or UR and its details). " + f.Explanation
		t.add(f)
		return
	}
	f := resetFinding(re.Reason, re.TransportFailure, t.ctx, ev)
	if re.Retried {
		f.Explanation += " Envoy retried the request and every attempt failed; the reason is the last attempt's."
	}
	t.add(f)
}

// details explains the response-code details on the line.
func (t *textScan) details(n int, s string) {
	for _, w := range detailsWord.FindAllString(s, -1) {
		base, _, _ := envoyadmin.ParseResponseCodeDetails(w)
		if code := t.lineStatus(s); !strings.Contains(base, "_") || base == "via_upstream" && code > 0 && code < 500 {
			continue
		}
		fs, err := explainDetails(w, t.lineStatus(s), t.ctx, t.ev(n, "response-code details", w, s))
		if err != nil {
			continue
		}
		t.known = true
		for _, f := range fs {
			t.add(f)
		}
	}
}

// lineStatus is a status code standing alone on the line ("503 UC ..."), or the last status
// line seen.
func (t *textScan) lineStatus(s string) int {
	for _, w := range strings.Fields(s) {
		if code, ok := statusWord(w); ok {
			return code
		}
	}
	return t.status
}

func statusWord(w string) (int, bool) {
	w = strings.Trim(w, `"',;()`)
	if len(w) != 3 || w[0] < '1' || w[0] > '5' {
		return 0, false
	}
	code, err := strconv.Atoi(w)
	return code, err == nil
}

// flags explains response flags: long names anywhere; short ones where they cannot be words of
// prose: named as flags (response_flags=...), after a status code ("503 UF"), or in a line of
// nothing but flags, status codes and details ("UF,URX", "503 UC upstream_reset_...").
func (t *textScan) flags(n int, s string) {
	var flags []string
	for _, m := range longFlag.FindAllString(s, -1) {
		flags = append(flags, envoyadmin.ParseResponseFlags(m)...)
	}
	for _, m := range flagsField.FindAllStringSubmatch(s, -1) {
		flags = append(flags, knownFlags(m[1])...)
	}
	words := strings.Fields(s)
	fragment := len(words) > 0
	for _, w := range words {
		w = strings.Trim(w, `"'`)
		_, isStatus := statusWord(w)
		base, _, _ := envoyadmin.ParseResponseCodeDetails(w)
		if !(w == "-" || isStatus || len(knownFlags(w)) > 0 || strings.Contains(base, "_")) {
			fragment = false
		}
	}
	for i, w := range words {
		w = strings.Trim(w, `"',;()`)
		_, prevStatus := statusWord(prev(words, i))
		if fragment || prevStatus {
			flags = append(flags, knownFlags(w)...)
		}
	}
	if len(flags) == 0 {
		return
	}
	_, reason, tf := envoyadmin.ParseResponseCodeDetails(detailsWord.FindString(s))
	seen := map[string]bool{}
	for _, fl := range flags {
		if seen[fl] {
			continue
		}
		seen[fl] = true
		k := flagKnowledge[fl]
		t.add(flagFinding(fl, reason, tf, t.ctx, t.ev(n, "response flag", fl+" ("+k.long+")", s)))
	}
}

func prev(words []string, i int) string {
	if i == 0 {
		return ""
	}
	return words[i-1]
}

// knownFlags splits a flag list ("UF,URX") and returns its flags when every one is Envoy's.
func knownFlags(w string) []string {
	fs := envoyadmin.ParseResponseFlags(strings.Trim(w, `"',;()\`))
	for _, f := range fs {
		if _, ok := flagKnowledge[f]; !ok {
			return nil
		}
	}
	return fs
}
