package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// ConnectFailureRule finds connections to an upstream that fail, and tells why from the access
// log's transport failure reason: refused (MESH0201), timed out or unreachable (MESH0202), TLS
// (MESH0203), or, with counters only, of unknown cause (MESH0204).
type ConnectFailureRule struct{}

// Meta describes the rule.
func (ConnectFailureRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "ConnectFailureRule",
		Description: "Connections to an upstream that fail (UF): refused, timed out or unreachable, or failing the TLS handshake.",
		Codes:       []Code{CodeConnectRefused, CodeConnectTimeout, CodeConnectTLS, CodeConnectFailure},
		AnyOf:       []Input{InputStats, InputAccessLog, InputUpstreams},
	}
}

// connectCause is why a connection failed, as the transport failure reason says.
type connectCause int

const (
	causeUnknown connectCause = iota
	causeRefused
	causeUnreachable
	causeTLS
)

var connectErrnoPattern = lazyregexp.New(`error:\s*(\d+)`)

// isConnectFailure matches a request that failed because its connection did: UF, or a reset
// reason or transport failure reason of a failed connect.
func isConnectFailure(e *envoyadmin.AccessLogEntry) bool {
	_, reason, tf := envoyadmin.ParseResponseCodeDetails(e.Details)
	return HasFlag(e, "UF") || reason == "connection failure" || reason == "connection timeout" || tf != "" || e.TransportFailure != ""
}

// connectFailureCause classifies a failed connect from its transport failure reason
// ("delayed connect error: 111", "TLS_error:...:CERTIFICATE_VERIFY_FAILED") or reset reason.
func connectFailureCause(e *envoyadmin.AccessLogEntry) (connectCause, string) {
	_, reason, tf := envoyadmin.ParseResponseCodeDetails(e.Details)
	text := e.TransportFailure
	if text == "" || text == "-" {
		text = strings.ReplaceAll(tf, "_", " ")
	}
	low := strings.ToLower(text)
	switch {
	case strings.Contains(low, "tls error") || strings.Contains(low, "tls_error") || strings.Contains(low, "certificate_verify_failed") ||
		strings.Contains(low, "wrong_version_number") || strings.Contains(low, "wrong version number") || strings.Contains(low, "ssl"):
		return causeTLS, text
	case strings.Contains(low, "refused"):
		return causeRefused, text
	case strings.Contains(low, "timed out") || strings.Contains(low, "no route to host") || strings.Contains(low, "unreachable"):
		return causeUnreachable, text
	}
	if m := connectErrnoPattern.FindStringSubmatch(low); m != nil {
		switch m[1] {
		case "111":
			return causeRefused, text
		case "110", "113", "101", "112":
			return causeUnreachable, text
		}
	}
	if reason == "connection timeout" {
		return causeUnreachable, "connection timeout"
	}
	return causeUnknown, text
}

// Check runs the rule.
func (ConnectFailureRule) Check(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range s.ClusterNames() {
		switch classifyCluster(c) {
		case kindService, kindInbound, kindPassthrough:
			out = append(out, connectFindings(s, c)...)
		case kindControlPlane:
			if f, ok := controlPlaneConnectFinding(s, c); ok {
				out = append(out, f)
			}
		}
	}
	return out
}

func connectFindings(s *Snapshot, c string) []Finding {
	k := newConnectCounts(s, c)
	logs := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool { return e.UpstreamCluster == c && isConnectFailure(e) })
	byCause, sample, dominant, most := logsByCause(logs)
	var out []Finding
	for _, cause := range []connectCause{causeRefused, causeUnreachable, causeTLS} {
		g := signal{logs: byCause[cause]}
		if cause == dominant && most > 0 {
			g.m, g.ok = k.fail.m, k.fail.ok
		}
		if cause == causeUnreachable && k.timeout.counted() {
			g.m, g.ok = k.timeout.m, true
		}
		if cause == causeTLS {
			var ok bool
			if g.logs, sample[causeTLS], ok = tlsFailures(s, c, byCause[causeTLS]); !ok {
				continue
			}
		}
		if !g.fires() {
			continue
		}
		f := connectCauseFinding(s, c, cause, g, sample[cause])
		if cause == causeUnreachable && k.timeout.counted() && k.fail.ok {
			f.Evidence = append(f.Evidence, k.fail.m.Evidence("connect failures of every cause (upstream_cx_connect_fail)"))
		}
		k.addHosts(s, c, &f, logs)
		out = append(out, f)
	}
	if most == 0 {
		// No log line names a cause: what the counters do not attribute to connect timeouts is
		// of unknown cause.
		rest := k.fail
		if k.timeout.ok && k.fail.ok {
			rest.m.Value -= k.timeout.m.Value
			rest.m.Rate -= k.timeout.m.Rate
		}
		rest.logs = byCause[causeUnknown]
		if rest.fires() {
			f := unknownConnectFinding(s, c, rest, k.timeout)
			k.addHosts(s, c, &f, logs)
			out = append(out, f)
		}
	}
	return out
}

// connectCounts are a cluster's connect failure counters: the cluster's, or without cluster
// stats the hosts' of /clusters summed.
type connectCounts struct {
	fail, timeout signal
	hostEv        []Evidence
	with, total   int
	fromHosts     bool
}

func newConnectCounts(s *Snapshot, c string) connectCounts {
	k := connectCounts{fail: s.clusterSignal(c, "upstream_cx_connect_fail", nil), timeout: s.clusterSignal(c, "upstream_cx_connect_timeout", nil)}
	k.hostEv, k.with, k.total = s.hostStat(c, "cx_connect_fail", "connect failures")
	k.fromHosts = !k.fail.ok && k.with > 0
	if k.fromHosts {
		// Without cluster stats, the per-host counters of /clusters still count failures, since
		// each host was added: no time base, so no rate and no strong severity (signal.severity).
		var sum float64
		for _, h := range s.Upstream(c).Hosts {
			sum += float64(h.Stats["cx_connect_fail"])
		}
		k.fail = signal{m: Measure{Value: sum, Since: hostAddedSince, Source: orDefault(s.UpstreamsFile, "clusters") + " cx_connect_fail summed over hosts"}, ok: true}
	}
	return k
}

// logsByCause groups the failing log lines by the cause they name, with a sample text of each,
// and the cause they name most: the counter counts every cause (connect timeouts too), and it
// goes with that one while the others stand on their log lines.
func logsByCause(logs []envoyadmin.AccessLogEntry) (map[connectCause][]envoyadmin.AccessLogEntry, map[connectCause]string, connectCause, int) {
	byCause := map[connectCause][]envoyadmin.AccessLogEntry{}
	sample := map[connectCause]string{}
	for i := range logs {
		cause, text := connectFailureCause(&logs[i])
		byCause[cause] = append(byCause[cause], logs[i])
		if sample[cause] == "" {
			sample[cause] = text
		}
	}
	dominant, most := causeUnknown, 0
	for _, cause := range []connectCause{causeRefused, causeUnreachable, causeTLS} {
		if n := len(byCause[cause]); n > most {
			dominant, most = cause, n
		}
	}
	return byCause, sample, dominant, most
}

// tlsFailures are the TLS failures this rule reports, with a sample text, or false when none
// is left: a TLS mode that cannot work with the endpoints, and handshakes answered in plaintext
// (WRONG_VERSION_NUMBER), are the MTLSRule's to report (MESH0802); TLS failures while the
// proxy's own certificate has expired are the CertExpiryRule's (MESH0902).
func tlsFailures(s *Snapshot, c string, logs []envoyadmin.AccessLogEntry) ([]envoyadmin.AccessLogEntry, string, bool) {
	if s.tlsModeMismatch(c) || s.expiredIdentity() {
		return nil, "", false
	}
	var out []envoyadmin.AccessLogEntry
	sample := ""
	for _, e := range logs {
		if isWrongVersion(&e) {
			continue
		}
		out = append(out, e)
		if sample == "" {
			_, sample = connectFailureCause(&e)
		}
	}
	return out, sample, len(out) > 0
}

// addHosts adds what the hosts say to a finding: how the per-host counts are to be read, how
// the failures spread over the hosts, and the hosts of the failing log lines.
func (k connectCounts) addHosts(s *Snapshot, c string, f *Finding, logs []envoyadmin.AccessLogEntry) {
	if k.fromHosts {
		for i := range f.Evidence {
			if f.Evidence[i].Source == k.fail.m.Source {
				f.Evidence[i].Label = "connect failures summed over the hosts (cx_connect_fail, each " + k.fail.m.Basis() + ")"
			}
		}
		f.Explanation += " The counts are /clusters per-host counters, cumulative since each host was added, and nothing says when they happened: they may all be old, so this is not reported as an error on them alone."
	}
	f.Explanation += unixSocketNote(s, c)
	f.Evidence = append(f.Evidence, k.hostEv...)
	if spread := hostSpread(k.with, k.total); spread != "" {
		f.Explanation += " " + spread
	}
	if hs := logHosts(logs); len(hs) > 0 && k.with == 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "upstream hosts in the failing log lines", Text: strings.Join(hs[:min(len(hs), maxListedHosts)], ", "), Source: "access.log upstream host"})
	}
}

// hostAddedSince is what /clusters per-host counters count since.
const hostAddedSince = "the host was added"

// unixSocketNote says what a connect failure to a unix domain socket host means.
func unixSocketNote(s *Snapshot, c string) string {
	u := s.Upstream(c)
	if u == nil {
		return ""
	}
	for _, h := range u.Hosts {
		if path, ok := strings.CutPrefix(h.Address, "unix://"); ok || strings.HasPrefix(h.Address, "/") {
			if !ok {
				path = h.Address
			}
			return fmt.Sprintf(" The host is a unix domain socket (%s), not a network address: connects to it fail when no process listens on that path in the pod (the process is not running, or the socket's volume is not shared with the proxy).", path)
		}
	}
	return ""
}

func connectCauseFinding(s *Snapshot, c string, cause connectCause, g signal, sample string) Finding {
	host := ServiceHost(c)
	kind := classifyCluster(c)
	cc := s.ClusterConfig(c)
	var f Finding
	switch cause {
	case causeRefused:
		f = NewFinding(CodeConnectRefused, ClusterSubject(c))
		f.Evidence = g.evidence(s, "connect failures of every cause (upstream_cx_connect_fail)", "access-log lines with UF and errno 111 (connection refused)")
		port := envoyadmin.ParseClusterName(c).Port
		switch kind {
		case kindInbound:
			f.Title = fmt.Sprintf("The application refuses the sidecar's connections on port %d (UF, 111)", port)
			f.Explanation = fmt.Sprintf("The sidecar's connections to the local application on port %d were refused (errno 111, ECONNREFUSED): nothing listens there on the pod's IP. Since Istio 1.10 the sidecar connects to the pod IP, not to 127.0.0.1, so an application that listens on 127.0.0.1 (or localhost) only refuses them; otherwise the Service's targetPort or the containerPort is not the port the application listens on, or the application was starting or shutting down.", port)
			f.Fix = Fix{
				Summary: fmt.Sprintf("Make the application listen on 0.0.0.0 (all interfaces) on port %d, not 127.0.0.1, and make the Service's targetPort the port it listens on; the command must show 0.0.0.0:%d or *:%d.", port, port, port),
				Command: s.proxyCommand("ss -ltn"),
			}
		case kindPassthrough:
			f.Title = "Connections to destinations outside the mesh are refused (UF, 111)"
			f.Explanation = "Destinations outside the service registry refused the connections (errno 111): nothing listens on the address and port the application calls."
			f.Fix = Fix{Summary: "Check the address and port the application calls; the log lines name the upstream host.", Command: s.proxyLogGrep("PassthroughCluster.*|UF")}
		default:
			f.Title = fmt.Sprintf("Connections to %s are refused (UF, 111)", host)
			f.Explanation = fmt.Sprintf("Connections to %s were refused (errno 111): the destination address answered with a TCP reset. A pod with a sidecar accepts connections through its sidecar, so refusals come from destinations without a sidecar whose application does not listen on that port (a wrong targetPort, or listening on 127.0.0.1 only), or from pods that are terminating or restarting.", host)
			cmds := []string{}
			if cmd := endpointsCommand(c); cmd != "" {
				name, ns := hostNameNamespace(host)
				cmds = append(cmds, cmd, fmt.Sprintf("kubectl get service -n %s %s -o jsonpath='{.spec.ports}'", ns, name))
			}
			f.Fix = Fix{
				Summary: "Make the Service's targetPort the port the pods listen on, and the pods listen on 0.0.0.0; if only terminating pods refuse, drain them gracefully (a preStop hook and terminationGracePeriodSeconds).",
				Command: orDefault(strings.Join(cmds, "\n"), s.proxyLogGrep("UF")),
			}
		}
	case causeUnreachable:
		f = NewFinding(CodeConnectTimeout, ClusterSubject(c))
		f.Title = fmt.Sprintf("Connections to %s time out or the host is unreachable (UF, 110/113)", host)
		f.Evidence = g.evidence(s, "connect timeouts (upstream_cx_connect_timeout)", "access-log lines with UF and errno 110/113 or a connect timeout")
		ct, src := defaultConnectTimeout, FileConfigDump+" cluster "+c+" connect_timeout (not set: Envoy's default)"
		if cc != nil && cc.ConnectTimeout > 0 {
			ct, src = cc.ConnectTimeout, FileConfigDump+" cluster "+c+" connect_timeout"
		}
		if cc != nil || s.Config != nil {
			f.Evidence = append(f.Evidence, Evidence{Label: "configured connect timeout", Value: millis(ct), Unit: UnitMillis, Source: src})
		}
		f.Explanation = fmt.Sprintf("The proxy's connection attempts to %s got no answer: the SYN timed out (errno 110), the host was unreachable (113), or nothing answered within the connect timeout of %s. Packets are dropped on the way: a NetworkPolicy that does not allow this pod to reach the destination port, a node that is down or partitioned, endpoints of pods that no longer exist, or a full conntrack table on a node.", host, ct)
		if kind == kindPassthrough {
			f.Explanation += " For destinations outside the mesh, also an egress firewall, or a NetworkPolicy that limits this pod's egress."
		}
		cmds := []string{}
		if _, ns := hostNameNamespace(host); ns != "" {
			cmds = append(cmds, "kubectl get networkpolicy -n "+ns)
		}
		if cmd := podByIPCommand(logHosts(g.logs)); cmd != "" && kind == kindService {
			cmds = append(cmds, cmd)
		}
		f.Fix = Fix{
			Summary: "Allow traffic from this pod to the destination port in the destination's NetworkPolicies, and check the nodes of the failing hosts; raising the connect timeout does not help when packets are dropped.",
			Command: orDefault(strings.Join(cmds, "\n"), s.proxyLogGrep("UF")),
		}
	case causeTLS:
		f = NewFinding(CodeConnectTLS, ClusterSubject(c))
		f.Title = fmt.Sprintf("The TLS handshake with %s fails while connecting (UF, TLS error)", host)
		f.Evidence = g.evidence(s, "connect failures of every cause (upstream_cx_connect_fail)", "access-log lines with UF and a TLS error")
		f.Evidence = append(f.Evidence, Evidence{Label: "transport failure reason", Text: sample, Source: "access.log %UPSTREAM_TRANSPORT_FAILURE_REASON%"})
		mode := ""
		if cc != nil {
			mode = cc.TLSMode
			f.Evidence = append(f.Evidence, Evidence{Label: "TLS mode the proxy uses to the upstream", Text: orDefault(mode, "unknown"), Source: FileConfigDump + " cluster " + c + " transport_socket"})
			if len(cc.SANs) > 0 {
				f.Evidence = append(f.Evidence, Evidence{Label: "names the upstream certificate must carry", Text: strings.Join(cc.SANs, ", "), Source: FileConfigDump + " cluster " + c + " match_subject_alt_names"})
			}
		}
		f.Explanation, f.Fix = tlsConnectExplanation(s, c, sample, mode)
	}
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	return f
}

// tlsConnectExplanation explains a TLS failure at connect from its error and the cluster's TLS
// mode, and says what to change.
func tlsConnectExplanation(s *Snapshot, c, sample, mode string) (string, Fix) {
	ns, pod := s.podRef()
	secrets := fmt.Sprintf("istioctl proxy-config secret -n %s %s", ns, pod)
	istio := mode == envoyadmin.TLSModeIstioMutual || mode == envoyadmin.TLSModeAuto
	if strings.Contains(strings.ToLower(sample), "certificate_verify_failed") {
		why := "The server's certificate is not trusted by this proxy or does not carry an expected name."
		switch {
		case istio:
			why += " Both sides take certificates from Istio, so they chain to different roots (a CA rotation or a plugged-in CA not yet everywhere, or clusters of a multi-cluster mesh with different roots), or something other than the sidecar terminates TLS on that port."
		case mode != "":
			why += " The DestinationRule's TLS settings (" + mode + ") do not fit the server: its caCertificates do not sign the server's certificate, or its sni / subjectAltNames do not match it."
		default:
			why += " Either the two sides' Istio roots differ, or a DestinationRule's caCertificates / subjectAltNames do not fit the server's certificate; the config dump would tell which."
		}
		return why, Fix{Summary: "Compare the root certificate this proxy trusts with the one that signed the server's certificate and make them the same root, or fix caCertificates / subjectAltNames in the DestinationRule.", Command: secrets}
	}
	why := "The TLS handshake with the upstream failed (" + sample + ")."
	if istio {
		why += " With Istio mTLS on both sides this is a certificate problem (an expired or not yet valid certificate, different roots) or a server that is not a sidecar on that port."
	} else if mode != "" {
		why += " The DestinationRule sets " + mode + "; the server's TLS settings (protocol versions, ciphers, a client certificate it requires) do not fit it."
	}
	return why, Fix{Summary: "Look at the TLS errors' detail and the certificates both sides hold; make the DestinationRule's tls settings match what the server accepts.", Command: s.proxyLogGrep("TLS_error") + "\n" + secrets}
}

func unknownConnectFinding(s *Snapshot, c string, g, timeout signal) Finding {
	f := NewFinding(CodeConnectFailure, ClusterSubject(c))
	f.Title = fmt.Sprintf("Connections to %s fail, cause not recorded (UF)", ServiceHost(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	label := "connect failures (upstream_cx_connect_fail)"
	if timeout.ok && g.ok {
		label = "connect failures other than timeouts (upstream_cx_connect_fail - upstream_cx_connect_timeout)"
	}
	f.Evidence = g.evidence(s, label, "access-log lines with UF and no transport failure reason")
	why := []string{fmt.Sprintf("The proxy failed to connect to %s, but no evidence says why.", ServiceHost(c))}
	if m, ok := s.ClusterCounter(c, "ssl_connection_error"); ok && m.Value > 0 {
		f.Evidence = append(f.Evidence, m.Evidence("TLS connection errors (ssl.connection_error)"))
		if s.expiredIdentity() {
			why = append(why, "The cluster also counts TLS connection errors, and this proxy's own certificate has expired, so these are most likely its handshakes being refused (see MESH0902).")
		} else {
			why = append(why, "The cluster also counts TLS connection errors, so some of these failures are probably TLS handshakes (see the mTLS findings).")
		}
	}
	why = append(why, "What would tell the causes apart: the access log's transport failure reason (%UPSTREAM_TRANSPORT_FAILURE_REASON%: 111 is refused, 110/113 unreachable, TLS_error a TLS mismatch), or the \"transport failure reason\" in the 503 body the caller receives, and upstream_cx_connect_timeout for timeouts.")
	switch {
	case s.Stats == nil:
		why = append(why, "There are no stats either, whose upstream_cx_connect_timeout would count the timeouts.")
	case !timeout.ok:
		why = append(why, "upstream_cx_connect_timeout is not in the stats either.")
	}
	f.Explanation = strings.Join(why, " ")
	ns, _ := s.podRef()
	f.Fix = Fix{
		Summary: "Turn on access logging for this namespace (Istio's default format records the transport failure reason), reproduce the failure and run kubectl-mesh again.",
		YAML:    fmt.Sprintf("apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata:\n  name: access-logs\n  namespace: %s\nspec:\n  accessLogging:\n  - providers:\n    - name: envoy\n    filter:\n      expression: response.code >= 400", ns),
		Command: s.proxyCommand("pilot-agent request GET clusters") + fmt.Sprintf(" | grep -F '%s::' | grep cx_connect_fail", c),
	}
	return f
}

// controlPlaneConnectFinding reports connect failures of the proxy's xDS/SDS connection, over a
// window only: a few failures while the proxy starts are normal, ongoing ones are not.
func controlPlaneConnectFinding(s *Snapshot, c string) (Finding, bool) {
	m, ok := s.ClusterCounter(c, "upstream_cx_connect_fail")
	if !ok || !m.Interval || m.Value < minWindowEvents {
		return Finding{}, false
	}
	f := NewFinding(CodeConnectFailure, ClusterSubject(c))
	f.Title = fmt.Sprintf("The proxy cannot connect to its control plane (%s)", c)
	f.Evidence = []Evidence{m.Evidence("connect failures (upstream_cx_connect_fail)")}
	f.Impact = 0
	f.Explanation = fmt.Sprintf("%s is the proxy's own connection for configuration (xds-grpc) or certificates (sds-grpc); in Istio it goes to pilot-agent in the same container, which relays to istiod. It failed during the window, so the proxy works on with what it last received: new endpoints, routes or certificates do not arrive until it reconnects.", c)
	f.Fix = Fix{Summary: "Check that istiod is running and reachable from the pod, and what pilot-agent logs about the connection.", Command: s.proxyLogGrep("xds|sds|connection error") + "\nistioctl proxy-status"}
	return f, true
}
