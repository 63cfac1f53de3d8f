package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// UpstreamResetRule finds requests lost to resets: the upstream closing a pooled connection under
// a request, usually a keep-alive race (MESH0401), the upstream resetting streams (MESH0402), and
// the proxy resetting them for reasons its timeouts do not explain (MESH0403).
type UpstreamResetRule struct{}

// Meta describes the rule.
func (UpstreamResetRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "UpstreamResetRule",
		Description: "Requests lost to connection terminations (UC, keep-alive race) and stream resets by the upstream (UR) or the proxy (LR).",
		Codes:       []Code{CodeKeepAliveRace, CodeRemoteReset, CodeLocalReset},
		AnyOf:       []Input{InputStats, InputAccessLog},
	}
}

// Check runs the rule.
func (UpstreamResetRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.appClusters() {
		// Plaintext refused by sidecars that require mTLS fails the same way, on nearly every
		// request; the MTLSRule tells it (MESH0802).
		if g := s.clusterSignal(c, "upstream_cx_destroy_remote_with_active_rq", isConnectionTermination); g.fires() && !s.tlsModeMismatch(c) {
			out = append(out, keepAliveRaceFinding(s, c, g))
		}
		if g := s.clusterSignal(c, "upstream_rq_rx_reset", isRemoteReset); g.fires() {
			out = append(out, remoteResetFinding(s, c, g))
		}
		if f, ok := localResetFinding(s, c); ok {
			out = append(out, f)
		}
	}
	return out
}

func resetReason(e *envoyadmin.AccessLogEntry) string {
	_, reason, _ := envoyadmin.ParseResponseCodeDetails(e.Details)
	return reason
}

func isConnectionTermination(e *envoyadmin.AccessLogEntry) bool {
	return HasFlag(e, "UC") || resetReason(e) == "connection termination"
}

func isRemoteReset(e *envoyadmin.AccessLogEntry) bool {
	r := resetReason(e)
	return HasFlag(e, "UR") || r == "remote reset" || r == "remote refused stream reset"
}

func isLocalReset(e *envoyadmin.AccessLogEntry) bool {
	return HasFlag(e, "LR") && !HasFlag(e, "UT")
}

// keepAliveIdleTimeout is the pool idle timeout the keep-alive fixes suggest, in why-slow and
// explain alike: below Node.js's default keep-alive timeout of 5s. An application with a shorter
// one (gunicorn's default is 2s) needs a value below its own.
const keepAliveIdleTimeout = 4 * time.Second

// keepAliveIdleAdvice says how to pick the idle timeout, for fix summaries.
var keepAliveIdleAdvice = fmt.Sprintf("below the application's keep-alive timeout (%s for Node.js's default 5s; for gunicorn's default 2s use 1s)", durationText(keepAliveIdleTimeout))

// keepAliveIdleYAML is the idle timeout line of the keep-alive fixes, indented for a
// DestinationRule's or a Sidecar's connectionPool.http.
func keepAliveIdleYAML(indent string) string {
	return indent + "idleTimeout: " + durationText(keepAliveIdleTimeout) + "   # below the application's keep-alive timeout (Node.js 5s); for gunicorn's 2s use 1s"
}

// keepAliveTrafficPolicy is the DestinationRule trafficPolicy body of the keep-alive fix.
func keepAliveTrafficPolicy() string {
	return "    connectionPool:\n      http:\n" + keepAliveIdleYAML("        ")
}

func keepAliveRaceFinding(s *Snapshot, c string, g signal) Finding {
	f := NewFinding(CodeKeepAliveRace, ClusterSubject(c))
	host := ServiceHost(c)
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "connections the upstream closed with requests in flight (upstream_cx_destroy_remote_with_active_rq)",
		"access-log lines with UC / upstream_reset_before_response_started{connection_termination}")
	idle, idleSrc, idleLabel := defaultIdleTimeout, "not set: Envoy's and Istio's default", "proxy's pool idle timeout (not set: default)"
	if cc := s.ClusterConfig(c); cc != nil && cc.IdleTimeout > 0 {
		idle, idleSrc, idleLabel = cc.IdleTimeout, FileConfigDump+" cluster "+c+" common_http_protocol_options.idle_timeout", "proxy's pool idle timeout"
	}
	if s.Config != nil {
		f.Evidence = append(f.Evidence, Evidence{Label: idleLabel, Value: millis(idle), Unit: UnitMillis, Source: idleSrc})
	}
	inbound := classifyCluster(c) == kindInbound
	who := "The upstream " + host
	if inbound {
		who = "The application behind this sidecar"
		f.Title = "The application closes pooled connections under requests (UC): keep-alive race"
	} else {
		f.Title = fmt.Sprintf("%s closes pooled connections under requests (UC): keep-alive race", host)
	}
	f.Explanation = fmt.Sprintf("%s closed connections that had a request in flight, and the request failed with 503 UC (\"upstream_reset_before_response_started{connection_termination}\"). "+
		"The usual cause is a keep-alive race: the application closes idle keep-alive connections after its own timeout (Node.js 5s, gunicorn 2s, nginx 75s), while the proxy keeps pooled connections for up to %s; "+
		"a request the proxy sends just as the application closes the connection is lost. Istio's default retries (on %s) do not retry it. "+
		"The proxy's idle timeout must be shorter than the application's keep-alive timeout. Other causes of the same counter: the upstream crashed or was OOM-killed, or closes connections after a number of requests.",
		who, durationText(idle), istioDefaultRetryWords)
	f.Explanation += plaintextRaceNote(s, c)
	if inbound {
		f.Explanation += restartsNote(s)
		ns, _ := s.podRef()
		f.Fix = Fix{
			Summary: "Set the sidecar's inbound pool idle timeout " + keepAliveIdleAdvice + ", with a Sidecar's inboundConnectionPool (Istio 1.21+) or the DestinationRule of the service (Istio applies its connectionPool to inbound too); or raise the application's keep-alive timeout above the proxy's.",
			YAML: fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: inbound-idle-timeout\n  namespace: %s\nspec:\n  workloadSelector:\n    labels:\n%s\n  inboundConnectionPool:\n    http:\n%s",
				ns, podSelector(s), keepAliveIdleYAML("      ")),
		}
		return f
	}
	f.Fix = Fix{
		Summary: fmt.Sprintf("Set connectionPool.http.idleTimeout for %s %s, or raise the application's keep-alive timeout above the proxy's %s.", host, keepAliveIdleAdvice, durationText(idle)),
		YAML:    destinationRuleFix(c, keepAliveTrafficPolicy()),
		Command: s.proxyLogGrep(" UC "),
	}
	return f
}

// restartsNote names the pod's application containers that restarted, an alternative cause of
// connections closed under requests.
func restartsNote(s *Snapshot) string {
	if s.Pod == nil {
		return ""
	}
	var parts []string
	for _, cs := range s.Pod.Status.ContainerStatuses {
		if cs.Name == "istio-proxy" || cs.RestartCount == 0 {
			continue
		}
		p := fmt.Sprintf("%s restarted %d times", cs.Name, cs.RestartCount)
		if t := cs.LastTerminationState.Terminated; t != nil && t.Reason != "" {
			p += " (last: " + t.Reason + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return " The pod's containers have not restarted, so a crash is unlikely."
	}
	return " But " + strings.Join(parts, ", ") + ": connections closed by a crashing application look the same, so check that first."
}

// podSelector is the pod's app label as a workloadSelector, or a placeholder.
func podSelector(s *Snapshot) string {
	if s.Pod != nil {
		for _, k := range []string{"app", "app.kubernetes.io/name"} {
			if v := s.Pod.Labels[k]; v != "" {
				return fmt.Sprintf("      %s: %s", k, v)
			}
		}
	}
	return "      app: <app label of the pod>"
}

func remoteResetFinding(s *Snapshot, c string, g signal) Finding {
	f := NewFinding(CodeRemoteReset, ClusterSubject(c))
	host := ServiceHost(c)
	f.Title = fmt.Sprintf("The upstream %s resets requests (UR)", host)
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	f.Evidence = g.evidence(s, "requests reset by the upstream (upstream_rq_rx_reset)", "access-log lines with UR / remote_reset")
	refused := 0
	for i := range g.logs {
		if resetReason(&g.logs[i]) == "remote refused stream reset" {
			refused++
		}
	}
	if refused > 0 {
		f.Evidence = append(f.Evidence, s.logEvidence("of which refused streams (remote_refused_stream_reset)", refused))
	}
	http2 := false
	if cc := s.ClusterConfig(c); cc != nil {
		http2 = cc.HTTP2
		proto := "HTTP/1.1"
		if http2 {
			proto = "HTTP/2"
		}
		f.Evidence = append(f.Evidence, Evidence{Label: "protocol to the upstream", Text: proto, Source: FileConfigDump + " cluster " + c + " http2_protocol_options"})
	}
	why := fmt.Sprintf("The upstream %s reset requests after the proxy sent them (a RST_STREAM or a reset of the connection), so the caller got a 503 UR.", host)
	switch {
	case refused > 0:
		why += " Refused streams mean the server would not take more streams: it reached its maximum of concurrent streams per connection, or it is shutting down (GOAWAY). Istio retries refused streams by default."
	case http2:
		why += " Over HTTP/2 (gRPC) a server resets streams when it drains or restarts (GOAWAY with streams in flight), when it enforces a maximum connection age or concurrent streams, or when its handler fails or is cancelled."
	default:
		why += " Servers reset requests when they shut down with requests in flight, when the request breaks a limit of theirs (header or body size), or when their handler fails."
	}
	why += " If the resets happen at rollouts, the upstream's pods stop before their endpoints are removed and without draining."
	f.Explanation = why
	f.Fix = Fix{
		Summary: fmt.Sprintf("Make %s drain before it stops: a preStop delay so its endpoints are removed first, and graceful shutdown within terminationGracePeriodSeconds (for gRPC, a MaxConnectionAgeGrace); if resets happen outside rollouts, raise the server's concurrent-stream limits. The YAML is a fragment of the upstream's pod template.", host),
		YAML:    "spec:\n  template:\n    spec:\n      terminationGracePeriodSeconds: 30\n      containers:\n      - name: <upstream container>\n        lifecycle:\n          preStop:\n            exec:\n              command: [\"sleep\", \"5\"]",
		Command: s.proxyLogGrep(" UR |remote_reset|refused_stream"),
	}
	return f
}

// localResetFinding reports local resets that the proxy's timeouts do not explain: a timeout
// resets the upstream request too (upstream_rq_tx_reset), and MESH0101/0102 report those.
func localResetFinding(s *Snapshot, c string) (Finding, bool) {
	tx, txOK := s.ClusterCounter(c, "upstream_rq_tx_reset")
	var timeouts Measure
	var timeoutEv []Evidence
	for _, stat := range []string{"upstream_rq_timeout", "upstream_rq_per_try_timeout"} {
		if m, ok := s.ClusterCounter(c, stat); ok && m.Value > 0 {
			timeouts.Value += m.Value
			timeouts.Rate += m.Rate
			timeoutEv = append(timeoutEv, m.Evidence("of which explained by timeouts ("+stat+")"))
		}
	}
	g := signal{m: tx, ok: txOK, logs: s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == c && isLocalReset(e) })}
	if txOK {
		g.m.Value = max(tx.Value-timeouts.Value, 0)
		g.m.Rate = max(tx.Rate-timeouts.Rate, 0)
	}
	if !g.fires() {
		return Finding{}, false
	}
	f := NewFinding(CodeLocalReset, ClusterSubject(c))
	host := ServiceHost(c)
	f.Title = fmt.Sprintf("The proxy resets requests to %s (LR)", host)
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	if txOK && tx.Value > 0 {
		f.Evidence = append(f.Evidence, tx.Evidence("requests the proxy reset (upstream_rq_tx_reset)"))
		f.Evidence = append(f.Evidence, timeoutEv...)
		f.Evidence = append(f.Evidence, Evidence{Label: "resets not explained by timeouts " + tx.Basis(), Value: g.m.Value, Unit: UnitCount, Source: "upstream_rq_tx_reset minus upstream_rq_timeout and upstream_rq_per_try_timeout"})
	}
	if len(g.logs) > 0 {
		f.Evidence = append(f.Evidence, s.logEvidence("access-log lines with LR and no UT", len(g.logs)))
	}
	dc := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == c && isCallerGaveUp(e) })
	why := fmt.Sprintf("The proxy itself reset requests to %s, beyond the ones its timeouts reset (those are reported as timeouts, not here).", host)
	if len(dc) > 0 {
		f.Evidence = append(f.Evidence, s.logEvidence("access-log lines with DC for the same upstream", len(dc)))
		why += " Callers closed their connection for some of these requests (DC), and the proxy then resets the upstream request: the caller's timeout is shorter than the upstream's answer time."
	} else {
		why += " The proxy resets an upstream request when the caller cancels it (DC), when the overload manager sheds load, or when a stream idle timeout or max stream duration ends it."
	}
	f.Explanation = why
	f.Fix = Fix{
		Summary: "Find what ended those requests from the proxy's log lines (their flags and durations): align the caller's timeout if callers cancel, raise the stream idle timeout for long streams if they end at a fixed duration.",
		Command: s.proxyLogGrep(" LR | DC "),
	}
	return f, true
}
