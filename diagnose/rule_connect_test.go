package diagnose

import (
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const tlsVerifyFailed = "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end"

// ufLines are n UF lines to a cluster and host with a transport failure reason.
func ufLines(n int, cluster, host, transport string) []envoyadmin.AccessLogEntry {
	out := logLines(n, 503, "UF,URX", "upstream_reset_before_response_started{connection_failure}", cluster, 10*time.Millisecond)
	for i := range out {
		out[i].TransportFailure, out[i].UpstreamHost = transport, host
	}
	return out
}

func TestConnectFailureRule(t *testing.T) {
	refusedIn := upHealthy()
	setCounter(refusedIn, upInbound, "upstream_cx_connect_fail", 40, 0)
	refusedIn.AccessLog = append(refusedIn.AccessLog, ufLines(3, upInbound, "10.1.0.5:9080", "delayed connect error: 111")...)

	refusedOneHost := upHealthy()
	setCounter(refusedOneHost, upReviews, "upstream_cx_connect_fail", 12, 0)
	hostStatSet(refusedOneHost, upReviews, "10.1.0.12:9080", "cx_connect_fail", 12)
	refusedOneHost.AccessLog = append(refusedOneHost.AccessLog, ufLines(2, upReviews, "10.1.0.12:9080", "-")...)
	for i := range refusedOneHost.AccessLog[5:] {
		// The refusal only in the details, as Envoy spells it there.
		refusedOneHost.AccessLog[5+i].Details = "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}"
	}

	timeouts := upHealthyInterval()
	setCounter(timeouts, upReviews, "upstream_cx_connect_fail", 5, 6)
	setCounter(timeouts, upReviews, "upstream_cx_connect_timeout", 5, 6)

	unreachable := upHealthy()
	unreachable.AccessLog = append(unreachable.AccessLog, ufLines(3, upReviews, "10.1.0.13:9080", "delayed connect error: 113")...)

	verify := upHealthy()
	setCounter(verify, upReviews, "upstream_cx_connect_fail", 30, 0)
	verify.AccessLog = append(verify.AccessLog, ufLines(3, upReviews, "10.1.0.11:9080", tlsVerifyFailed)...)

	// The same failures while the proxy's own certificate has expired: MESH0902's to explain.
	ownCertExpired := certTLSIncident(NowFromMeta)
	ownCertExpired.AccessLog = append(ownCertExpired.AccessLog, ufLines(3, upReviews, "10.1.0.11:9080", tlsVerifyFailed)...)

	// Counters only while the proxy's certificate has expired: the cause is named.
	ownCertExpiredCounters := certTLSIncident(NowFromMeta)
	ownCertExpiredCounters.AccessLog = nil

	wrongVersion := upHealthy()
	wrongVersion.AccessLog = append(wrongVersion.AccessLog, ufLines(3, upReviews, "10.1.0.11:9080", "TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end")...)

	countersOnly := upHealthy()
	setCounter(countersOnly, upReviews, "upstream_cx_connect_fail", 60, 0)
	setCounter(countersOnly, upReviews, "ssl_connection_error", 20, 0)

	hostsOnly := &Snapshot{Upstreams: upHealthyUpstreams(), UpstreamsFile: FileClustersTxt}
	hostStatSet(hostsOnly, upReviews, "10.1.0.11:9080", "cx_connect_fail", 3)
	hostStatSet(hostsOnly, upReviews, "10.1.0.13:9080", "cx_connect_fail", 4)

	xds := upHealthyInterval()
	setCounter(xds, "xds-grpc", "upstream_cx_connect_fail", 2, 3)

	few := upHealthy()
	setCounter(few, upReviews, "upstream_cx_connect_fail", 3, 0)

	mixed := upHealthyInterval()
	setCounter(mixed, upReviews, "upstream_cx_connect_fail", 5, 9)
	setCounter(mixed, upReviews, "upstream_cx_connect_timeout", 0, 3)
	mixed.AccessLog = append(mixed.AccessLog, ufLines(2, upReviews, "10.1.0.11:9080", "delayed connect error: 111")...)

	runUpCases(t, ConnectFailureRule{}, []upCase{
		{name: "application refuses the sidecar (inbound, 111)", snap: refusedIn, want: []upWant{{
			code: CodeConnectRefused, subject: upInbound, severity: SeverityError,
			values:  map[string]float64{"upstream_cx_connect_fail": round(40.0/10800, 3), "errno 111": 3},
			explain: []string{"port 9080", "127.0.0.1"},
			fix:     []string{"0.0.0.0", "ss -ltn"},
		}}},
		{name: "one host of a service refuses (111 in the details)", snap: refusedOneHost, want: []upWant{{
			// 12 failures in 3h and two log lines: sporadic, so a warning.
			code: CodeConnectRefused, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"connect failures on host 10.1.0.12:9080": 12, "errno 111": 2},
			explain: []string{"without a sidecar", "Only 1 of 3 hosts"},
			fix:     []string{"kubectl get endpointslices -n default -l kubernetes.io/service-name=reviews"},
		}}},
		{name: "connect timeouts over the window", snap: timeouts, want: []upWant{{
			code: CodeConnectTimeout, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"upstream_cx_connect_timeout": 0.2, "configured connect timeout": 10000},
			explain: []string{"NetworkPolicy"},
			fix:     []string{"kubectl get networkpolicy -n default"},
		}}},
		{name: "host unreachable (113)", snap: unreachable, want: []upWant{{
			code: CodeConnectTimeout, subject: upReviews,
			values: map[string]float64{"errno 110/113": 3},
			fix:    []string{"status.podIP=10.1.0.13"},
		}}},
		{name: "server certificate not trusted", snap: verify, want: []upWant{{
			code: CodeConnectTLS, subject: upReviews, severity: SeverityError,
			texts:   map[string]string{"transport failure reason": "CERTIFICATE_VERIFY_FAILED", "TLS mode": envoyadmin.TLSModeAuto},
			explain: []string{"different roots"},
			fix:     []string{"istioctl proxy-config secret -n default productpage-v1-abc"},
		}}},
		{name: "TLS failures while the proxy's own certificate has expired are the CertExpiryRule's", snap: ownCertExpired},
		{name: "connect failures and TLS errors while the proxy's own certificate has expired", snap: ownCertExpiredCounters, want: []upWant{{
			code: CodeConnectFailure, subject: upReviews,
			explain: []string{"this proxy's own certificate has expired", "MESH0902"},
		}}},
		{name: "TLS answered in plaintext is the MTLSRule's", snap: wrongVersion},
		{name: "counters only: cause not recorded", snap: countersOnly, want: []upWant{{
			code: CodeConnectFailure, subject: upReviews,
			values:  map[string]float64{"other than timeouts": round(60.0/10800, 3), "ssl.connection_error": round(20.0/10800, 3)},
			explain: []string{"UPSTREAM_TRANSPORT_FAILURE_REASON", "TLS handshakes"},
			fix:     []string{"kind: Telemetry", "namespace: default"},
		}}},
		{name: "per-host counters of /clusters only", snap: hostsOnly, want: []upWant{{
			code: CodeConnectFailure, subject: upReviews, severity: SeverityWarning,
			values:  map[string]float64{"connect failures on host 10.1.0.13:9080 (since the host was added)": 4, "connect failures summed over the hosts (cx_connect_fail, each since the host was added)": 7},
			explain: []string{"Only 2 of 3 hosts", "since each host was added"},
		}}},
		{name: "proxy cannot reach its control plane", snap: xds, want: []upWant{{
			code: CodeConnectFailure, subject: "xds-grpc",
			values:  map[string]float64{"upstream_cx_connect_fail": 0.1},
			explain: []string{"pilot-agent"},
		}}},
		{name: "three failures since start are noise", snap: few},
		{name: "refusals in the log and timeouts in the counters", snap: mixed, want: []upWant{
			{code: CodeConnectRefused, subject: upReviews, values: map[string]float64{"errno 111": 2}},
			{code: CodeConnectTimeout, subject: upReviews, values: map[string]float64{"upstream_cx_connect_timeout": 0.1, "every cause": 0.3}},
		}},
	})
}
