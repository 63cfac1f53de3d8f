package ztunnel

import (
	"sort"
	"strings"
)

// Kind is what a ztunnel or istio-cni error means.
type Kind string

// The kinds, from ztunnel's Error (src/proxy.rs) and the istio-cni agent's messages.
const (
	// HBONEBlocked: the connection to the peer's port 15008 timed out, which ztunnel itself
	// attributes to a NetworkPolicy or firewall blocking HBONE.
	HBONEBlocked Kind = "hbone-blocked"
	// Timeout: a connection timed out elsewhere than toward port 15008.
	Timeout Kind = "timeout"
	// Refused: the destination refused the connection (nothing listens on the port).
	Refused Kind = "refused"
	// PolicyDenied: an AuthorizationPolicy rejected the connection at L4 (ztunnel) or a peer or
	// waypoint answered the HBONE CONNECT with 401 or 403.
	PolicyDenied Kind = "policy-denied"
	// NoDestination: ztunnel knows no healthy endpoint, workload, service or waypoint to send
	// the connection to.
	NoDestination Kind = "no-destination"
	// UnknownSource: ztunnel does not know the workload a connection comes from (istiod has
	// not sent it).
	UnknownSource Kind = "unknown-source"
	// IdentityFailed: ztunnel could not get a certificate for a workload from the CA.
	IdentityFailed Kind = "identity"
	// PeerCertificate: the peer's certificate was not trusted or not the identity expected.
	PeerCertificate Kind = "peer-certificate"
	// HBONEProtocol: the peer on port 15008 does not speak HBONE (HTTP/2 CONNECT over mTLS).
	HBONEProtocol Kind = "hbone-protocol"
	// ControlPlane: ztunnel cannot reach istiod (xDS).
	ControlPlane Kind = "control-plane"
	// NotEnrolled: istio-cni could not hand the pod to ztunnel, or ztunnel could not start the
	// pod's in-pod proxy: the pod's traffic is not carried by the mesh.
	NotEnrolled Kind = "not-enrolled"
	// Reset: a connection ended early (broken pipe, a side disconnected, a drain).
	Reset Kind = "reset"
	// Other is an error ztunnel reported that none of the above explains.
	Other Kind = "other"
)

// patterns are ztunnel's and istio-cni's error texts, in the order they are tried: the more
// specific first ("maybe a NetworkPolicy is blocking HBONE port 15008: deadline has elapsed"
// before "deadline has elapsed").
var patterns = []struct {
	text string
	kind Kind
}{
	{"maybe a networkpolicy is blocking hbone port 15008", HBONEBlocked},
	{"connection closed due to policy rejection", PolicyDenied},
	{"connection closed due to policy change", PolicyDenied},
	{"http status: 401", PolicyDenied},
	{"http status: 403", PolicyDenied},
	{"failed to fetch information about local workload", UnknownSource},
	{"unknown source", UnknownSource},
	{"no healthy upstream", NoDestination},
	{"unknown waypoint", NoDestination},
	{"unknown network gateway", NoDestination},
	{"no service or workload for hostname", NoDestination},
	{"no endpoints for workload", NoDestination},
	{"no valid routing destination", NoDestination},
	{"no service for target address", NoDestination},
	{"cannot resolve port", NoDestination},
	{"no ip addresses were resolved for workload", NoDestination},
	{"http status: 503", NoDestination},
	{"identity error", IdentityFailed},
	{"request impersonation authentication failure", IdentityFailed},
	{"request authenticate failure", IdentityFailed},
	{"failed to fetch certificate", IdentityFailed},
	{"impersonation failed", IdentityFailed},                 // istiod's CA refusing ztunnel
	{"failed to match uris with identities", IdentityFailed}, // istio-csr refusing ztunnel
	{"invalid peer certificate", PeerCertificate},
	{"peer did not present the expected san", PeerCertificate},
	{"tls handshake error", PeerCertificate},
	{"tls handshake failed", PeerCertificate},
	{"error in hbone connection handshake", HBONEProtocol},
	{"http2 handshake failed", HBONEProtocol},
	{"h2 failed", HBONEProtocol},
	{"xds client connection error", ControlPlane},
	{"no ztunnel connection", NotEnrolled},
	{"/var/run/ztunnel/ztunnel.sock", NotEnrolled},
	{"was not enrolled", NotEnrolled},
	{`plugin type="istio-cni"`, NotEnrolled}, // the kubelet: the istio-cni plugin failed for a pod
	{"failed to start proxy", NotEnrolled},
	{"retrying workload failed", NotEnrolled},
	{"connection refused (os error 111)", Refused},
	{"deadline has elapsed", Timeout},
	{"connection timed out", Timeout},
	{"broken pipe", Reset},
	{"disconnected before all data was written", Reset},
	{"connection closed due to connection drain", Reset},
	{"connection failed to drain within the timeout", Reset},
	{"pool draining", Reset},
}

// Classify says what an error text of ztunnel's or istio-cni's means; false when it holds
// none of their texts.
func Classify(text string) (Kind, bool) {
	t := strings.ToLower(text)
	for _, p := range patterns {
		if strings.Contains(t, p.text) {
			return p.kind, true
		}
	}
	return "", false
}

// Kind says what the line reports: the kind of its error, with a timeout toward port 15008
// read as HBONE blocked (ztunnel before 1.23 did not say so itself); Other for an error of no
// known kind; "" for a line that reports no problem.
func (l Line) Kind() Kind {
	e := l.Error()
	if e == "" {
		return ""
	}
	k, ok := Classify(e)
	if !ok {
		if l.Access() || l.Level == "error" {
			return Other
		}
		return ""
	}
	switch {
	case k == Timeout && strings.HasSuffix(l.Fields["dst.addr"], ":15008"):
		return HBONEBlocked
	case k == Reset && strings.HasPrefix(l.Target, "xds"):
		return "" // istiod closes xDS streams now and then (max connection age): ztunnel reconnects
	}
	return k
}

// flagKinds are the response_flags of ztunnel's connection metrics (ztunnel 1.30.3's
// ResponseFlags: DENY and CONNECT since 1.24, the others since 1.29) and what they mean.
var flagKinds = map[string]Kind{
	"DENY":                 PolicyDenied,
	"CONNECT":              Refused,
	"NETWORK_POLICY":       HBONEBlocked,
	"TLS_FAILURE":          PeerCertificate,
	"H2_HANDSHAKE_FAILURE": HBONEProtocol,
	"IDENTITY_ERROR":       IdentityFailed,
}

// FlagKind says what a response_flags value of ztunnel's metrics means; false for "-" (no
// failure) and values it does not know.
func FlagKind(flag string) (Kind, bool) {
	k, ok := flagKinds[flag]
	return k, ok
}

// Flags are the response_flags values FlagKind knows, sorted.
func Flags() []string {
	out := make([]string, 0, len(flagKinds))
	for f := range flagKinds {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}
