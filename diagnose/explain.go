package diagnose

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// explainLooksFor says what Explain looks for, for its error when it found none of it.
const explainLooksFor = "it looks for Envoy's local replies ('no healthy upstream', 'upstream request timeout', 'RBAC: access denied', " +
	"'upstream connect error or disconnect/reset before headers. reset reason: ...'), response flags ('UF', 'UH,URX', 'UpstreamConnectionFailure'), " +
	"response-code details ('upstream_reset_before_response_started{...}'), transport failure reasons ('TLS_error:...', 'delayed connect error: 111'), " +
	"HTTP status lines and Envoy's headers (curl -v), gRPC errors, access-log lines in any wrapping, and the proxy's own log lines; " +
	"see kubectl mesh explain --help"

// detailFlag maps %RESPONSE_CODE_DETAILS% values to the response flag whose knowledge applies.
var detailFlag = map[string]string{
	"upstream_response_timeout": "UT", "response_timeout": "UT",
	"route_not_found": "NR", "filter_chain_not_found": "NR", "cluster_not_found": "NC",
	"no_healthy_upstream": "UH", "stream_idle_timeout": "SI",
	"request_overall_timeout": "DT", "max_duration_timeout": "DT", "upstream_max_stream_duration_reached": "UMSDR",
	"downstream_remote_disconnect": "DC", "overload": "OM", "drop_overload": "DO",
	"request_rate_limited": "RL", "local_rate_limited": "RL", "rate_limiter_error": "RLSE",
	"ext_authz_denied": "UAEX", "ext_authz_error": "UAEX", "fault_filter_abort": "FI",
}

// detailPrefixKnowledge explains families of details by prefix.
var detailPrefixKnowledge = []struct {
	prefix string
	k      knowledge
}{
	{"rbac_access_denied", knowledge{code: CodeAuthzDenied, status: "403",
		meaning: "An Istio AuthorizationPolicy denied the request (the RBAC filter). matched_policy[none] means ALLOW policies select this workload and none of their rules matched; a named policy is the DENY policy that matched.",
		fix: func(c explainCtx) Fix {
			return Fix{Summary: "Compare the caller's identity, path and method with the workload's AuthorizationPolicies.", Command: fmt.Sprintf("kubectl get authorizationpolicies -n %s -o yaml\nistioctl x authz check <pod> -n %s", c.ns, c.ns)}
		}}},
	{"jwt_authn_access_denied", knowledge{code: CodeAuthzDenied, status: "401",
		meaning: "The JWT filter refused the request: a RequestAuthentication (or Envoy's jwt_authn) requires a valid token and the request carried none, an expired one, or one from an issuer it does not trust.",
		fix: func(c explainCtx) Fix {
			return Fix{Summary: "Send a valid token from a trusted issuer, or check the RequestAuthentication's issuer and jwksUri and the AuthorizationPolicy that requires a principal.", Command: fmt.Sprintf("kubectl get requestauthentications,authorizationpolicies -n %s -o yaml", c.ns)}
		}}},
	{"upstream_per_try", knowledge{code: CodePerTryTimeout, status: "504",
		meaning: "An attempt hit the per-try timeout (retries.perTryTimeout) or the per-try idle timeout.",
		causes:  "A perTryTimeout below the upstream's slow answers: every attempt is cut, and each retry starts over.",
		fix: func(c explainCtx) Fix {
			return Fix{Summary: "Set perTryTimeout above the upstream's p99, and the route timeout above attempts × perTryTimeout.", YAML: VirtualServiceYAML(c.hostOr(), "    timeout: 30s\n    retries:\n      attempts: 2\n      perTryTimeout: 10s    # above the upstream's p99\n")}
		}}},
}

// badRequestPrefixes start the details of requests the proxy could not parse (DPE).
var badRequestPrefixes = []string{"http1.", "http2.", "http3.", "codec_error", "http/1.1_protocol_error", "missing_host_header", "invalid_"}

// Explain explains text a user pasted: anything from a response flag to a page of logs. It
// finds signals wherever they stand (explain_scan.go): access-log lines in any wrapping, the
// proxy's own log lines, Envoy's local replies and 503 body, flags, details, transport failure
// reasons, status lines and headers. Words it does not know are skipped; it fails only when it
// found nothing it knows. Access-log lines also go through the rules, as a snapshot holding only
// them. now stands for the capture time.
func Explain(input string, now time.Time) (*Report, error) {
	in := strings.TrimSpace(input)
	if in == "" {
		return nil, errors.New("nothing to explain: " + explainLooksFor)
	}
	r := &Report{Target: "input: " + clip(oneLine(in), 120), Basis: "the pasted input only: this explains that request, not the pod's traffic"}
	log, err := envoyadmin.ParseLog(strings.NewReader(in))
	if err != nil {
		return nil, err
	}
	for _, e := range log.Entries {
		r.Findings = mergeFindings(r.Findings, explainEntry(e))
	}
	single := !strings.Contains(in, "\n")
	src := func(line int) string {
		if single || line == 0 {
			return "input"
		}
		return fmt.Sprintf("input line %d", line)
	}
	// The ambient data path's lines are ztunnel's and istio-cni's, not Envoy's: they are read
	// by their own grammar, and the Envoy readings below leave them alone.
	ztEvents, ztLines := ztunnelLines(in)
	r.Findings = mergeFindings(r.Findings, ztunnelFindings(ztEvents, src))
	var proxy []envoyadmin.ProxyLogEvent
	for _, e := range log.Proxy {
		if !ztLines[e.Line] {
			proxy = append(proxy, e)
		}
	}
	r.Findings = mergeFindings(r.Findings, proxyLogFindings(proxy, "(from the pasted input)", src))
	scan := newTextScan(clusterName.FindString(in), src)
	for _, l := range log.Other {
		if !ztLines[l.N] {
			scan.line(l.N, l.Text)
		}
	}
	scan.finish()
	r.Findings = mergeFindings(r.Findings, scan.found)
	if len(r.Findings) == 0 {
		r.Unexplained = scan.unexplained()
	}
	if len(log.Entries) == 0 && len(log.Proxy) == 0 && log.ProxyLines == 0 && !scan.known && len(ztLines) == 0 {
		return nil, fmt.Errorf("cannot explain %q: found nothing Envoy or Istio writes; %s", clip(oneLine(in), 80), explainLooksFor)
	}
	for i := range r.Findings {
		r.Findings[i].Rule = "Explain"
	}
	if len(log.Entries) > 0 {
		// The rules see the lines as a tiny access log; what they find beyond the table's codes
		// (a pattern across lines) is added.
		rep := Diagnose(&Snapshot{AccessLog: log.Entries, Now: now}, Rules())
		explained := map[string]bool{}
		for _, f := range r.Findings {
			explained[f.Code] = true
		}
		for _, f := range rep.Findings {
			if !explained[f.Code] {
				r.Findings = append(r.Findings, f)
			}
		}
		r.Warnings = append(r.Warnings, rep.Warnings...)
	}
	retriesAfterCause(r.Findings)
	r.Findings = specificOverGeneric(r.Findings)
	r.finiteNumbers()
	Rank(r.Findings)
	return r, nil
}

// specificConnect are the findings that say why a connection failed; with one of them, the
// finding of a connect failure of unknown cause (a 503 body without its transport failure
// reason, pasted beside a line that has it) says nothing more.
var specificConnect = map[string]bool{
	string(CodeConnectRefused): true, string(CodeConnectTimeout): true, string(CodeConnectTLS): true,
	string(CodeTLSHandshakeErrors): true, string(CodeTLSModeMismatch): true, string(CodeCertExpired): true,
}

func specificOverGeneric(fs []Finding) []Finding {
	specific := false
	for _, f := range fs {
		specific = specific || specificConnect[f.Code]
	}
	if !specific {
		return fs
	}
	out := fs[:0]
	for _, f := range fs {
		if f.Code != string(CodeConnectFailure) {
			out = append(out, f)
		}
	}
	return out
}

// retriesAfterCause ranks "retries exhausted" below the failure the retries hit, when the same
// text shows that failure: it is the cause to fix, the exhausted retries its consequence.
func retriesAfterCause(fs []Finding) {
	cause := false
	for _, f := range fs {
		cause = cause || (f.Code != string(CodeRetriesExhausted) && f.Severity == SeverityError)
	}
	for i := range fs {
		if cause && fs[i].Code == string(CodeRetriesExhausted) && fs[i].Severity == SeverityError {
			fs[i].Severity = SeverityWarning
		}
	}
}

// resetFinding explains a reset reason, refined by the transport failure when there is one.
func resetFinding(reason, tf string, c explainCtx, ev []Evidence) Finding {
	k := resetKnowledge[reason]
	flag := flagKnowledge[resetFlag[reason]]
	code, explanation, fix := k.code, k.meaning+" "+flag.causes, flag.fix(c)
	if t, ok := transportKnowledge(tf, c); ok {
		code, explanation = t.code, k.meaning+" "+t.meaning+" "+t.causes
		if t.fix != nil {
			fix = t.fix(c)
		}
	}
	f := NewFinding(code, explainSubject(c))
	f.Evidence = ev
	f.Explanation = strings.TrimSpace(explanation)
	f.Fix = fix
	return f
}

// flagFinding explains one response flag, refined by the reset reason and transport failure of
// the same request.
func flagFinding(flag, reason, tf string, c explainCtx, ev []Evidence) Finding {
	k := flagKnowledge[flag]
	if (flag == "UF" || flag == "UC" || flag == "UR" || flag == "LR" || flag == "UO") && (reason != "" || tf != "") {
		if _, known := resetKnowledge[reason]; known || tf != "" {
			if !known {
				reason = "remote connection failure"
			}
			f := resetFinding(reason, tf, c, ev)
			if resetFlag[reason] != flag {
				f.Explanation = k.meaning + " " + f.Explanation
			}
			return f
		}
	}
	f := NewFinding(k.code, explainSubject(c))
	f.Evidence = ev
	f.Explanation = strings.TrimSpace(k.meaning + " " + k.causes)
	if flag == "FI" {
		// The fault answered this request instead of the upstream: it is why it failed.
		f.Severity = SeverityWarning
	}
	if k.status != "" {
		f.Explanation += " Envoy usually answers " + k.status + " with it."
	}
	f.Fix = k.fix(c)
	return f
}

// explainDetails explains a %RESPONSE_CODE_DETAILS% value; code is the response code when known.
func explainDetails(details string, code int, c explainCtx, ev []Evidence) ([]Finding, error) {
	base, reason, tf := envoyadmin.ParseResponseCodeDetails(details)
	switch {
	case base == "direct_response":
		if code != 0 && code < 500 {
			return nil, nil
		}
		f := NewFinding(CodeNoCluster, explainSubject(c))
		f.Evidence = ev
		f.Title = "The route answers with a fixed error (direct_response) instead of an upstream"
		f.Explanation = "The route that matched has no upstream: its configuration answers with a fixed response. A gateway controller programs a 500 direct response for a route it could not resolve (Envoy Gateway for an HTTPRoute whose backendRef does not exist, is not allowed by a ReferenceGrant or has no endpoints), so the route's status says why."
		f.Fix = Fix{Summary: "Read the route's status conditions (ResolvedRefs, Accepted) and fix the backend they name.", Command: "kubectl get httproutes -A -o yaml | grep -B2 -A8 'conditions:'"}
		return []Finding{f}, nil
	case base == "via_upstream":
		if code != 0 && code < 500 {
			return nil, nil
		}
		return []Finding{appErrorExplained(c, ev)}, nil
	case strings.HasPrefix(base, "upstream_reset_"):
		if _, ok := resetKnowledge[reason]; !ok {
			return nil, fmt.Errorf("unknown reset reason %q in %q: %s", reason, details, explainLooksFor)
		}
		f := resetFinding(reason, tf, c, ev)
		if base == "upstream_reset_after_response_started" {
			f.Explanation = "The response had started when the stream broke, so the caller got part of it. " + f.Explanation
		}
		return []Finding{f}, nil
	case detailFlag[base] != "":
		return []Finding{flagFinding(detailFlag[base], "", "", c, ev)}, nil
	}
	for _, p := range detailPrefixKnowledge {
		if strings.HasPrefix(base, p.prefix) {
			f := NewFinding(p.k.code, explainSubject(c))
			f.Evidence, f.Explanation, f.Fix = ev, strings.TrimSpace(p.k.meaning+" "+p.k.causes), p.k.fix(c)
			return []Finding{f}, nil
		}
	}
	for _, p := range badRequestPrefixes {
		if strings.HasPrefix(base, p) {
			return []Finding{flagFinding("DPE", "", "", c, ev)}, nil
		}
	}
	return nil, fmt.Errorf("unknown response-code detail %q: %s", details, explainLooksFor)
}

// explainEntry explains one access-log line from its flags, details and transport failure.
func explainEntry(e envoyadmin.AccessLogEntry) []Finding {
	c := newExplainCtx(e.UpstreamCluster, e.UpstreamHost)
	ev := entryEvidence(e)
	_, reason, tf := envoyadmin.ParseResponseCodeDetails(e.Details)
	if e.TransportFailure != "" {
		tf = e.TransportFailure
	}
	var out []Finding
	for _, fl := range e.Flags {
		if _, ok := flagKnowledge[fl]; ok {
			f := flagFinding(fl, reason, tf, c, ev)
			if fl == "UT" && e.Code == 200 {
				f.Explanation += " The status 200 is a gRPC call's: the timeout shows in its grpc-status (DEADLINE_EXCEEDED), not the HTTP status."
			}
			out = mergeFindings(out, []Finding{f})
		}
	}
	if len(out) > 0 || e.Code == 0 {
		return out
	}
	if g := e.GRPCStatus; g != "" && g != "0" && !strings.EqualFold(g, "OK") && detailsBase(&e) == "via_upstream" {
		f := appErrorExplained(c, ev)
		f.Evidence = append(f.Evidence, Evidence{Label: "gRPC status", Text: g, Source: ev[0].Source})
		f.Explanation = "The upstream answered the call with gRPC status " + g + " (HTTP 200 with details via_upstream): the application returned the error, the mesh passed it on. " + f.Explanation
		return []Finding{f}
	}
	if e.Details != "" {
		fs, err := explainDetails(e.Details, e.Code, c, ev)
		if err == nil {
			return fs
		}
	}
	if e.Code >= 500 && e.UpstreamHost != "" {
		return []Finding{appErrorExplained(c, ev)}
	}
	return nil
}

func appErrorExplained(c explainCtx, ev []Evidence) Finding {
	f := NewFinding(CodeApplicationErrors, explainSubject(c))
	f.Evidence = ev
	f.Explanation = "The upstream application produced this response and the mesh passed it on: no response flag, and details via_upstream (or an upstream host that answered). Retries, timeouts and circuit breakers do not fix it; the application's log says why it failed."
	// An inbound cluster's application is the one behind the proxy that logged the line.
	cmd := "kubectl logs -n <namespace> <pod> -c <app-container> --since=15m    # the pod whose proxy logged the line"
	if c.host != "" && !strings.HasPrefix(envoyadmin.ParseClusterName(c.cluster).Direction, "inbound") {
		cmd = fmt.Sprintf("kubectl logs -n %s svc/%s --since=15m", c.ns, c.svc)
		if c.addr != "" {
			cmd += "\n" + podByIPCommand([]string{c.addr}) + "    # the pod that answered"
		}
	}
	f.Fix = Fix{Summary: "Read the application's log around this request, not the mesh's.", Command: cmd}
	return f
}

func entryEvidence(e envoyadmin.AccessLogEntry) []Evidence {
	src := "input"
	if e.Line > 0 {
		src = fmt.Sprintf("input line %d", e.Line)
	}
	ev := []Evidence{{Label: "response code", Value: float64(e.Code), Source: src}}
	add := func(label, text string) {
		if text != "" && text != "-" {
			ev = append(ev, Evidence{Label: label, Text: text, Source: src})
		}
	}
	add("response flags", strings.Join(e.Flags, ","))
	add("response-code details", e.Details)
	add("transport failure reason", e.TransportFailure)
	add("request", strings.TrimSpace(e.Method+" "+e.Path))
	add("upstream cluster", e.UpstreamCluster)
	add("upstream host", e.UpstreamHost)
	if e.Duration >= 0 {
		ev = append(ev, Evidence{Label: "duration", Value: millis(e.Duration), Unit: UnitMillis, Source: src})
	}
	return ev
}

func explainSubject(c explainCtx) Subject {
	if c.cluster != "" {
		return ClusterSubject(c.cluster)
	}
	return Subject{Kind: SubjectProxy, Name: "(from the pasted input)"}
}

// mergeFindings appends findings whose code and subject are not there yet.
func mergeFindings(have, more []Finding) []Finding {
	for _, f := range more {
		dup := false
		for _, h := range have {
			dup = dup || (h.Code == f.Code && h.Subject == f.Subject)
		}
		if !dup {
			have = append(have, f)
		}
	}
	return have
}

// explainCodes lists the catalog codes Explain can report (and ProxyLogRule, which runs the
// same scanner over a log's lines), in a fixed order.
func explainCodes() []Code {
	seen := map[Code]bool{}
	var out []Code
	add := func(c Code) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, k := range sortedKeys(flagKnowledge) {
		add(flagKnowledge[k].code)
	}
	for _, k := range sortedKeys(resetKnowledge) {
		add(resetKnowledge[k].code)
	}
	for _, p := range detailPrefixKnowledge {
		add(p.k.code)
	}
	for _, c := range []Code{CodeConnectRefused, CodeConnectTimeout, CodeConnectTLS, CodeTLSModeMismatch, CodeTLSHandshakeErrors, CodeCertExpired, CodeApplicationErrors} {
		add(c) // from transport failures and via_upstream
	}
	for _, c := range []Code{CodeNoCluster, CodeAuthzDenied, CodeHighUpstreamLatency} {
		add(c) // from direct_response, a bare 401 or 403 from Envoy, a load tester's slowest answers
	}
	for _, k := range sortedKeys(ztunnelKnowledge) {
		add(ztunnelKnowledge[k].code) // ztunnel's and istio-cni's lines
	}
	for _, kind := range proxyLogOrder {
		add(proxyLogKnowledge[kind].code) // the proxy's own log lines
	}
	return out
}
