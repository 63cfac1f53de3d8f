package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Thresholds of the application-error rule.
const (
	// appErrorMinCount: fewer 5xx since the proxy started are noise (a deploy, one bad request).
	appErrorMinCount = 5
	// appErrorMinLogLines: fewer access-log lines with an application 5xx are noise.
	appErrorMinLogLines = 3
)

// meshFailureStats are the cluster counters of failures the mesh itself produces: when any of
// them counts, upstream_rq_5xx mixes the mesh's 503s and 504s with the application's.
var meshFailureStats = []string{
	"upstream_rq_timeout", "upstream_rq_per_try_timeout", "upstream_cx_connect_fail",
	"upstream_cx_connect_timeout", "upstream_rq_pending_overflow", "upstream_cx_overflow",
	"upstream_rq_retry_overflow", "upstream_rq_rx_reset", "upstream_rq_tx_reset",
	"upstream_cx_destroy_remote_with_active_rq", "upstream_cx_destroy_local_with_active_rq",
	"upstream_cx_none_healthy", "upstream_rq_maintenance_mode",
}

// AppErrorRule finds 5xx responses the application produced, which the mesh only passed on: so
// that nobody tunes retries and timeouts for an application bug.
type AppErrorRule struct{}

// Meta describes the rule.
func (AppErrorRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "AppErrorRule",
		Description: "Finds 5xx responses produced by the application rather than the mesh: access-log lines via_upstream without a response flag, istio_requests_total 5xx with response_flags \"-\", upstream_rq_5xx with no mesh failure counter to explain it.",
		Codes:       []Code{CodeApplicationErrors},
		AnyOf:       []Input{InputStats, InputAccessLog},
	}
}

// appErrors gathers the evidence about one application: a service, or this pod's own.
type appErrors struct {
	subject  Subject
	host     string // "" for this pod's application
	evidence []Evidence
	rate     float64
	logs     []envoyadmin.AccessLogEntry
	// retryNotes say, per cluster with retries, how many failed attempts callers did not see.
	retryNotes []string
}

// Check runs the rule.
func (AppErrorRule) Check(s *Snapshot) []Finding {
	targets := map[string]*appErrors{}
	target := func(key string, subject Subject, host string) *appErrors {
		if targets[key] == nil {
			targets[key] = &appErrors{subject: subject, host: host}
		}
		return targets[key]
	}
	clusterTarget := func(c string) *appErrors {
		if classifyCluster(c) == kindInbound {
			return target("", ClusterSubject(c), "")
		}
		return target(ServiceHost(c), ClusterSubject(c), ServiceHost(c))
	}
	// The access log: the response came from upstream and the proxy flagged nothing.
	byCluster := map[string][]envoyadmin.AccessLogEntry{}
	for _, e := range s.AccessLog {
		if isAppError(&e) {
			byCluster[e.UpstreamCluster] = append(byCluster[e.UpstreamCluster], e)
		}
	}
	for _, c := range sortedKeys(byCluster) {
		if len(byCluster[c]) < appErrorMinLogLines {
			continue
		}
		t := clusterTarget(c)
		t.logs = append(t.logs, byCluster[c]...)
		t.evidence = append(t.evidence, s.logEvidence("5xx from "+c+" with details via_upstream and no response flag", len(byCluster[c])))
		t.rate = max(t.rate, s.logRate(len(byCluster[c])))
	}
	// Istio's metrics: 5xx without a response flag.
	for _, k := range istioErrorKeys(s) {
		reporter, service := k[0], k[1]
		m, _ := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
			return l["reporter"] == reporter && l["destination_service"] == service && isAppErrorSeries(l)
		})
		if !significant(m, appErrorMinCount) {
			continue
		}
		var t *appErrors
		if reporter == "destination" {
			t = target("", Subject{Kind: SubjectPod, Name: proxyName(s)}, "")
		} else {
			t = target(service, Subject{Kind: SubjectCluster, Name: service}, service)
		}
		t.evidence = append(t.evidence, m.Evidence(fmt.Sprintf("5xx with response_flags \"-\" (reporter=%s, destination_service=%s)", reporter, service)))
		t.rate = max(t.rate, m.Rate)
	}
	// Cluster counters: 5xx when no counter of a mesh failure moved.
	for _, c := range latencyClusters(s) {
		m, ok := s.ClusterCounter(c, "upstream_rq_5xx")
		if !ok || !significant(m, appErrorMinCount) || meshFailed(s, c) {
			continue
		}
		t := clusterTarget(c)
		if retry, ok := s.ClusterCounter(c, "upstream_rq_retry"); ok && retry.Value > 0 {
			// upstream_rq_5xx and upstream_rq_total count attempts: with retries they are not
			// what callers saw.
			ev, rate, note := retriedAppErrors(s, c, m, retry)
			t.evidence = append(t.evidence, ev...)
			t.retryNotes = append(t.retryNotes, note)
			t.rate = max(t.rate, rate)
		} else {
			t.evidence = append(t.evidence, m.Evidence("5xx responses"))
			if tot, ok := s.ClusterCounter(c, "upstream_rq_total"); ok && tot.Value > 0 {
				t.evidence = append(t.evidence, Evidence{Label: "share of requests", Value: round(m.Value/tot.Value*100, 2), Unit: UnitPercent, Source: "upstream_rq_5xx / upstream_rq_total"})
			}
			t.rate = max(t.rate, m.Rate)
		}
		t.evidence = append(t.evidence, Evidence{Label: "mesh failures (timeouts, connect failures, overflows, resets)", Value: 0, Unit: UnitCount, Source: "cluster." + c + ".{" + strings.Join(meshFailureStats[:4], ",") + ",...}"})
	}
	var out []Finding
	for _, key := range sortedKeys(targets) {
		out = append(out, appErrorFinding(s, targets[key]))
	}
	return out
}

func isAppError(e *envoyadmin.AccessLogEntry) bool {
	if e.Code < 500 || len(e.Flags) > 0 || e.UpstreamCluster == "" {
		return false
	}
	// Formats without %RESPONSE_CODE_DETAILS%: a 5xx with no flag from a host that answered.
	return e.Details == "via_upstream" || (e.Details == "" && e.UpstreamHost != "")
}

func isAppErrorSeries(l map[string]string) bool {
	f := l["response_flags"]
	return strings.HasPrefix(l["response_code"], "5") && (f == "-" || f == "")
}

// istioErrorKeys lists the (reporter, destination_service) pairs with application 5xx.
func istioErrorKeys(s *Snapshot) [][2]string {
	ss := s.latestStats()
	if ss == nil {
		return nil
	}
	keys := map[[2]string]bool{}
	for _, series := range ss.Istio {
		if series.Metric == "istio_requests_total" && isAppErrorSeries(series.Labels) && series.Value > 0 {
			keys[[2]string{series.Labels["reporter"], series.Labels["destination_service"]}] = true
		}
	}
	return sortedPairs(keys)
}

// meshFailed reports whether any counter of a mesh failure of the cluster is above zero.
func meshFailed(s *Snapshot, c string) bool {
	for _, st := range meshFailureStats {
		if m, ok := s.ClusterCounter(c, st); ok && m.Value > 0 {
			return true
		}
	}
	return false
}

func appErrorFinding(s *Snapshot, t *appErrors) Finding {
	f := NewFinding(CodeApplicationErrors, t.subject)
	f.Evidence = t.evidence
	codes := map[int]int{}
	for _, e := range t.logs {
		codes[e.Code]++
	}
	if len(codes) > 0 {
		var parts []string
		for code, n := range codes {
			parts = append(parts, fmt.Sprintf("%d×%d", n, code))
		}
		sort.Strings(parts)
		f.Evidence = append(f.Evidence, Evidence{Label: "status codes", Text: strings.Join(parts, ", "), Source: "access.log"})
		e := t.logs[0]
		f.Evidence = append(f.Evidence, Evidence{Label: "sample request", Text: strings.TrimSpace(fmt.Sprintf("%s %s -> %d from %s", e.Method, e.Path, e.Code, orDefault(e.UpstreamHost, "?"))), Source: fmt.Sprintf("access.log line %d", e.Line)})
	}
	f.Explanation = "The application answered these requests with a 5xx and the mesh passed the answer on: the access log says via_upstream with no response flag, or Istio's metrics show no response flag, or the cluster counts 5xx while none of its mesh-failure counters (timeouts, connect failures, overflows, resets) moved. Retries, timeouts and circuit breakers do not fix this; the application's own log says why it failed."
	for _, note := range t.retryNotes {
		f.Explanation += " " + note
	}
	ns, pod := s.podRef()
	if t.host == "" {
		f.Title = "The application in this pod answers with 5xx"
		f.Fix = Fix{
			Summary: "Read the application's log around these requests, not the proxy's.",
			Command: fmt.Sprintf("kubectl logs -n %s %s -c %s --since=15m", ns, pod, s.appContainer()),
		}
	} else {
		f.Title = t.host + " answers with 5xx itself; the mesh only passes them on"
		if len(t.retryNotes) > 0 {
			f.Title = t.host + " answers with 5xx itself; the proxy retries them and passes on what still fails"
		}
		name, uns := hostNameNamespace(t.host)
		cmd := fmt.Sprintf("kubectl logs -n %s svc/%s --since=15m    # one pod of the service; its default container is the application", orDefault(uns, ns), name)
		if hosts := logHosts(t.logs); len(hosts) > 0 {
			cmd += "\n" + podByIPCommand(hosts) + "    # the pods that answered 5xx"
		}
		f.Fix = Fix{Summary: "Read the upstream application's log, not the mesh's.", Command: cmd}
	}
	f.Impact = t.rate
	return f
}

// retriedAppErrors tells apart, for a cluster whose proxy retried, the 5xx answers to attempts
// (upstream_rq_5xx counts every attempt) from the requests that failed as callers saw them. The
// callers' count comes from istio_requests_total (reporter=source, the service's 5xx whatever
// their flags) when this proxy records it, else it is estimated as the 5xx attempts minus the
// retries: with no mesh failure counted, every retry followed a 5xx attempt. rate is the
// callers' failure rate; note explains the difference in words.
func retriedAppErrors(s *Snapshot, c string, attempts5xx, retry Measure) (ev []Evidence, rate float64, note string) {
	ev = append(ev, attempts5xx.Evidence("5xx answers to attempts, retries included (upstream_rq_5xx)"), retry.Evidence("retried attempts (upstream_rq_retry)"))
	host := ServiceHost(c)
	failed, seen := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
		return l["reporter"] == "source" && l["destination_service"] == host && strings.HasPrefix(l["response_code"], "5")
	})
	if _, ok := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
		return l["reporter"] == "source" && l["destination_service"] == host
	}); ok {
		if !seen {
			failed = Measure{Interval: attempts5xx.Interval, Span: attempts5xx.Span, Source: failed.Source}
		}
		seen = true
		ev = append(ev, failed.Evidence(fmt.Sprintf("requests that failed with 5xx as callers saw them (reporter=source, destination_service=%s)", host)))
	} else {
		v := max(attempts5xx.Value-retry.Value, 0)
		failed = Measure{Value: v, Interval: attempts5xx.Interval, Span: attempts5xx.Span, Source: "upstream_rq_5xx - upstream_rq_retry"}
		if attempts5xx.Rate > 0 {
			failed.Rate = round(max(attempts5xx.Rate-retry.Rate, 0), 3)
		}
		ev = append(ev, failed.Evidence("requests that failed with 5xx after their retries (estimated: 5xx attempts minus retries)"))
	}
	if tot, ok := s.ClusterCounter(c, "upstream_rq_total"); ok && tot.Value > retry.Value {
		requests := tot.Value - retry.Value
		ev = append(ev, Evidence{Label: "share of requests that failed", Value: round(min(failed.Value/requests, 1)*100, 2), Unit: UnitPercent,
			Source: "failed requests / (upstream_rq_total - upstream_rq_retry): upstream_rq_total counts attempts"})
	}
	note = fmt.Sprintf("The proxy retries %s: %s of its %s 5xx answers were retried, so callers saw fewer failures than the application produced", host, numberText(min(retry.Value, attempts5xx.Value)), numberText(attempts5xx.Value))
	if failed.Value <= 0 {
		note += ", and none of them failed in the end: the retries hide the errors, at the cost of the application's load and the callers' latency."
	} else {
		note += fmt.Sprintf(" (%s requests failed in the end).", numberText(failed.Value))
	}
	if !seen {
		note += " The count of failed requests is an estimate: Istio's request metrics were not in the stats."
	}
	return ev, failed.Rate, note
}

// numberText writes a count without a needless fraction.
func numberText(v float64) string { return fmt.Sprintf("%.0f", v) }
