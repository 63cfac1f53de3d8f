package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// NoHealthyUpstreamRule finds upstreams with no healthy host (MESH0501), hosts ejected by outlier
// detection (MESH0502) and hosts failing active or EDS health checks (MESH0503).
type NoHealthyUpstreamRule struct{}

// envoyPanicThreshold is Envoy's default healthy_panic_threshold: below this share of healthy
// hosts it balances over all hosts, unhealthy ones included.
const envoyPanicThreshold = 0.5

// Meta describes the rule.
func (NoHealthyUpstreamRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "NoHealthyUpstreamRule",
		Description: "Upstreams with no healthy host (UH), hosts ejected by outlier detection, and hosts failing health checks.",
		Codes:       []Code{CodeNoHealthyUpstream, CodeHostsEjected, CodeHostsFailingHealth},
		AnyOf:       []Input{InputStats, InputUpstreams, InputAccessLog, InputConfig},
	}
}

// hostHealth is what the evidence says about a cluster's hosts now.
type hostHealth struct {
	known          bool
	total, healthy int
	ev             []Evidence
	byFlag         map[string][]string // health flag -> host addresses
}

// allUnhealthy reports whether the cluster has hosts and none of them is healthy.
func (h hostHealth) allUnhealthy() bool { return h.known && h.total > 0 && h.healthy == 0 }

// clusterHostHealth reads a cluster's hosts from /clusters, else the membership gauges, else
// the config dump's endpoints.
func clusterHostHealth(s *Snapshot, c string) hostHealth {
	h := hostHealth{byFlag: map[string][]string{}}
	if u := s.Upstream(c); u != nil {
		h.known, h.total = true, len(u.Hosts)
		for _, host := range u.Hosts {
			if host.Healthy() {
				h.healthy++
			}
			for _, fl := range host.HealthFlags {
				h.byFlag[fl] = append(h.byFlag[fl], host.Address)
			}
		}
		src := orDefault(s.UpstreamsFile, "clusters") + " " + c + "::<host>::health_flags"
		h.ev = append(h.ev, Evidence{Label: "hosts now", Value: float64(h.total), Unit: UnitCount, Source: src},
			Evidence{Label: "healthy hosts now", Value: float64(h.healthy), Unit: UnitCount, Source: src})
		return h
	}
	if hv, hsrc, ok := s.ClusterGauge(c, "membership_healthy"); ok {
		h.known, h.healthy = true, int(hv)
		h.ev = append(h.ev, Evidence{Label: "healthy hosts now (membership_healthy)", Value: hv, Unit: UnitCount, Source: hsrc})
		h.total = h.healthy
		if tv, tsrc, ok := s.ClusterGauge(c, "membership_total"); ok {
			h.total = int(tv)
			h.ev = append(h.ev, Evidence{Label: "hosts now (membership_total)", Value: tv, Unit: UnitCount, Source: tsrc})
		}
		return h
	}
	if s.Config != nil {
		for _, ce := range s.Config.Endpoints {
			if ce.Cluster != c {
				continue
			}
			h.known = true
			for _, e := range ce.Endpoints {
				h.total++
				if st := e.HealthStatus; st == "" || st == "HEALTHY" || st == "UNKNOWN" {
					h.healthy++
				} else {
					h.byFlag["eds_"+strings.ToLower(st)] = append(h.byFlag["eds_"+strings.ToLower(st)], e.Address)
				}
			}
		}
		if !h.known {
			return h
		}
		src := FileConfigDump + " endpoint config " + c
		h.ev = append(h.ev, Evidence{Label: "endpoints", Value: float64(h.total), Unit: UnitCount, Source: src},
			Evidence{Label: "healthy endpoints", Value: float64(h.healthy), Unit: UnitCount, Source: src})
	}
	return h
}

// Check runs the rule.
func (NoHealthyUpstreamRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.appClusters() {
		hh := clusterHostHealth(s, c)
		noHealthy := false
		if f, ok := noHealthyFinding(s, c, hh); ok {
			out = append(out, f)
			noHealthy = true
		}
		if f, ok := ejectedFinding(s, c, hh); ok {
			out = append(out, f)
		}
		// With every host unhealthy, MESH0501 names the failing hosts and why: the same hosts
		// are not counted again as MESH0503.
		if f, ok := failingHealthFinding(s, c, hh); ok && !(noHealthy && hh.allUnhealthy()) {
			out = append(out, f)
		} else if !ok {
			if f, ok := failingChecksFinding(s, c); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

// failingChecksFinding reads a cluster's active health check counters when /clusters does not
// show which hosts fail them (a stats excerpt): checks that fail and none that succeed.
func failingChecksFinding(s *Snapshot, c string) (Finding, bool) {
	fail := s.clusterSignal(c, "health_check_failure", nil)
	success, successOK := s.ClusterCounter(c, "health_check_success")
	if !fail.counted() || (successOK && success.Value >= fail.m.Value) {
		return Finding{}, false
	}
	host := ServiceHost(c)
	f := NewFinding(CodeHostsFailingHealth, ClusterSubject(c))
	f.Title = fmt.Sprintf("Active health checks of %s fail", host)
	f.Severity = fail.severity(f.Severity)
	f.Evidence = fail.evidence(s, "failed health checks (health_check.failure)", "")
	for _, stat := range []string{"health_check_success", "health_check_network_failure", "health_check_healthy", "membership_healthy"} {
		if m, ok := s.ClusterCounter(c, stat); ok {
			f.Evidence = append(f.Evidence, m.Evidence(stat))
		} else if v, src, ok := s.ClusterGauge(c, stat); ok {
			f.Evidence = append(f.Evidence, Evidence{Label: stat, Value: v, Unit: UnitCount, Source: src})
		}
	}
	f.Explanation = fmt.Sprintf("The proxy's active health checks to %s fail more than they succeed (network_failure: the check could not connect), so it takes the failing hosts out of load balancing; with none left, requests get 503 \"no healthy upstream\". The hosts are down, unreachable from the proxy, or the check's path or port is wrong.", host)
	f.Fix = Fix{Summary: "Check the hosts the health check targets: that they run, are reachable from the proxy, and answer the check's path and port.", Command: s.proxyCommand("curl -s localhost:15000/clusters") + " | grep -F -- " + shellQuote(c+"::") + " | grep -E 'health_flags|cx_connect_fail'"}
	return f, true
}

func isNoHealthy(e *envoyadmin.AccessLogEntry) bool {
	return HasFlag(e, "UH") || detailsBase(e) == "no_healthy_upstream"
}

// routedSubset returns the routes that send traffic (weight > 0) to a subset cluster.
func routedSubset(s *Snapshot, c string) []string {
	if envoyadmin.ParseClusterName(c).Subset == "" {
		return nil
	}
	var names []string
	for _, r := range s.RoutesTo(c) {
		for _, wc := range r.Clusters {
			if wc.Name == c && wc.Weight > 0 {
				names = append(names, r.RouteConfigName+" "+routeName(r))
			}
		}
	}
	return names
}

func noHealthyFinding(s *Snapshot, c string, hh hostHealth) (Finding, bool) {
	g := s.clusterSignal(c, "upstream_cx_none_healthy", isNoHealthy)
	noneNow := hh.known && hh.healthy == 0
	routes := routedSubset(s, c)
	// A cluster with no host and no failed request is not reported: Istio makes a cluster for
	// every service, scaled-down ones too. A subset a route sends traffic to is the exception.
	if !g.fires() && !(noneNow && hh.total > 0) && !(noneNow && len(routes) > 0) {
		return Finding{}, false
	}
	n := envoyadmin.ParseClusterName(c)
	host := ServiceHost(c)
	f := NewFinding(CodeNoHealthyUpstream, ClusterSubject(c))
	f.Title = fmt.Sprintf("No healthy host is left in %s (UH)", host)
	f.Evidence = g.evidence(s, "connections wanted with no healthy host (upstream_cx_none_healthy)", "access-log lines with UH")
	f.Evidence = append(f.Evidence, hh.ev...)
	f.Impact = g.impact(s)
	switch {
	case g.fires():
		f.Severity = g.severity(f.Severity)
	case hh.total == 0 && len(routes) > 0:
		// Every request the route sends here fails: the config alone proves it.
	default:
		f.Severity = SeverityWarning // no failed request in the evidence yet
	}
	var why []string
	switch {
	case hh.known && hh.total == 0 && n.Subset != "":
		f.Title = fmt.Sprintf("Subset %s of %s has no endpoints (UH)", n.Subset, n.Host)
		if len(routes) > 0 {
			f.Evidence = append(f.Evidence, Evidence{Label: "routes sending traffic to it", Text: strings.Join(routes, "; "), Source: FileConfigDump + " route weighted_clusters"})
		}
		why = append(why, fmt.Sprintf("Traffic is routed to subset %q of %s, but the subset has no endpoints: the labels of the DestinationRule's subset %q match no ready pod of the service (a typo, or a version label the pods do not carry), or those pods are not ready. Every request to it fails with 503 UH.", n.Subset, n.Host, n.Subset))
		name, ns := hostNameNamespace(n.Host)
		f.Fix = Fix{
			Summary: fmt.Sprintf("Make the labels of subset %q in the DestinationRule for %s match the labels of running pods, or route only to subsets that have pods.", n.Subset, n.Host),
			Command: fmt.Sprintf("kubectl get destinationrules -n %s -o yaml | grep -A4 -F -- %s\nkubectl get pods -n %s --show-labels | grep -F -- %s", ns, shellQuote("name: "+n.Subset), ns, shellQuote(name)),
		}
	case hh.known && hh.total == 0:
		why = append(why, fmt.Sprintf("Service %s has no endpoints: the Service selects no ready pod (no pods, pods not ready, or a selector that does not match their labels). Every request to it fails with 503 UH.", host))
		f.Fix = Fix{Summary: "Give the service ready pods: check its selector against the pods' labels and why they are not ready.", Command: orDefault(endpointsCommand(c), s.proxyLogGrep(" UH "))}
	case hh.known && hh.healthy == 0:
		why = append(why, fmt.Sprintf("%s of %s %s unhealthy now (%s). Requests fail with 503 UH, unless the panic threshold makes the proxy send them to unhealthy hosts anyway.", allHosts(hh.total), host, hostsVerb(hh.total), flagSummary(hh.byFlag)))
		hev, hwhy, _ := healthCheckDetails(s, c, hh)
		f.Evidence = append(f.Evidence, hev...)
		why = append(why, hwhy...)
		if len(hh.byFlag["failed_outlier_check"]) > 0 {
			why = append(why, "Outlier detection ejected hosts that kept failing; its maxEjectionPercent allowed it to eject all of them.")
		}
		f.Fix = Fix{Summary: "Find out why the hosts fail (their logs, readiness and health checks); they are not taking traffic.", Command: podByIPCommand(allFlagged(hh.byFlag))}
	default:
		why = append(why, fmt.Sprintf("Requests to %s found no healthy host when they were made and failed with 503 UH: the endpoints were gone or all unhealthy then (a rollout that removed every pod at once, pods failing readiness, or all hosts ejected).", host))
		if hh.known {
			why = append(why, fmt.Sprintf("Now %d of %d hosts are healthy, so the outage may be over.", hh.healthy, hh.total))
		}
		f.Fix = Fix{Summary: "Keep ready pods during rollouts (maxUnavailable, a PodDisruptionBudget) and check what made the hosts unhealthy at the time of the UH lines.", Command: orDefault(endpointsCommand(c), s.proxyLogGrep(" UH "))}
	}
	why = addSliceEvidence(s, &f, c, why)
	f.Explanation = strings.Join(why, " ")
	return f, true
}

// flagSummary counts hosts by health flag: "3 failed_outlier_check, 1 failed_active_hc".
func flagSummary(byFlag map[string][]string) string {
	var parts []string
	for _, fl := range sortedKeys(byFlag) {
		parts = append(parts, fmt.Sprintf("%d %s", len(byFlag[fl]), fl))
	}
	return orDefault(strings.Join(parts, ", "), "no flag detail")
}

func allFlagged(byFlag map[string][]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, fl := range sortedKeys(byFlag) {
		for _, a := range byFlag[fl] {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// hostList is evidence naming hosts with a health flag.
func hostList(s *Snapshot, c, label string, addrs []string) Evidence {
	shown := addrs[:min(len(addrs), maxListedHosts)]
	text := strings.Join(shown, ", ")
	if len(addrs) > len(shown) {
		text += fmt.Sprintf(" and %d more", len(addrs)-len(shown))
	}
	return Evidence{Label: label, Text: text, Source: orDefault(s.UpstreamsFile, "clusters") + " " + c + "::<host>::health_flags"}
}

func ejectedFinding(s *Snapshot, c string, hh hostHealth) (Finding, bool) {
	active, activeSrc, activeOK := s.ClusterGauge(c, "outlier_detection_ejections_active")
	enforced := s.clusterSignal(c, "outlier_detection_ejections_enforced_total", nil)
	// Older releases write only the deprecated total (it counts enforced ejections), and
	// excerpts hold what the user grepped: one kind's counter.
	for _, stat := range []string{"outlier_detection_ejections_total", "outlier_detection_ejections_enforced_consecutive_5xx",
		"outlier_detection_ejections_consecutive_5xx", "outlier_detection_ejections_enforced_consecutive_gateway_failure",
		"outlier_detection_ejections_enforced_success_rate", "outlier_detection_ejections_enforced_consecutive_local_origin_failure"} {
		if enforced.ok && enforced.m.Value > 0 {
			break
		}
		if g := s.clusterSignal(c, stat, nil); g.ok && (!enforced.ok || g.m.Value > 0) {
			enforced = g
		}
	}
	ejected := hh.byFlag["failed_outlier_check"]
	if !(activeOK && active > 0) && len(ejected) == 0 && !enforced.counted() {
		return Finding{}, false
	}
	host := ServiceHost(c)
	f := NewFinding(CodeHostsEjected, ClusterSubject(c))
	f.Title = fmt.Sprintf("Outlier detection has ejected hosts of %s", host)
	f.Impact = 0
	if activeOK {
		f.Evidence = append(f.Evidence, Evidence{Label: "hosts ejected now (outlier_detection.ejections_active)", Value: active, Unit: UnitCount, Source: activeSrc})
	}
	if enforced.counted() {
		f.Evidence = append(f.Evidence, enforced.m.Evidence("ejections (outlier_detection.ejections_enforced_total)"))
		if !(activeOK && active > 0) && len(ejected) == 0 {
			f.Severity = enforced.severity(f.Severity)
		}
	}
	if len(ejected) > 0 {
		f.Evidence = append(f.Evidence, hostList(s, c, fmt.Sprintf("hosts ejected now, of %d", hh.total), ejected))
	}
	nEjected := max(int(active), len(ejected))
	why := []string{fmt.Sprintf("Outlier detection took hosts of %s out of load balancing because they kept failing (consecutive 5xx, gateway errors or connect failures). They stay out for the base ejection time, longer at each repeat. The ejected hosts are the problem to look at.", host)}
	if hh.total > 0 && nEjected >= hh.total {
		why = append(why, "No host is left to carry their load (see MESH0501).")
	} else if nEjected > 0 {
		why = append(why, "The other hosts carry their load meanwhile.")
	}
	maxPct := 10.0
	if cc := s.ClusterConfig(c); cc != nil && cc.Outlier != nil {
		o := cc.Outlier
		src := FileConfigDump + " cluster " + c + " outlier_detection"
		if o.Consecutive5xx != nil {
			f.Evidence = append(f.Evidence, Evidence{Label: "consecutive 5xx before ejection", Value: float64(*o.Consecutive5xx), Unit: UnitCount, Source: src + ".consecutive_5xx"})
		}
		if o.ConsecutiveGatewayFailure != nil {
			f.Evidence = append(f.Evidence, Evidence{Label: "consecutive gateway errors before ejection", Value: float64(*o.ConsecutiveGatewayFailure), Unit: UnitCount, Source: src + ".consecutive_gateway_failure"})
		}
		if o.BaseEjectionTime > 0 {
			f.Evidence = append(f.Evidence, Evidence{Label: "base ejection time", Value: millis(o.BaseEjectionTime), Unit: UnitMillis, Source: src + ".base_ejection_time"})
		}
		mp := Evidence{Label: "max ejection percent (not set: Envoy's default)", Value: maxPct, Unit: UnitPercent, Source: src + ".max_ejection_percent"}
		if o.MaxEjectionPercent != nil {
			maxPct = float64(*o.MaxEjectionPercent)
			mp.Label, mp.Value = "max ejection percent", maxPct
		}
		f.Evidence = append(f.Evidence, mp)
		if hh.total > 0 && nEjected > 0 && float64(nEjected)*100/float64(hh.total) >= maxPct {
			why = append(why, fmt.Sprintf("%d of %d hosts are ejected, the most maxEjectionPercent (%.0f%%) allows: further failing hosts would stay in rotation.", nEjected, hh.total, maxPct))
		}
	}
	f.Explanation = strings.Join(why, " ")
	f.Fix = Fix{
		Summary: "Look at the ejected pods: their logs and readiness say why they fail; outlier detection only hides them for a while.",
		Command: orDefault(podByIPCommand(ejected), s.proxyCommand("pilot-agent request GET clusters")+fmt.Sprintf(" | grep -F '%s::' | grep failed_outlier_check", c)),
	}
	return f, true
}

// healthCheckDetails names the hosts failing active or EDS health checks, with what each means;
// failing lists their addresses, nil when no host fails one.
func healthCheckDetails(s *Snapshot, c string, hh hostHealth) (ev []Evidence, why, failing []string) {
	active := hh.byFlag["failed_active_hc"]
	eds := append(append([]string(nil), hh.byFlag["failed_eds_health"]...), hh.byFlag["eds_unhealthy"]...)
	if len(active) > 0 {
		ev = append(ev, hostList(s, c, "hosts failing active health checks (failed_active_hc)", active))
		why = append(why, fmt.Sprintf("The proxy's own active health checks to %s fail, so it takes %s out of load balancing. Istio does not give sidecars active health checks: this cluster has them from its own Envoy configuration (a gateway, an EnvoyFilter, or a non-Istio proxy).", plural(len(active), "host"), itOrThem(len(active))))
	}
	if len(eds) > 0 {
		ev = append(ev, hostList(s, c, "hosts the control plane reports unhealthy (failed_eds_health)", eds))
		why = append(why, fmt.Sprintf("The control plane reports %s unhealthy (in Kubernetes: pods not ready or terminating), so the proxy takes %s out of load balancing.", plural(len(eds), "host"), itOrThem(len(eds))))
	}
	if len(active) > 0 || len(eds) > 0 {
		if m, ok := s.ClusterCounter(c, "health_check_failure"); ok && m.Value > 0 {
			ev = append(ev, m.Evidence("failed health checks (health_check.failure)"))
		}
	}
	return ev, why, allFlagged(map[string][]string{"a": active, "e": eds})
}

func failingHealthFinding(s *Snapshot, c string, hh hostHealth) (Finding, bool) {
	hev, why, failing := healthCheckDetails(s, c, hh)
	if len(failing) == 0 {
		return Finding{}, false
	}
	host := ServiceHost(c)
	f := NewFinding(CodeHostsFailingHealth, ClusterSubject(c))
	f.Title = fmt.Sprintf("%d of %d hosts of %s fail health checks", len(failing), hh.total, host)
	f.Evidence = append(f.Evidence, hh.ev...)
	f.Evidence = append(f.Evidence, hev...)
	if hh.total > 0 {
		share := float64(hh.healthy) / float64(hh.total)
		if hh.healthy > 0 && share < envoyPanicThreshold {
			why = append(why, fmt.Sprintf("Only %d of %d hosts (%.0f%%) are healthy, below Envoy's default panic threshold of 50%% (unless the cluster sets another): in panic the proxy balances over all hosts, the failing ones included, so requests do reach them.", hh.healthy, hh.total, share*100))
		} else if hh.healthy > 0 {
			why = append(why, fmt.Sprintf("The %d healthy hosts carry all the traffic.", hh.healthy))
		}
	}
	f.Explanation = strings.Join(why, " ")
	f.Fix = Fix{
		Summary: "Find out why those hosts fail their health checks (the check's path and port, the pods' readiness and logs); the command finds the pods behind the addresses.",
		Command: podByIPCommand(failing),
	}
	return f, true
}

// allHosts says "Both hosts", "All 5 hosts" or "The only host".
func allHosts(n int) string {
	switch n {
	case 1:
		return "The only host"
	case 2:
		return "Both hosts"
	}
	return fmt.Sprintf("All %d hosts", n)
}

// itOrThem is the pronoun for n hosts.
func itOrThem(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// hostsVerb is the verb that agrees with allHosts(n): "is" for the only host, "are" otherwise.
func hostsVerb(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
