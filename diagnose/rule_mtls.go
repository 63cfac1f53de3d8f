package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Thresholds of the mTLS rule.
const (
	// tlsMinFailures: fewer failed handshakes than this, over the window or since start, are
	// noise (a client that gave up mid-handshake, a port scan).
	tlsMinFailures = 5
	// tlsMinFailureShare: failures below this share of all handshakes are not reported.
	tlsMinFailureShare = 0.01
	// tlsFailureShareError: from this share of failed handshakes on, the finding is an error.
	tlsFailureShareError = 0.10
	// mismatchMinCumulative: since-start failures needed to back a mode mismatch.
	mismatchMinCumulative = 5
	// mismatchMinShare: mTLS toward pods without a sidecar fails every connection; below this
	// share of the cluster's requests it is reported as a warning that most endpoints accept it.
	mismatchMinShare = 0.25
)

// tlsStatLabels names Envoy's per-cluster and per-listener TLS counters, failures first.
var tlsStatLabels = []struct{ stat, label string }{
	{"ssl_connection_error", "TLS handshakes failed (ssl.connection_error)"},
	{"ssl_fail_verify_error", "peer certificates not trusted (ssl.fail_verify_error)"},
	{"ssl_fail_verify_san", "peer certificates with an unexpected identity (ssl.fail_verify_san)"},
	{"ssl_fail_verify_no_cert", "peers that sent no certificate (ssl.fail_verify_no_cert)"},
	{"ssl_fail_verify_cert_hash", "peer certificates failing the pinned hash (ssl.fail_verify_cert_hash)"},
}

const tlsHandshakeStat = "ssl_handshake"

// MTLSRule finds TLS handshakes that fail, clients and servers that disagree on mTLS, and
// plaintext traffic that a PERMISSIVE listener still accepts.
type MTLSRule struct{}

// Meta describes the rule.
func (MTLSRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "MTLSRule",
		Description: "Finds failing TLS handshakes (per upstream and per listener), clients and servers that disagree on mTLS, and plaintext requests a PERMISSIVE listener still accepts.",
		Codes:       []Code{CodeTLSHandshakeErrors, CodeTLSModeMismatch, CodePlaintextInbound},
		AnyOf:       []Input{InputStats, InputConfig, InputAccessLog},
	}
}

// Check runs the rule.
func (MTLSRule) Check(s *Snapshot) []Finding {
	mismatches := clusterModeMismatches(s)
	var out []Finding
	out = append(out, clusterTLSFailures(s, mismatches)...)
	out = append(out, listenerTLSFailures(s)...)
	out = append(out, mismatches...)
	out = append(out, wrongVersionMismatches(s, mismatches)...)
	out = append(out, inboundStrictRejections(s)...)
	out = append(out, plaintextInbound(s)...)
	return out
}

// tlsTally adds up the TLS counters of one cluster or listener.
type tlsTally struct {
	failed, ok, rate float64
	evidence         []Evidence
	worst            string // the failure counter with the most events
}

func readTLSTally(read func(stat string) (Measure, bool)) tlsTally {
	var t tlsTally
	worstN := 0.0
	for _, sl := range tlsStatLabels {
		m, ok := read(sl.stat)
		if !ok || m.Value <= 0 {
			continue
		}
		t.failed += m.Value
		t.rate += m.Rate
		t.evidence = append(t.evidence, m.Evidence(sl.label))
		if m.Value > worstN {
			t.worst, worstN = sl.stat, m.Value
		}
	}
	if m, ok := read(tlsHandshakeStat); ok {
		t.ok = m.Value
		t.evidence = append(t.evidence, m.Evidence("successful TLS handshakes (ssl.handshake)"))
	}
	return t
}

func (t tlsTally) share() float64 { return t.failed / (t.failed + t.ok) }

func (t tlsTally) fires() bool { return t.failed >= tlsMinFailures && t.share() >= tlsMinFailureShare }

func (t tlsTally) finding(subject Subject, where string) Finding {
	f := NewFinding(CodeTLSHandshakeErrors, subject)
	f.Title = fmt.Sprintf("%.0f%% of TLS handshakes %s fail", t.share()*100, where)
	f.Evidence = append(t.evidence, Evidence{Label: "failed share of handshakes", Value: round(t.share()*100, 1), Unit: UnitPercent, Source: "computed from the counters above"})
	if t.share() < tlsFailureShareError {
		f.Severity = SeverityWarning
	}
	f.Impact = t.rate
	return f
}

// clusterTLSFailures reports failing handshakes per upstream, except where a more specific
// finding explains them: a TLS mode mismatch of this rule, the ConnectFailureRule's TLS errors
// from the access log (MESH0203), or an expired certificate of the proxy's own (MESH0902).
func clusterTLSFailures(s *Snapshot, mismatches []Finding) []Finding {
	if s.expiredIdentity() {
		return nil
	}
	explained := map[string]bool{}
	for _, f := range mismatches {
		explained[f.Subject.Name] = true
	}
	for _, e := range s.AccessLog {
		if HasFlag(&e, "UF") && strings.Contains(strings.ToUpper(e.TransportFailure+" "+e.Details), "TLS") && !isWrongVersion(&e) {
			explained[e.UpstreamCluster] = true
		}
	}
	var out []Finding
	for _, c := range statsClusterNames(s) {
		t := readTLSTally(func(stat string) (Measure, bool) { return s.ClusterCounter(c, stat) })
		if !t.fires() || explained[c] {
			continue
		}
		f := t.finding(ClusterSubject(c), "to "+ServiceHost(c))
		cfg := s.ClusterConfig(c)
		if cfg != nil && cfg.TLSMode != "" {
			f.Evidence = append(f.Evidence, Evidence{Label: "TLS mode of the cluster", Text: cfg.TLSMode, Source: "config_dump.json cluster " + c})
		}
		why := map[string]string{
			"ssl_connection_error":      "The handshake failed before any certificate was checked: the upstream answered with something other than TLS (no sidecar, or a port excluded from the mesh), offered no common TLS version or cipher, or closed the connection.",
			"ssl_fail_verify_error":     "The upstream's certificate is not signed by a root this proxy trusts: the two sides have different roots (a CA change not yet rolled out to every pod, or a service of another mesh or cluster without a shared root).",
			"ssl_fail_verify_san":       "The upstream's certificate is trusted but names another identity than this cluster accepts" + sanList(cfg) + ": its pods run under another service account than the DestinationRule's subjectAltNames or the ServiceEntry name, or the trust domain changed.",
			"ssl_fail_verify_no_cert":   "The upstream sent no certificate at all, so it is not a mesh sidecar.",
			"ssl_fail_verify_cert_hash": "The upstream's certificate does not match the hash this cluster pins.",
		}
		f.Explanation = "This proxy starts TLS to " + c + ". " + why[t.worst]
		ns, pod := s.podRef()
		cmd := fmt.Sprintf("istioctl proxy-config secret %s -n %s    # this proxy's ROOTCA and identity", pod, ns)
		if ep := endpointsCommand(c); ep != "" {
			cmd += "\n" + ep + "\nistioctl proxy-config secret <upstream-pod> -n <upstream-namespace>    # compare the ROOTCA serial numbers"
		}
		f.Fix = Fix{Summary: "Compare the two sides' root certificates and the identity the upstream presents with what this cluster expects.", Command: cmd}
		out = append(out, f)
	}
	return out
}

func sanList(cfg *envoyadmin.ClusterConfig) string {
	if cfg == nil || len(cfg.SANs) == 0 {
		return ""
	}
	return " (" + strings.Join(cfg.SANs, ", ") + ")"
}

// statsClusterNames lists the clusters that have stats in either sample.
func statsClusterNames(s *Snapshot) []string {
	seen := map[string]bool{}
	var out []string
	for _, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss == nil {
			continue
		}
		for _, c := range sortedKeys(ss.Clusters) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// tlsListenerIDs lists the listener stat scopes ("0_0_0_0_15006") that have TLS counters.
func tlsListenerIDs(s *Snapshot) []string {
	ss := s.latestStats()
	if ss == nil {
		return nil
	}
	ids := map[string]bool{}
	for k := range ss.Stats {
		if !strings.HasPrefix(k, "listener_") || strings.HasPrefix(k, "listener_manager_") {
			continue
		}
		if i := strings.Index(k, "_ssl_"); i > len("listener_") {
			ids[k[len("listener_"):i]] = true
		}
	}
	return sortedKeys(ids)
}

func listenerTLSFailures(s *Snapshot) []Finding {
	if s.expiredIdentity() {
		return nil // the proxy's own expired certificate explains them (MESH0902)
	}
	var out []Finding
	for _, id := range tlsListenerIDs(s) {
		t := readTLSTally(func(stat string) (Measure, bool) { return s.Counter("listener_" + id + "_" + stat) })
		if !t.fires() {
			continue
		}
		addr := listenerAddress(id)
		f := t.finding(Subject{Kind: SubjectListener, Name: addr}, "on listener "+addr)
		why := map[string]string{
			"ssl_connection_error":      "Callers' handshakes failed before any certificate was checked: they offered no common TLS version or cipher, spoke something else than TLS, or closed the connection mid-handshake.",
			"ssl_fail_verify_error":     "Callers presented certificates this proxy does not trust: signed by another root. This follows a root CA change that not every pod has picked up yet, or callers from another mesh or cluster without a shared root.",
			"ssl_fail_verify_san":       "Callers presented certificates whose identity this listener does not accept.",
			"ssl_fail_verify_no_cert":   "Callers connected with TLS but sent no client certificate, while this listener requires one (mTLS). Mesh sidecars always present theirs, so these callers are outside the mesh and do TLS themselves, or reach the pod through a DestinationRule with tls.mode SIMPLE.",
			"ssl_fail_verify_cert_hash": "Callers' certificates do not match the hash this listener pins.",
		}
		f.Explanation = "This proxy terminates TLS on " + addr + ". " + why[t.worst]
		ns, pod := s.podRef()
		f.Fix = Fix{
			Summary: "Find the failing callers and give them a sidecar, or certificates from this mesh's root.",
			Command: fmt.Sprintf("istioctl x describe pod %s -n %s    # the PeerAuthentication in effect\nistioctl proxy-config secret %s -n %s    # the ROOTCA callers must share", pod, ns, pod, ns),
		}
		out = append(out, f)
	}
	return out
}

// listenerAddress turns a canonical listener stat scope ("0_0_0_0_15006") back into an address.
func listenerAddress(id string) string {
	parts := strings.Split(id, "_")
	if len(parts) == 5 && allDigits(parts) {
		return strings.Join(parts[:4], ".") + ":" + parts[4]
	}
	return id
}

func allDigits(parts []string) bool {
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}
