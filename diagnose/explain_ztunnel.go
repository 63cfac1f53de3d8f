package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// ztunnelEvent is one problem ztunnel or the istio-cni agent reported: a log line in one of
// ztunnel's formats, or one of their error texts standing alone.
type ztunnelEvent struct {
	N    int // the input's line
	Kind ztunnel.Kind
	Line ztunnel.Line // zero for an error text alone
	Text string
}

// ztunnelLines reads the ambient data path's lines out of text: it returns the problems and the
// numbers of every line that was ztunnel's or istio-cni's, healthy ones included, which the
// Envoy readings must leave alone.
func ztunnelLines(text string) ([]ztunnelEvent, map[int]bool) {
	var events []ztunnelEvent
	known := map[int]bool{}
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		if l, ok := ztunnel.ParseLine(raw); ok {
			known[n] = true
			if k := l.Kind(); k != "" && k != ztunnel.Other {
				events = append(events, ztunnelEvent{N: n, Kind: k, Line: l, Text: strings.TrimSpace(raw)})
			}
			continue
		}
		if k, ok := ztunnel.Classify(raw); ok {
			known[n] = true
			events = append(events, ztunnelEvent{N: n, Kind: k, Text: strings.TrimSpace(raw)})
		}
	}
	return events, known
}

// ztunnelKnowledge says what each kind means and how to fix it.
var ztunnelKnowledge = map[ztunnel.Kind]struct {
	code Code
	// title replaces the code's catalog title where the code is shared with Envoy's readings.
	title   string
	meaning string
	fix     func(c ztCtx) Fix
}{
	ztunnel.HBONEBlocked: {CodeHBONEBlocked, "",
		"In ambient mode ztunnel carries a pod's connection to the destination pod (or its waypoint) through an HBONE tunnel, mTLS over HTTP/2 CONNECT on the destination's port 15008, and that connection timed out: something between the two drops port 15008 (ztunnel says so itself since 1.23: \"maybe a NetworkPolicy is blocking HBONE port 15008\"). A NetworkPolicy that selects the destination pods and admits only the application's port blocks ambient traffic, since it arrives on 15008; so do firewalls or security groups between nodes that pass only known ports.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Admit TCP port 15008 wherever the application's port is admitted: in the ingress rules of the NetworkPolicies that select " + c.dst() + ", and between nodes in firewalls and security groups.",
				Command: c.cmd("kubectl get networkpolicy -n %s -o yaml", c.dstNS)}
		}},
	ztunnel.Timeout: {CodeConnectTimeout, "ztunnel's connections to the destination time out",
		"ztunnel's connection timed out: the destination did not answer. Its pod may be gone or its node unreachable, or a NetworkPolicy or firewall drops the traffic.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check that " + c.dst() + " runs and is reachable from the source's node, and the NetworkPolicies and firewalls on the way."}
		}},
	ztunnel.Refused: {CodeConnectRefused, "The destination refuses the connections ztunnel opens to it (nothing listens on the port)",
		"The destination refused the connection ztunnel opened to the application's port (dst.hbone_addr): nothing listens there. The application listens on another port than the Service's targetPort, only on 127.0.0.1, or is starting or stopping. ztunnel resets the caller's connection, so the caller sees a reset rather than a refusal.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Make the application of " + c.dst() + " listen on 0.0.0.0 (or the pod IP) on the port the Service's targetPort names, and keep pods serving until they are removed from the endpoints (preStop)."}
		}},
	ztunnel.PolicyDenied: {CodeAuthzDenied, "ztunnel closes connections an AuthorizationPolicy does not allow (L4)",
		"An AuthorizationPolicy refused the connection in ztunnel, at L4: \"allow policies exist, but none allowed\" means an ALLOW policy selects the workload and none of its rules matches this source; \"explicitly denied by NAMESPACE/NAME\" names a DENY policy. The caller's connection is reset (curl exits with 56), with no 403: a 403 comes only from a waypoint's L7 policy. A source with no mesh identity (kubelet probes, pods outside the mesh, traffic through a NodePort or load balancer) matches no rule on principals or namespaces.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Add a rule for this source to the ALLOW policy that selects " + c.dst() + ", or remove the DENY policy the error names. Rules on paths, methods or headers need a waypoint.",
				Command: c.cmd("kubectl get authorizationpolicy -n %s -o yaml", c.dstNS)}
		}},
	ztunnel.NoDestination: {CodeNoHealthyUpstream, "ztunnel has no healthy endpoint, workload or waypoint for the destination",
		"ztunnel had nowhere to send the connection: no healthy endpoint, workload, service or waypoint it knows for the destination. The Service has no ready endpoints, the waypoint it must use does not exist or is not ready, or ztunnel has not received the workloads from istiod.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check that the destination has ready endpoints, that the waypoint it uses exists and is programmed (kubectl get gateways -A), and what ztunnel knows of it.",
				Command: "istioctl ztunnel-config services; istioctl ztunnel-config workloads"}
		}},
	ztunnel.UnknownSource: {CodeZtunnelUnawareOfPod, "ztunnel does not know the workload its connections come from",
		"ztunnel did not find the workload a connection comes from in what istiod sent it (\"failed to fetch information about local workload\"): istiod has not pushed the pod to this ztunnel yet, cannot reach it, or does not see the pod as ambient. The connection is refused.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check that istiod reaches this ztunnel (its log: xDS errors) and that the source pod is enrolled (ambient.istio.io/redirection: enabled).",
				Command: "istioctl ztunnel-config workloads"}
		}},
	ztunnel.IdentityFailed: {CodeCertUnobtainable, "ztunnel cannot get workload certificates: the CA refuses its requests on their behalf",
		"ztunnel asks istiod's CA for a certificate for each workload on its node, on that workload's behalf, and the CA refused (\"request impersonation authentication failure\"): istiod lets only ztunnel's own ServiceAccount do this, istio-system/ztunnel unless configured otherwise (CA_TRUSTED_NODE_ACCOUNTS). ztunnel installed in another namespace or under another name, or an external CA that does not allow it, gets this; the workloads then have no certificate and no mTLS connection opens.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Install ztunnel in the namespace and under the name istiod trusts, or tell istiod its real ones: the istiod chart's trustedZtunnelNamespace and trustedZtunnelName values (which set CA_TRUSTED_NODE_ACCOUNTS)."}
		}},
	ztunnel.PeerCertificate: {CodeTLSHandshakeErrors, "The HBONE tunnel's mTLS handshake fails on the peer's certificate",
		"The mTLS handshake of the HBONE tunnel failed on the peer's certificate: UnknownIssuer means it was signed by a root this side does not trust (two control planes or CAs, a rotated root, an intermediate CA whose chain is incomplete); a SAN error means the peer is not the identity ztunnel expected for that address.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Make both sides trust the same root (one CA for the mesh, or both roots in the trust bundle while rotating), and check the identity of the workload at the destination address (istioctl ztunnel-config workloads)."}
		}},
	ztunnel.HBONEProtocol: {CodeHBONEProtocol, "",
		"ztunnel opened an HBONE tunnel to port 15008 and the peer did not answer as an HBONE server (an HTTP/2 GOAWAY during the handshake): something other than ztunnel or a waypoint of a compatible release listens there, such as a sidecar-injected pod or a different mesh release.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check what serves the destination " + c.dst() + ": an ambient pod behind ztunnel, or a waypoint of the same Istio release; a sidecar-injected destination is reached through its sidecar, not HBONE."}
		}},
	ztunnel.ControlPlane: {CodeControlPlaneUnreachable, "ztunnel cannot reach istiod (xDS)",
		"ztunnel cannot reach istiod (its xDS stream on port 15012 fails): without it ztunnel learns no new workloads, services or policies and cannot renew certificates, and it stays not ready after a restart. The error says why: a DNS failure for istiod's name, a refused or timed-out TCP connection, or a TLS failure on istiod's certificate.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check that istiod runs, that ztunnel's node can resolve and reach istiod.istio-system.svc:15012, and that ztunnel trusts istiod's root (the istio-ca-root-cert ConfigMap).",
				Command: "kubectl get pods -n istio-system -l app=istiod"}
		}},
	ztunnel.NotEnrolled: {CodeAmbientNotEnrolled, "",
		"The pod's traffic is not taken into the ambient mesh: the istio-cni node agent could not hand the pod to ztunnel (\"no ztunnel connection\": ztunnel is not running or not ready on the node, or its socket /var/run/ztunnel/ztunnel.sock is missing), or ztunnel could not start the pod's in-pod proxy (for example its DNS proxy cannot bind [::1]:15053 when IPv6 is off in the pod). Until it is enrolled the pod's connections bypass the mesh, or fail.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Check ztunnel and istio-cni on the pod's node, fix what their logs say, then restart the pod so istio-cni enrolls it again.",
				Command: "kubectl get pods -A -o wide -l app=ztunnel\nkubectl get pods -A -o wide -l k8s-app=istio-cni-node"}
		}},
	ztunnel.Reset: {CodeRemoteReset, "Connections carried by ztunnel end early (broken pipes, disconnects, drains)",
		"A connection carried by ztunnel ended early: a broken pipe, one side disconnected before all data was written, or a drain when ztunnel or a pod shut down. Alone it is often a client giving up or a pooled HBONE connection closing; many of them point at the side that closes.",
		func(c ztCtx) Fix {
			return Fix{Summary: "Look at the side that closed: the destination's application logs and restarts of " + c.dst() + ", and ztunnel's restarts on the nodes."}
		}},
}

// ztCtx is what a ztunnel line says about the connection.
type ztCtx struct{ dstWorkload, dstNS, dstSvc, dstAddr string }

func (c ztCtx) dst() string {
	switch {
	case c.dstWorkload != "" && c.dstNS != "":
		return c.dstNS + "/" + c.dstWorkload
	case c.dstSvc != "":
		return c.dstSvc
	case c.dstAddr != "":
		return c.dstAddr
	}
	return "the destination"
}

// cmd fills a command with a namespace, shell-quoted, or NAMESPACE when the line names none.
func (c ztCtx) cmd(format, ns string) string {
	if !kubeName(ns) {
		return fmt.Sprintf(format, "NAMESPACE")
	}
	return fmt.Sprintf(format, shellQuote(ns))
}

// ztunnelFindings explains the problems, one finding per kind, in the order their kinds first
// appear.
func ztunnelFindings(events []ztunnelEvent, source func(int) string) []Finding {
	var order []ztunnel.Kind
	byKind := map[ztunnel.Kind][]ztunnelEvent{}
	for _, e := range events {
		if _, ok := ztunnelKnowledge[e.Kind]; !ok {
			continue
		}
		if byKind[e.Kind] == nil {
			order = append(order, e.Kind)
		}
		byKind[e.Kind] = append(byKind[e.Kind], e)
	}
	var out []Finding
	for _, k := range order {
		evs := byKind[k]
		know := ztunnelKnowledge[k]
		first := evs[0].Line.Fields
		c := ztCtx{dstWorkload: first["dst.workload"], dstNS: first["dst.namespace"], dstSvc: first["dst.service"], dstAddr: first["dst.hbone_addr"]}
		if c.dstAddr == "" {
			c.dstAddr = first["dst.addr"]
		}
		f := NewFinding(know.code, Subject{Kind: SubjectProxy, Name: "ztunnel"})
		if know.title != "" {
			f.Title = know.title
		}
		ztunnelSeverity(k, &f)
		f.Evidence = append(f.Evidence, Evidence{Label: "ztunnel and istio-cni lines of this kind", Value: float64(len(evs)), Unit: UnitCount, Source: source(evs[0].N)})
		for i, e := range evs {
			if i == maxQuotedLogLines {
				break
			}
			text := e.Line.Error()
			if text == "" {
				text = e.Text
			}
			f.Evidence = append(f.Evidence, Evidence{Label: "ztunnel", Text: clip(text, 300), Source: source(e.N)})
		}
		f.Explanation = know.meaning
		f.Fix = know.fix(c)
		out = append(out, f)
	}
	return out
}

// ztunnelSeverity sets a finding's severity for what ztunnel saw: an early end is often a
// client giving up; a policy rejection closed the whole connection.
func ztunnelSeverity(k ztunnel.Kind, f *Finding) {
	switch k {
	case ztunnel.Reset:
		f.Severity = SeverityWarning
	case ztunnel.PolicyDenied:
		f.Severity = SeverityError // ztunnel closed the connection: nothing of it got through
	}
}
