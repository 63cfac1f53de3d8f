package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds the MTLSRule's check of clusters that send plaintext (tls.mode DISABLE) or TLS
// without a client certificate (SIMPLE) to a service of the mesh whose sidecars require mTLS.
//
// The client proxy cannot see that directly. When a DestinationRule sets a TLS mode for a host,
// istiod decides the endpoints' tlsMode metadata from that mode alone and sends tlsMode=istio
// only under ISTIO_MUTUAL (pilot/pkg/xds/endpoints/mtls_checker.go), so a DISABLE or SIMPLE
// cluster does not show whether its pods run a sidecar; and the server's PeerAuthentication is
// not in this proxy's config at all. What the proxy does show is the mode, the host, and how the
// requests fail: a sidecar that requires mTLS closes every plaintext connection as soon as the
// request arrives, so nearly every request fails with the connection terminated before any
// response (UC), where a keep-alive race loses a few requests on reused connections.

// Thresholds of the check.
const (
	// plaintextRefusedShare: from this share of requests cut off, the server refuses the mode.
	plaintextRefusedShare = 0.90
	// plaintextMinFailures: fewer cut-off requests than this cannot show a share.
	plaintextMinFailures = 5
)

// refusals counts the requests of a cluster that were cut off before any response, against all
// requests sent to it, from the best evidence at hand.
type refusals struct {
	failed, total float64
	rate          float64 // cut-off requests per second, 0 when unknown
	interval      bool    // counted over the window between two samples
	basis         string  // what the counts cover: "over 10s", "since proxy start (...)", "in the access log"
	source        string  // where the share comes from
	fromLog       bool    // the counts are access-log lines
	ev            []Evidence
}

func (r refusals) share() float64 {
	if r.total <= 0 {
		return 0
	}
	return min(r.failed/r.total, 1)
}

// refused reports whether nearly every request was cut off, as a server that refuses the mode does.
func (r refusals) refused() bool {
	return r.failed >= plaintextMinFailures && r.share() >= plaintextRefusedShare
}

// plaintextToMesh reports whether a cluster sends plaintext or one-way TLS to a Kubernetes service
// ("name.namespace.svc..."), for which Istio's default would be auto mTLS. Clusters with endpoints
// reached through a tunnel (HBONE) are left out: the tunnel is mTLS whatever the socket says.
func (s *Snapshot) plaintextToMesh(cfg *envoyadmin.ClusterConfig) bool {
	if cfg == nil || (cfg.TLSMode != envoyadmin.TLSModePlaintext && cfg.TLSMode != envoyadmin.TLSModeSimple) {
		return false
	}
	return inMeshHost(cfg.Name.Raw) && (s.Config == nil || !tunnelled(clusterEndpoints(s.Config, cfg.Name.Raw)))
}

// tunnelled reports whether any endpoint is an internal address (envoy://), reached through a
// tunnel such as HBONE.
func tunnelled(eps []envoyadmin.Endpoint) bool {
	for _, e := range eps {
		if strings.HasPrefix(e.Address, "envoy://") {
			return true
		}
	}
	return false
}

func inMeshHost(cluster string) bool {
	host := serviceHost(cluster)
	_, ns := hostNameNamespace(host)
	return host != "" && ns != "" && classifyCluster(cluster) == kindService
}

// plaintextRefused reports whether the MTLSRule explains a cluster's failures as plaintext or
// one-way TLS refused by sidecars that require mTLS.
func (s *Snapshot) plaintextRefused(cfg *envoyadmin.ClusterConfig) bool {
	if !s.plaintextToMesh(cfg) {
		return false
	}
	r, ok := countRefusals(s, cfg)
	return ok && r.refused()
}

// isCutOff matches an access-log line of a request cut off the way a server refusing the mode
// cuts it: the connection closed before any response, or (one-way TLS) a handshake that failed
// other than by a plaintext answer.
func isCutOff(e *envoyadmin.AccessLogEntry, simple bool) bool {
	if isConnectionTermination(e) {
		return true
	}
	return simple && HasFlag(e, "UF") && strings.Contains(strings.ToUpper(e.TransportFailure+" "+e.Details), "TLS") && !isWrongVersion(e)
}

// countRefusals reads the share of cut-off requests from the cluster's counters, else from
// istio_requests_total (reporter=source), else from an access log that also records successes
// (a log of errors only cannot give a share). ok is false when none of them can.
func countRefusals(s *Snapshot, cfg *envoyadmin.ClusterConfig) (refusals, bool) {
	name, simple := cfg.Name.Raw, cfg.TLSMode == envoyadmin.TLSModeSimple
	total, totalOK := s.ClusterCounter(name, "upstream_rq_total")
	cut, _ := s.ClusterCounter(name, "upstream_cx_destroy_remote_with_active_rq")
	hs, hsOK := s.ClusterCounter(name, "ssl_connection_error")
	// Handshakes that failed before a request was sent are attempts upstream_rq_total leaves
	// out; those that failed after it are connections closed under a request, counted already.
	extra := 0.0
	if simple && hsOK {
		extra = max(hs.Value-cut.Value, 0)
	}
	if totalOK && total.Value+extra > 0 {
		r := refusals{failed: cut.Value + extra, total: total.Value + extra, rate: cut.Rate, interval: total.Interval, basis: total.Basis(),
			source: "upstream_cx_destroy_remote_with_active_rq / upstream_rq_total"}
		if cut.Value > 0 {
			r.ev = append(r.ev, cut.Evidence(mismatchStatLabels["upstream_cx_destroy_remote_with_active_rq"]))
		}
		if simple && hs.Value > 0 {
			r.rate = max(r.rate, hs.Rate)
			r.ev = append(r.ev, hs.Evidence(mismatchStatLabels["ssl_connection_error"]))
			r.source = "(upstream_cx_destroy_remote_with_active_rq + handshakes failed before a request) / (upstream_rq_total + the same handshakes)"
		}
		r.ev = append(r.ev, total.Evidence("requests sent to the cluster (upstream_rq_total)"))
		return r, true
	}
	host := serviceHost(name)
	if envoyadmin.ParseClusterName(name).Subset == "" {
		// The metric names the service, not the cluster: only a cluster without subset is all of
		// it. Only UC counts: the metric has no reset reason, and UF also counts refused connects.
		to := func(l map[string]string) bool { return l["reporter"] == "source" && l["destination_service"] == host }
		if total, ok := s.IstioCount("istio_requests_total", to); ok && total.Value > 0 {
			cut, _ := s.IstioCount("istio_requests_total", func(l map[string]string) bool {
				return to(l) && strings.Contains(","+l["response_flags"]+",", ",UC,")
			})
			r := refusals{failed: cut.Value, total: total.Value, rate: cut.Rate, interval: total.Interval, basis: total.Basis(),
				source: "istio_requests_total reporter=source: response_flags UC / all, destination_service " + host}
			if cut.Value > 0 {
				r.ev = append(r.ev, cut.Evidence("requests to "+host+" cut off (istio_requests_total response_flags=UC)"))
			}
			r.ev = append(r.ev, total.Evidence("requests to "+host+" (istio_requests_total reporter=source)"))
			return r, true
		}
	}
	all := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == name })
	if len(all) == 0 || len(s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.Code > 0 && e.Code < 400 })) == 0 {
		return refusals{}, false
	}
	n, ev := s.LogCount("requests to "+name+" cut off before a response in the access log", func(e *envoyadmin.AccessLogEntry) bool {
		return e.UpstreamCluster == name && isCutOff(e, simple)
	})
	r := refusals{failed: float64(n), total: float64(len(all)), rate: s.logRate(n), basis: "in the access log", source: "access.log lines of the cluster", fromLog: true}
	r.ev = append(r.ev, ev, s.logEvidence("requests to "+name+" in the access log", len(all)))
	return r, true
}

// plaintextRefusedFinding reports a cluster that sends plaintext or one-way TLS to a service of
// the mesh while nearly every request to it is cut off before any response.
func plaintextRefusedFinding(s *Snapshot, cfg *envoyadmin.ClusterConfig) (Finding, bool) {
	if !s.plaintextToMesh(cfg) {
		return Finding{}, false
	}
	r, ok := countRefusals(s, cfg)
	if !ok || !r.refused() {
		return Finding{}, false
	}
	name, host := cfg.Name.Raw, serviceHost(cfg.Name.Raw)
	svcName, ns := hostNameNamespace(host)
	share := r.share() * 100
	f := NewFinding(CodeTLSModeMismatch, ClusterSubject(name))
	f.Title = fmt.Sprintf("This proxy sends %s to %s and %.0f%% of the requests are cut off: its sidecars evidently require mTLS", modeWords(cfg.TLSMode), host, share)
	f.Evidence = append([]Evidence{{Label: "TLS mode of the cluster", Text: cfg.TLSMode, Source: "config_dump.json cluster " + name}}, r.ev...)
	f.Evidence = append(f.Evidence, Evidence{Label: "share of requests cut off before a response " + r.basis, Value: round(share, 1), Unit: UnitPercent, Source: r.source})
	if !r.fromLog {
		if n, ev := s.LogCount("requests to "+name+" cut off before a response in the access log", func(e *envoyadmin.AccessLogEntry) bool {
			return e.UpstreamCluster == name && isCutOff(e, cfg.TLSMode == envoyadmin.TLSModeSimple)
		}); n > 0 {
			f.Evidence = append(f.Evidence, ev)
		}
	}
	var why string
	if cfg.TLSMode == envoyadmin.TLSModeSimple {
		why = fmt.Sprintf("A DestinationRule sets tls.mode SIMPLE for %s, so this proxy speaks TLS to it without a client certificate. %.0f%% of the requests to it %s were cut off before any response: a sidecar that requires mTLS (PeerAuthentication STRICT) does that to a client that presents no certificate, closing the connection during or right after the handshake.", host, share, r.basis)
	} else {
		why = fmt.Sprintf("This proxy sends plaintext to %s: its cluster has no TLS. %s %.0f%% of the requests to it %s were cut off before any response (503 UC, connection_termination): a sidecar that requires mTLS (PeerAuthentication STRICT) does that to plaintext, closing the connection as soon as the request arrives because it matches none of its inbound filter chains. A keep-alive race, the other cause of UC, loses a few requests on reused connections, not nearly all.", host, plaintextOrigin(s, name), share, r.basis)
	}
	why += " This proxy cannot see the server's side: its PeerAuthentication is not in this proxy's config, and under a DestinationRule's TLS mode istiod leaves the tlsMode=istio label out of the endpoints, so they do not show whether the pods run a sidecar. If they run none, the application itself closes the connections: look at its logs and restarts instead."
	why += sidecarSubsetNote(s, name) + ownStrictNote(s, ns, host)
	f.Explanation = why
	f.Fix = Fix{
		Summary: fmt.Sprintf("Check that the pods of %s require mTLS (the commands below), then delete the tls block from the DestinationRule for %s so that auto mTLS sends mTLS to pods with a sidecar (and plaintext to any without), or set tls.mode ISTIO_MUTUAL if every pod has one.", host, host),
		Command: fmt.Sprintf("kubectl get peerauthentication -A    # STRICT in %s, or mesh-wide in istio-system\n%s    # the pods behind %s\nistioctl x describe pod <pod of %s> -n %s    # its PeerAuthentication and the DestinationRule that sets tls.mode %s",
			ns, endpointsCommand(name), svcName, svcName, ns, cfg.TLSMode),
		YAML: "# Edit the DestinationRule that sets tls.mode " + cfg.TLSMode + " for " + host + " (its name may differ): delete its tls block, or set:\n" +
			DestinationRuleYAML(host, "    tls:\n      mode: ISTIO_MUTUAL\n"),
	}
	addIstioPolicyEvidence(s, &f, name)
	f.Impact = r.rate
	return f, true
}

// plaintextOrigin says why a cluster to a Kubernetes service has no TLS: Istio's default there is
// auto mTLS, which the proxy's other service clusters may show is on.
func plaintextOrigin(s *Snapshot, cluster string) string {
	auto := false
	for _, c := range s.Config.Clusters {
		auto = auto || (c.Name.Raw != cluster && c.TLSMode == envoyadmin.TLSModeAuto && inMeshHost(c.Name.Raw))
	}
	if auto {
		return "Unless a DestinationRule sets a TLS mode, Istio gives a Kubernetes service auto mTLS, as this proxy's other service clusters show, so a DestinationRule sets tls.mode DISABLE for this one (the only other way to get no TLS here is a namespace- or mesh-wide PeerAuthentication DISABLE, from which istiod infers that the service takes plaintext)."
	}
	return "Unless a DestinationRule sets a TLS mode, Istio gives a Kubernetes service auto mTLS, so a DestinationRule sets tls.mode DISABLE for this one (the other ways to get no TLS here: enableAutoMtls: false in the mesh config, or a namespace- or mesh-wide PeerAuthentication DISABLE, from which istiod infers that the service takes plaintext)."
}

// sidecarSubsetNote reads the endpoints' tlsMode=istio metadata where istiod still sends it
// under a plaintext or SIMPLE cluster: a subset cluster whose subset has no tls of its own
// inherits the DestinationRule's top-level mode, while istiod judges the subset's endpoints by
// the subset's own policy, so without one by the pods' injection label and PeerAuthentication.
func sidecarSubsetNote(s *Snapshot, cluster string) string {
	if envoyadmin.ParseClusterName(cluster).Subset == "" || s.Config == nil {
		return ""
	}
	eps := clusterEndpoints(s.Config, cluster)
	sidecars := sidecarCount(eps)
	if sidecars == 0 {
		return ""
	}
	return fmt.Sprintf(" %d of the subset's %d endpoints still carry tlsMode=istio, which istiod sends for a subset without a tls setting of its own only when the pod has a sidecar whose PeerAuthentication is not DISABLE.", sidecars, len(eps))
}

// ownStrictNote adds this pod's own inbound mTLS mode when the upstream is in its namespace: a
// namespace- or mesh-wide PeerAuthentication STRICT would hold for both.
func ownStrictNote(s *Snapshot, ns, host string) string {
	podNS, _ := s.podRef()
	if s.Config == nil || ns == "" || ns != podNS {
		return ""
	}
	for _, l := range s.Config.Listeners {
		if l.Inbound && l.MTLSMode == "STRICT" {
			return fmt.Sprintf(" This pod's own inbound listener requires mTLS and %s is in the same namespace (%s): that fits a namespace- or mesh-wide PeerAuthentication STRICT, which would cover its pods too.", host, ns)
		}
	}
	return ""
}

func sidecarCount(eps []envoyadmin.Endpoint) int {
	n := 0
	for _, e := range eps {
		if e.TLSMode == "istio" {
			n++
		}
	}
	return n
}

// plaintextRaceNote is what a keep-alive race finding adds for a cluster that sends plaintext or
// one-way TLS to a service of the mesh: a sidecar that requires mTLS cuts such connections off
// with the same UC, but all of them.
func plaintextRaceNote(s *Snapshot, cluster string) string {
	cfg := s.ClusterConfig(cluster)
	if !s.plaintextToMesh(cfg) {
		return ""
	}
	note := fmt.Sprintf(" This proxy sends %s to %s (tls.mode %s): a sidecar that requires mTLS (PeerAuthentication STRICT) closes such connections with the same UC, but on every request", modeWords(cfg.TLSMode), serviceHost(cluster), cfg.TLSMode)
	r, ok := countRefusals(s, cfg)
	switch {
	case !ok:
		return note + ", and the evidence does not show what share of requests fail (an access log of errors only cannot), so check `kubectl get peerauthentication -A` first."
	case r.share() >= plaintextRefusedShare:
		return note + fmt.Sprintf("; here %.0f of %.0f requests %s failed, too few to tell the two apart, so check `kubectl get peerauthentication -A` first.", r.failed, r.total, r.basis)
	case r.interval || r.fromLog:
		return note + fmt.Sprintf("; here %.0f%% of requests fail %s, so that is not the cause, unless only some of its pods require mTLS (their addresses would then account for the failures).", r.share()*100, r.basis)
	}
	return note + fmt.Sprintf("; %.0f%% of requests failed %s, a share that a DestinationRule applied recently would still keep small: compare two stats samples to see the current share.", r.share()*100, r.basis)
}
