package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds the MTLSRule's checks of the TLS mode: clients and servers that disagree on
// mTLS, and plaintext requests a PERMISSIVE listener still accepts.

// clusterModeMismatches finds clusters whose TLS mode cannot work with their endpoints and whose
// traffic fails the way that mismatch makes it fail: mTLS forced toward pods without a sidecar,
// and plaintext or one-way TLS that the sidecars of a service of the mesh refuse
// (plaintextRefusedFinding).
func clusterModeMismatches(s *Snapshot) []Finding {
	if s.Config == nil {
		return nil
	}
	var out []Finding
	for i := range s.Config.Clusters {
		cfg := &s.Config.Clusters[i]
		switch cfg.TLSMode {
		case envoyadmin.TLSModeIstioMutual:
			if f, ok := mutualWithoutSidecars(s, cfg.Name.Raw); ok {
				out = append(out, f)
			}
		case envoyadmin.TLSModePlaintext, envoyadmin.TLSModeSimple:
			if f, ok := plaintextRefusedFinding(s, cfg); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

// noSidecarEndpoints returns the endpoints of a cluster when there are some and none carries
// tlsMode=istio, the label sidecar injection puts on pods. Istio keeps that label in the
// endpoints it sends when a DestinationRule forces ISTIO_MUTUAL, so under ISTIO_MUTUAL its
// absence means no sidecar. Endpoints reached through a tunnel (envoy:// internal addresses,
// HBONE) carry tunnel metadata instead, so they say nothing about a sidecar.
func noSidecarEndpoints(s *Snapshot, cluster string) []envoyadmin.Endpoint {
	if s.Config == nil {
		return nil
	}
	eps := clusterEndpoints(s.Config, cluster)
	if sidecarCount(eps) > 0 || tunnelled(eps) {
		return nil
	}
	return eps
}

// mutualWithoutSidecars reports a cluster that a DestinationRule forces to ISTIO_MUTUAL while
// none of its endpoints has a sidecar, once its handshakes fail (or, before any request,
// latentMTLSMismatch).
func mutualWithoutSidecars(s *Snapshot, name string) (Finding, bool) {
	eps := noSidecarEndpoints(s, name)
	if len(eps) == 0 {
		return Finding{}, false
	}
	var failed, rate float64
	var ev []Evidence
	for _, st := range []string{"ssl_connection_error", "upstream_cx_connect_fail"} {
		if m, ok := s.ClusterCounter(name, st); ok && significant(m, mismatchMinCumulative) {
			failed, rate = failed+m.Value, rate+m.Rate
			ev = append(ev, m.Evidence(mismatchStatLabels[st]))
		}
	}
	n, logEv := s.LogCount("failed requests to "+name+" in the access log", func(e *envoyadmin.AccessLogEntry) bool {
		return e.UpstreamCluster == name && HasFlag(e, "UF") && strings.Contains(e.TransportFailure+e.Details, "TLS")
	})
	if n > 0 {
		ev = append(ev, logEv)
	}
	if len(ev) == 0 {
		return latentMTLSMismatch(s, name, eps)
	}
	host := ServiceHost(name)
	f := NewFinding(CodeTLSModeMismatch, ClusterSubject(name))
	f.Title = fmt.Sprintf("This proxy sends mTLS to %s, which its endpoints do not speak", host)
	f.Evidence = append([]Evidence{
		{Label: "TLS mode of the cluster", Text: envoyadmin.TLSModeIstioMutual, Source: "config_dump.json cluster " + name},
		{Label: "endpoints with a sidecar (tlsMode=istio)", Value: 0, Unit: UnitCount, Source: fmt.Sprintf("config_dump.json endpoints of %s (%d endpoints)", name, len(eps))},
	}, ev...)
	f.Explanation = fmt.Sprintf("A DestinationRule sets tls.mode ISTIO_MUTUAL for %s, but none of its %d endpoints runs a sidecar (none has the tlsMode=istio label, which Istio keeps in the endpoints under ISTIO_MUTUAL), so nothing on the other side answers mTLS.", host, len(eps)) + subsetLabelCaveat(name)
	if total, ok := s.ClusterCounter(name, "upstream_rq_total"); ok && total.Value > 0 && failed > 0 && failed/total.Value < mismatchMinShare {
		f.Severity = SeverityWarning
		f.Explanation += fmt.Sprintf(" Only %.0f%% of the requests fail, though, where pods without a sidecar fail them all: something answers mTLS for most of them, so look at the failing hosts first.", failed/total.Value*100)
	}
	f.Fix = Fix{Summary: fmt.Sprintf("Set tls.mode DISABLE for %s (or delete the tls block and let auto mTLS choose), or inject a sidecar into its pods.", host)}
	if h := serviceHost(name); h != "" {
		f.Fix.YAML = DestinationRuleYAML(h, "    tls:\n      mode: DISABLE\n")
	}
	addIstioPolicyEvidence(s, &f, name)
	f.Impact = rate
	return f, true
}

// subsetLabelCaveat qualifies "no tlsMode=istio label, so no sidecar" for a subset cluster: istiod
// judges a subset's endpoints by the subset's own tls setting, and without one by the pods' label
// and PeerAuthentication, so it also leaves the label out for sidecars whose PeerAuthentication
// is DISABLE. Those take only plaintext, so the fix is the same.
func subsetLabelCaveat(cluster string) string {
	if envoyadmin.ParseClusterName(cluster).Subset == "" {
		return ""
	}
	return " (For a subset without a tls setting of its own, istiod also leaves the label out for pods whose sidecar has PeerAuthentication DISABLE: those take only plaintext as well.)"
}

// mismatchStatLabels names the counters that show a TLS mode mismatch failing.
var mismatchStatLabels = map[string]string{
	"upstream_cx_destroy_remote_with_active_rq": "connections the upstream closed with a request in flight (upstream_cx_destroy_remote_with_active_rq)",
	"ssl_connection_error":                      "failed TLS handshakes (ssl.connection_error)",
	"upstream_cx_connect_fail":                  "failed connects (upstream_cx_connect_fail)",
}

func modeWords(mode string) string {
	switch mode {
	case envoyadmin.TLSModePlaintext:
		return "plaintext"
	case envoyadmin.TLSModeSimple:
		return "TLS without a client certificate"
	}
	return "mTLS"
}

func clusterEndpoints(cfg *envoyadmin.ConfigSummary, cluster string) []envoyadmin.Endpoint {
	for _, ce := range cfg.Endpoints {
		if ce.Cluster == cluster {
			return ce.Endpoints
		}
	}
	return nil
}

// wrongVersionMismatches reports access-log lines whose TLS handshake got a plaintext answer
// (OpenSSL's WRONG_VERSION_NUMBER), per cluster, unless the cluster's mismatch is already told.
func wrongVersionMismatches(s *Snapshot, told []Finding) []Finding {
	done := map[string]bool{}
	for _, f := range told {
		done[f.Subject.Name] = true
	}
	byCluster := map[string]int{}
	for _, e := range s.AccessLog {
		if strings.Contains(strings.ToUpper(e.TransportFailure+" "+e.Details), "WRONG_VERSION_NUMBER") && !done[e.UpstreamCluster] {
			byCluster[e.UpstreamCluster]++
		}
	}
	var out []Finding
	for _, c := range sortedKeys(byCluster) {
		name := orDefault(c, "unknown upstream")
		_, ev := s.LogCount("requests whose TLS handshake got a plaintext answer (WRONG_VERSION_NUMBER)", func(e *envoyadmin.AccessLogEntry) bool {
			return e.UpstreamCluster == c && strings.Contains(strings.ToUpper(e.TransportFailure+" "+e.Details), "WRONG_VERSION_NUMBER")
		})
		f := NewFinding(CodeTLSModeMismatch, ClusterSubject(name))
		f.Title = "This proxy speaks TLS to " + ServiceHost(name) + ", which answers in plaintext"
		f.Evidence = []Evidence{ev}
		mode := ""
		if cfg := s.ClusterConfig(c); cfg != nil && cfg.TLSMode != "" {
			mode = cfg.TLSMode
			f.Evidence = append(f.Evidence, Evidence{Label: "TLS mode of the cluster", Text: mode, Source: "config_dump.json cluster " + c})
		}
		f.Explanation = "OpenSSL's WRONG_VERSION_NUMBER means this proxy sent a TLS handshake and the reply was not TLS: the upstream serves plaintext on that port, so it has no sidecar, its sidecar does not intercept the port (excludeInboundPorts), or the sidecar is not running."
		switch mode {
		case envoyadmin.TLSModeIstioMutual, envoyadmin.TLSModeMutual, envoyadmin.TLSModeSimple:
			f.Explanation += " A DestinationRule forces tls.mode " + mode + " for this host."
		case envoyadmin.TLSModeAuto:
			f.Explanation += " Auto mTLS chose mTLS because the endpoints carry the security.istio.io/tlsMode=istio label, so the label is there but the sidecar does not serve the port."
		}
		f.Fix = Fix{Summary: "Give the upstream pods a working sidecar on that port; if the service is meant to stay outside the mesh, set tls.mode DISABLE for it."}
		if host := serviceHost(c); host != "" {
			f.Fix.YAML = DestinationRuleYAML(host, "    tls:\n      mode: DISABLE\n")
			if ep := endpointsCommand(c); ep != "" {
				f.Fix.Command = ep
			}
		}
		f.Impact = s.logRate(byCluster[c])
		out = append(out, f)
	}
	return out
}

// inboundStrictRejections finds connections that the inbound listener closed because they
// matched no filter chain, which with STRICT mTLS is what plaintext callers cause.
func inboundStrictRejections(s *Snapshot) []Finding {
	strict, inbound := false, map[string]bool{}
	if s.Config != nil {
		for _, l := range s.Config.Listeners {
			if !l.Inbound {
				continue
			}
			inbound[strings.NewReplacer(".", "_", ":", "_").Replace(l.Address)] = true
			strict = strict || l.MTLSMode == "STRICT"
		}
		if !strict {
			return nil
		}
	}
	var ev []Evidence
	var rate float64
	listener := "virtualInbound"
	if ss := s.latestStats(); ss != nil {
		for _, k := range sortedKeys(ss.Stats) {
			id, ok := strings.CutSuffix(strings.TrimPrefix(k, "listener_"), "_no_filter_chain_match")
			if !ok || !strings.HasPrefix(k, "listener_") || !(inbound[id] || (s.Config == nil && strings.HasSuffix(id, "_15006"))) {
				continue
			}
			if m, ok := s.Counter(k); ok && significant(m, mismatchMinCumulative) {
				ev = append(ev, m.Evidence("connections that matched no filter chain on "+listenerAddress(id)))
				rate += m.Rate
				listener = listenerAddress(id)
			}
		}
	}
	n, logEv := s.LogCount("connections refused with filter_chain_not_found (NR)", func(e *envoyadmin.AccessLogEntry) bool {
		return e.Details == "filter_chain_not_found"
	})
	if n > 0 {
		ev = append(ev, logEv)
		rate = max(rate, s.logRate(n))
	}
	if len(ev) == 0 {
		return nil
	}
	ns, pod := s.podRef()
	f := NewFinding(CodeTLSModeMismatch, Subject{Kind: SubjectListener, Name: listener})
	f.Title = "Callers without mTLS are refused by this pod's inbound listener"
	f.Evidence = ev
	if strict {
		f.Evidence = append(f.Evidence, Evidence{Label: "inbound mTLS mode", Text: "STRICT", Source: "config_dump.json inbound listener filter chains"})
		f.Explanation = "This pod's inbound listener requires mTLS (PeerAuthentication STRICT). A connection without it matches none of the listener's filter chains and is closed before a request is read, so the caller sees a reset or a 503, and the request never shows in this pod's metrics. Sidecars always send mTLS, so these callers are outside the mesh (no sidecar, a namespace without injection, a node-local agent) or were sent to a port the listener has no chain for."
	} else {
		f.Severity = SeverityWarning
		f.Explanation = "Istio's inbound listener closes connections that match none of its filter chains. With PERMISSIVE mTLS every port has a plaintext chain, so this happens when the pod requires mTLS (STRICT) and callers send plaintext; the config dump was not captured, so STRICT is not confirmed."
	}
	f.Fix = Fix{
		Summary: "Find the callers (the downstream address of each filter_chain_not_found line) and give them a sidecar; until then this workload can stay PERMISSIVE.",
		Command: fmt.Sprintf("istioctl x describe pod %s -n %s\n%s", pod, ns, s.proxyLogGrep("filter_chain_not_found")),
		YAML:    peerAuthenticationYAML(s, ns, "PERMISSIVE"),
	}
	f.Impact = rate
	return []Finding{f}
}

// plaintextInbound reports requests that reached this pod without mTLS through a PERMISSIVE
// listener: they will be refused the day the namespace goes STRICT.
func plaintextInbound(s *Snapshot) []Finding {
	plainMatch := func(l map[string]string) bool {
		return l["reporter"] == "destination" && l["connection_security_policy"] == "none"
	}
	m, ok := s.IstioCount("istio_requests_total", plainMatch)
	if !ok || m.Value <= 0 {
		return nil
	}
	if s.Config != nil {
		permissive := false
		for _, l := range s.Config.Listeners {
			permissive = permissive || (l.Inbound && l.MTLSMode == "PERMISSIVE")
		}
		if !permissive {
			// STRICT: the counts predate it; DISABLE: plaintext is the namespace's choice.
			return nil
		}
	}
	ns, _ := s.podRef()
	f := NewFinding(CodePlaintextInbound, Subject{Kind: SubjectPod, Name: proxyName(s)})
	f.Title = fmt.Sprintf("%.0f requests reached this pod without mTLS %s", m.Value, m.Basis())
	f.Evidence = []Evidence{m.Evidence("requests without mTLS (connection_security_policy=none)")}
	if mt, ok := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
		return l["reporter"] == "destination" && l["connection_security_policy"] == "mutual_tls"
	}); ok {
		f.Evidence = append(f.Evidence, mt.Evidence("requests with mTLS"))
	}
	unknown := false
	for _, src := range plaintextSources(s) {
		wl, wns := src[0], src[1]
		unknown = unknown || wl == "unknown"
		sm, _ := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
			return plainMatch(l) && l["source_workload"] == wl && l["source_workload_namespace"] == wns
		})
		f.Evidence = append(f.Evidence, sm.Evidence(fmt.Sprintf("without mTLS from %s/%s", wns, wl)))
	}
	f.Explanation = "The inbound listener is PERMISSIVE, so it accepts plaintext beside mTLS. These requests came in plaintext: they are not encrypted, carry no verified identity (AuthorizationPolicies on principals cannot match them), and STRICT mTLS would refuse them."
	if unknown {
		f.Explanation += " Callers shown as unknown have no sidecar: the downstream address in this pod's access log names them."
	}
	f.Fix = Fix{
		Summary: "Give these callers a sidecar first; apply STRICT only once requests without mTLS stay at zero.",
		Command: s.proxyCommand(`pilot-agent request GET stats/prometheus | grep istio_requests_total | grep 'reporter="destination"' | grep 'connection_security_policy="none"'`),
		YAML:    peerAuthenticationYAML(s, ns, "STRICT"),
	}
	f.Impact = m.Rate
	return []Finding{f}
}

// plaintextSources lists the (workload, namespace) pairs that sent plaintext requests, at most
// maxListedHosts, in label order.
func plaintextSources(s *Snapshot) [][2]string {
	ss := s.latestStats()
	seen := map[[2]string]bool{}
	var out [][2]string
	for _, series := range ss.Istio {
		l := series.Labels
		if series.Metric != "istio_requests_total" || l["reporter"] != "destination" || l["connection_security_policy"] != "none" || series.Value <= 0 {
			continue
		}
		k := [2]string{orDefault(l["source_workload"], "unknown"), orDefault(l["source_workload_namespace"], "unknown")}
		if !seen[k] && len(out) < maxListedHosts {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// peerAuthenticationYAML is a PeerAuthentication for the namespace, or for the pod's app when
// relaxing it (PERMISSIVE), so that a stopgap does not loosen the whole namespace.
func peerAuthenticationYAML(s *Snapshot, ns, mode string) string {
	var b strings.Builder
	name := "default"
	app := ""
	if mode != "STRICT" && s.Pod != nil {
		app = s.Pod.Labels["app"]
	}
	if app != "" {
		name = app + "-" + strings.ToLower(mode)
	}
	fmt.Fprintf(&b, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n", name, ns)
	if app != "" {
		fmt.Fprintf(&b, "  selector:\n    matchLabels:\n      app: %s\n", app)
	}
	fmt.Fprintf(&b, "  mtls:\n    mode: %s\n", mode)
	return b.String()
}

// latentMTLSMismatch reports a cluster that a DestinationRule forces to ISTIO_MUTUAL while none of
// its endpoints has a sidecar (noSidecarEndpoints), before any request has failed: the first
// connection will fail its handshake. It is the one TLS mode mismatch the proxy's own evidence
// shows without failures: under DISABLE or SIMPLE, istiod strips the endpoints' tlsMode metadata
// and the server's PeerAuthentication (PERMISSIVE accepts both) decides, neither of which this
// proxy shows, so those are reported only once requests fail (plaintextRefusedFinding). Left
// out, because something may answer mTLS there: hosts that are not Kubernetes services (a
// ServiceEntry's WorkloadEntries, whose labels are the user's), and clusters with any sign of
// working traffic.
func latentMTLSMismatch(s *Snapshot, name string, eps []envoyadmin.Endpoint) (Finding, bool) {
	host := serviceHost(name)
	if _, ns := hostNameNamespace(host); host == "" || ns == "" {
		return Finding{}, false
	}
	var looked []string
	for _, st := range []string{"upstream_rq_total", "upstream_cx_total", "ssl_handshake"} {
		if m, ok := s.ClusterCounter(name, st); ok {
			if m.Value > 0 {
				return Finding{}, false
			}
			looked = append(looked, statSource(s.StatsFile, s.Stats, name, st))
		}
	}
	if s.Has(InputAccessLog) {
		if n := len(s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == name })); n > 0 {
			return Finding{}, false
		}
		looked = append(looked, fmt.Sprintf("access.log (%d lines)", len(s.AccessLog)))
	}
	seen := "The evidence holds no request to it yet (no stats or access log for it), so nothing has failed"
	if len(looked) > 0 {
		seen = "No request to it shows in the evidence, so nothing has failed yet"
	}
	f := NewFinding(CodeTLSModeMismatch, ClusterSubject(name))
	f.Severity = SeverityWarning
	f.Title = fmt.Sprintf("This proxy would send mTLS to %s, whose endpoints have no sidecar; no request has failed yet", host)
	f.Evidence = []Evidence{
		{Label: "TLS mode of the cluster", Text: envoyadmin.TLSModeIstioMutual, Source: "config_dump.json cluster " + name},
		{Label: "endpoints with a sidecar (tlsMode=istio)", Value: 0, Unit: UnitCount, Source: fmt.Sprintf("config_dump.json endpoints of %s (%d endpoints)", name, len(eps))},
		{Label: "requests to the cluster seen", Value: 0, Unit: UnitCount, Source: orDefault(strings.Join(looked, "; "), "no stats or access log in the capture")},
	}
	f.Explanation = fmt.Sprintf("A DestinationRule sets tls.mode ISTIO_MUTUAL for %s, but none of its %d endpoints carries the tlsMode=istio label that sidecar injection puts on pods, and Istio keeps that label in the endpoints it sends when a DestinationRule forces ISTIO_MUTUAL: so none of them runs a sidecar to answer mTLS. %s; the first request will fail its TLS handshake (503 UF with a TLS error, or a reset), unless the pods terminate Istio mTLS some other way than a labelled sidecar.", host, len(eps), seen) + subsetLabelCaveat(name)
	f.Fix = Fix{Summary: fmt.Sprintf("Set tls.mode DISABLE for %s (or delete the tls block and let auto mTLS choose), or inject a sidecar into its pods.", host), YAML: DestinationRuleYAML(host, "    tls:\n      mode: DISABLE\n")}
	if ep := endpointsCommand(name); ep != "" {
		f.Fix.Command = ep
	}
	return f, true
}
