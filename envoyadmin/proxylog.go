package envoyadmin

import (
	"strconv"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// ProxyLogKind names what one of the proxy's or its agent's own log lines says is wrong.
type ProxyLogKind string

const (
	// ProxyLogConfigRejected: Envoy rejected configuration it was sent ("gRPC config for
	// type.googleapis.com/... rejected: ...", istiod's "ACK ERROR").
	ProxyLogConfigRejected ProxyLogKind = "config-rejected"
	// ProxyLogFetchTimeout: a resource Envoy waits for did not arrive in time ("initial fetch
	// timed out"), or a secret it asked for does not exist ("cannot find secret").
	ProxyLogFetchTimeout ProxyLogKind = "fetch-timeout"
	// ProxyLogNotReady: the proxy reports itself not ready, or its readiness probe fails.
	ProxyLogNotReady ProxyLogKind = "not-ready"
	// ProxyLogControlPlane: the proxy or agent cannot reach its control plane (the xDS stream
	// closed with an error, the dial to istiod fails).
	ProxyLogControlPlane ProxyLogKind = "control-plane"
	// ProxyLogCertificate: the agent cannot get its workload certificate (the CA request or
	// the SDS secret generation failed).
	ProxyLogCertificate ProxyLogKind = "certificate"
	// ProxyLogCertExpired: a certificate in the chain has expired.
	ProxyLogCertExpired ProxyLogKind = "cert-expired"
	// ProxyLogCrashed: Envoy crashed (an assertion, a signal) or was killed.
	ProxyLogCrashed ProxyLogKind = "crashed"
	// ProxyLogFileHandles: Envoy ran out of file descriptors ("Too many open files").
	ProxyLogFileHandles ProxyLogKind = "file-handles"
)

// ProxyLogEvent is one of the proxy's or istio-agent's own log lines (not an access-log line)
// that says something is wrong.
type ProxyLogEvent struct {
	Line int          `json:"line"`
	Kind ProxyLogKind `json:"kind"`
	// Resource is the xDS type or secret the line names ("Listener", "default"), "" when none.
	Resource string `json:"resource,omitempty"`
	// Text is the line's message, clipped to 300 bytes.
	Text string `json:"text"`
}

// proxyLogPattern recognises one kind of line by words in its lower-cased message; all of
// them must be there, and none of unless.
type proxyLogPattern struct {
	kind   ProxyLogKind
	all    []string
	unless []string
}

// proxyLogPatterns come from Envoy's config subscription and listener manager, istio-agent's
// readiness probe, SDS server, CA client and XDS proxy, and the kubelet's probe events that
// users paste beside them. The first match wins.
var proxyLogPatterns = []proxyLogPattern{
	{kind: ProxyLogConfigRejected, all: []string{"grpc config for ", " rejected"}},
	{kind: ProxyLogConfigRejected, all: []string{"config for type.googleapis.com/", "rejected"}},
	{kind: ProxyLogConfigRejected, all: []string{"error adding/updating listener"}},
	{kind: ProxyLogConfigRejected, all: []string{"ack error"}},
	{kind: ProxyLogConfigRejected, all: []string{"proto constraint validation failed"}},
	{kind: ProxyLogConfigRejected, all: []string{"didn't find a registered implementation"}},
	{kind: ProxyLogFetchTimeout, all: []string{"initial fetch timed out"}},
	{kind: ProxyLogFetchTimeout, all: []string{"initial fetch timeout"}},
	{kind: ProxyLogFetchTimeout, all: []string{"cannot find secret"}},
	{kind: ProxyLogFileHandles, all: []string{"too many open files"}},
	{kind: ProxyLogFileHandles, all: []string{"assert failure", "fd_ != -1"}}, // a socket not created: no descriptor left
	{kind: ProxyLogCertExpired, all: []string{"certificate has expired"}},
	{kind: ProxyLogCertExpired, all: []string{"certificate_expired"}},
	{kind: ProxyLogControlPlane, all: []string{"grpc config stream", "closed"}},
	{kind: ProxyLogCertificate, all: []string{"ca request failed"}},
	{kind: ProxyLogCertificate, all: []string{"failed to sign csr"}},
	{kind: ProxyLogCertificate, all: []string{"csr failed"}},
	{kind: ProxyLogCertificate, all: []string{"failed to create certificate"}},
	{kind: ProxyLogCertificate, all: []string{"failed to generate secret"}},
	{kind: ProxyLogCertificate, all: []string{"failed to fetch key and certificate"}},
	{kind: ProxyLogCertificate, all: []string{"failed to generate workload certificate"}},
	{kind: ProxyLogNotReady, all: []string{"envoy proxy is not ready"}},
	{kind: ProxyLogNotReady, all: []string{"readiness probe failed"}},
	{kind: ProxyLogCrashed, all: []string{"envoy exited"}},
	{kind: ProxyLogCrashed, all: []string{"exited with error"}, unless: []string{"exited with error: <nil>"}},
	{kind: ProxyLogCrashed, all: []string{"terminated with an error"}},
	{kind: ProxyLogCrashed, all: []string{"caught segmentation fault"}},
	{kind: ProxyLogCrashed, all: []string{"caught aborted"}},
	{kind: ProxyLogCrashed, all: []string{"[critical]", "panic: "}},
	{kind: ProxyLogCrashed, all: []string{"[critical]", "assert failure"}},
	{kind: ProxyLogCrashed, all: []string{"oomkilled"}},
	{kind: ProxyLogControlPlane, all: []string{"xds proxy", "fail"}},
	{kind: ProxyLogControlPlane, all: []string{"xdsproxy", "fail"}},
	{kind: ProxyLogControlPlane, all: []string{"upstream grpc client", "fail"}},
	{kind: ProxyLogControlPlane, all: []string{"upstream", "istiod", "connection error"}},
	{kind: ProxyLogControlPlane, all: []string{":15012", "dial tcp"}},
	{kind: ProxyLogControlPlane, all: []string{":15012", "connection error"}},
	{kind: ProxyLogControlPlane, all: []string{":15010", "connection error"}},
}

// certificateWords mark an xDS stream failure that is the workload certificate's.
var certificateWords = []string{"failed to generate secret", "workload certificate", "create certificate"}

// xdsCloseStatus reads the gRPC status Envoy gives when its xDS stream closes: "... closed
// since 1797s ago: 14, connection error ..." or "... closed: 13, ...".
var xdsCloseStatus = lazyregexp.New(`closed(?: since \d+s ago)?: (\d+),`)

// xdsTypeURL finds the resource type a config line names.
var xdsTypeURL = lazyregexp.New(`type\.googleapis\.com/[A-Za-z0-9_.]+\.([A-Za-z]+)`)

// ClassifyProxyLogLine reads one of the proxy's or istio-agent's own log lines (prefixes such
// as timestamps may remain) and says what it reports, if anything this package knows. Lines
// that report nothing wrong (info lines, a periodic xDS reconnect with status 0) are not events.
func ClassifyProxyLogLine(s string) (ProxyLogEvent, bool) {
	if len(s) > maxAccessLogLine {
		s = s[:maxAccessLogLine]
	}
	low := strings.ToLower(s)
	for _, p := range proxyLogPatterns {
		if !containsAll(low, p.all) || containsAny(low, p.unless) {
			continue
		}
		if p.kind == ProxyLogControlPlane && strings.Contains(low, "grpc config stream") {
			// istiod closes every stream after its max connection age: status 0 is that.
			if m := xdsCloseStatus.FindStringSubmatch(low); m != nil {
				if code, _ := strconv.Atoi(m[1]); code == 0 {
					return ProxyLogEvent{}, false
				}
			}
		}
		kind := p.kind
		if kind == ProxyLogControlPlane && containsAny(low, certificateWords) {
			// The stream that failed was the agent's SDS: the certificate is what is missing.
			kind = ProxyLogCertificate
		}
		ev := ProxyLogEvent{Kind: kind, Text: clipForError(strings.TrimSpace(s), 300)}
		if m := xdsTypeURL.FindStringSubmatch(s); m != nil {
			ev.Resource = m[1]
		}
		return ev, true
	}
	return ProxyLogEvent{}, false
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
