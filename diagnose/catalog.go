package diagnose

import "fmt"

// Code identifies one kind of finding. Codes are stable: a code is never reused for another
// meaning, and a retired code stays in the catalog as Retired.
type Code string

// The catalog's codes, grouped by category in blocks of a hundred. Responses a filter
// produced on purpose file under the nearest category of the closed set: a rate limit under
// circuit-breaker (0306), an authorization denial under mtls (0804), injected faults and cache
// hits under app-error (1802, 1803).
const (
	CodeUpstreamTimeout         Code = "MESH0101" // requests hit the route timeout (UT)
	CodePerTryTimeout           Code = "MESH0102" // attempts hit the per-try timeout
	CodeDownstreamGaveUp        Code = "MESH0103" // the caller closed the connection first (DC)
	CodeStreamIdleTimeout       Code = "MESH0104" // a stream idle timeout ended requests (SI)
	CodeMaxDuration             Code = "MESH0105" // a maximum request or stream duration ended requests (DT, UMSDR)
	CodeConnectRefused          Code = "MESH0201" // connection refused (111)
	CodeConnectTimeout          Code = "MESH0202" // connect timed out or host unreachable (110/113)
	CodeConnectTLS              Code = "MESH0203" // TLS failed while connecting
	CodeConnectFailure          Code = "MESH0204" // connect failures of unknown cause
	CodeDNSFailure              Code = "MESH0205" // the upstream's DNS name did not resolve (DF)
	CodePendingOverflow         Code = "MESH0301" // pending requests overflowed (UO)
	CodeConnectionOverflow      Code = "MESH0302" // connection limit reached (UO)
	CodeRetryOverflow           Code = "MESH0303" // retry budget overflowed
	CodeBreakerOpen             Code = "MESH0304" // a circuit breaker is open now
	CodeLoadShed                Code = "MESH0305" // the proxy shed load (OM, DO, UDO)
	CodeRateLimited             Code = "MESH0306" // a rate limit refused requests (RL, RLSE)
	CodeKeepAliveRace           Code = "MESH0401" // upstream closed a pooled connection under a request (UC)
	CodeRemoteReset             Code = "MESH0402" // upstream reset streams (UR)
	CodeLocalReset              Code = "MESH0403" // the proxy reset streams (LR)
	CodeProtocolError           Code = "MESH0404" // the upstream broke the HTTP protocol (UPE)
	CodeNoHealthyUpstream       Code = "MESH0501" // no healthy host left (UH)
	CodeHostsEjected            Code = "MESH0502" // outlier detection ejected hosts
	CodeHostsFailingHealth      Code = "MESH0503" // hosts failing health checks
	CodeLocalHealthFailed       Code = "MESH0504" // the local service failed its health check (LH)
	CodeRetriesExhausted        Code = "MESH0601" // retries exhausted (URX)
	CodeNoRoute                 Code = "MESH0701" // no route matched (NR)
	CodeNoCluster               Code = "MESH0702" // route to a cluster that does not exist (NC)
	CodeBadRequest              Code = "MESH0703" // the caller sent a malformed request (DPE, IH)
	CodeUndeclaredProtocol      Code = "MESH0704" // a Service port declares no protocol: sniffed or TCP
	CodeTLSHandshakeErrors      Code = "MESH0801" // TLS handshakes failing
	CodeTLSModeMismatch         Code = "MESH0802" // client and server disagree on mTLS
	CodePlaintextInbound        Code = "MESH0803" // plaintext requests reach a permissive listener
	CodeAuthzDenied             Code = "MESH0804" // an authorization policy refused requests (RBAC, UAEX)
	CodeCertExpiringSoon        Code = "MESH0901" // certificate close to expiry
	CodeCertExpired             Code = "MESH0902" // certificate expired
	CodeConfigRejected          Code = "MESH1001" // the proxy rejected configuration from its control plane
	CodeFilterConfigMissing     Code = "MESH1002" // a filter's configuration never arrived (NFCF)
	CodeConfigNotArrived        Code = "MESH1003" // a resource or secret the proxy waits for did not arrive
	CodeHighUpstreamLatency     Code = "MESH1101" // upstream's p99 is high
	CodeProxyOverhead           Code = "MESH1102" // time spent in the proxy itself
	CodeSlowConnect             Code = "MESH1103" // TCP connect slow
	CodePendingQueue            Code = "MESH1104" // requests queued for a connection
	CodeLatencyBetweenPods      Code = "MESH1105" // the hop to the upstream, not its app, takes the time
	CodeLatencyInUpstreamApp    Code = "MESH1106" // the upstream's application takes the time
	CodeLatencyInUpstreamProxy  Code = "MESH1107" // the upstream's sidecar holds the requests
	CodeClusterStatsDisabled    Code = "MESH1201" // per-cluster stats not recorded
	CodeSidecarNotReady         Code = "MESH1301" // istio-proxy container not ready
	CodeSidecarOOMKilled        Code = "MESH1302" // istio-proxy was OOM-killed
	CodeControlPlaneUnreachable Code = "MESH1303" // the proxy cannot reach its control plane
	CodeCertUnobtainable        Code = "MESH1304" // the agent cannot get its workload certificate
	CodeProxyCrashed            Code = "MESH1305" // the proxy crashed or was killed
	CodeSidecarCPULimit         Code = "MESH1401" // a CPU limit on istio-proxy throttles bursts
	CodeSidecarLowersQoS        Code = "MESH1402" // istio-proxy's resources lower the pod's QoS class
	CodeProxyThrottled          Code = "MESH1403" // istio-proxy measured CPU-throttled (cgroup cpu.stat or cAdvisor)
	CodeAppThrottled            Code = "MESH1404" // an application container measured CPU-throttled (cAdvisor)
	CodeNodeCPUSteal            Code = "MESH1501" // the node's hypervisor steals CPU time
	CodeNodeIOWait              Code = "MESH1601" // the node's CPUs wait on I/O
	CodeNodeDiskAwait           Code = "MESH1602" // a disk of the node is slow per I/O
	CodeNodeIOPressure          Code = "MESH1603" // tasks on the node stall on I/O (PSI)
	CodeConntrackFull           Code = "MESH1701" // the conntrack table is near full
	CodeFileHandlesFull         Code = "MESH1702" // the node's file handles are near fs.file-max
	CodeSysctlBelowTuning       Code = "MESH1703" // sysctls below the recommended tuning (port range, keep-alive)
	CodeApplicationErrors       Code = "MESH1801" // the application itself answers 5xx
	CodeFaultInjected           Code = "MESH1802" // the route injects faults on purpose (FI, DI)
	CodeServedFromCache         Code = "MESH1803" // the cache filter answered (RFCF)
)

// CodeInfo is a code's entry in the catalog.
type CodeInfo struct {
	Code     Code
	Category Category
	Severity Severity // the usual severity; a rule may lower or raise it
	Title    string   // what the code means, for documentation and `explain`
	Retired  bool     // never reported any more; kept so the code is not reused
}

// Doc returns the documentation anchor of the code.
func (c CodeInfo) Doc() string { return "docs/findings.md#" + string(c.Code) }

// catalog lists every code ever defined.
var catalog = []CodeInfo{
	{CodeUpstreamTimeout, CategoryTimeout, SeverityError, "Requests to the upstream hit the route timeout (UT, 504)", false},
	{CodePerTryTimeout, CategoryTimeout, SeverityWarning, "Attempts hit the per-try timeout and were retried or failed", false},
	{CodeDownstreamGaveUp, CategoryTimeout, SeverityWarning, "Callers closed their connection before the response (DC)", false},
	{CodeStreamIdleTimeout, CategoryTimeout, SeverityWarning, "Streams were idle longer than the stream idle timeout (SI, 408)", false},
	{CodeMaxDuration, CategoryTimeout, SeverityWarning, "Requests reached a maximum request or stream duration (DT, UMSDR)", false},
	{CodeConnectRefused, CategoryConnectFailure, SeverityError, "Connections to the upstream are refused (UF, errno 111)", false},
	{CodeConnectTimeout, CategoryConnectFailure, SeverityError, "Connections to the upstream time out or the host is unreachable (UF, 110/113)", false},
	{CodeConnectTLS, CategoryConnectFailure, SeverityError, "The TLS handshake with the upstream fails while connecting (UF, TLS error)", false},
	{CodeConnectFailure, CategoryConnectFailure, SeverityError, "Connections to the upstream fail (UF)", false},
	{CodeDNSFailure, CategoryConnectFailure, SeverityError, "The upstream's DNS name does not resolve (DF)", false},
	{CodePendingOverflow, CategoryCircuitBreaker, SeverityError, "Requests are rejected because the pending-request queue is full (UO)", false},
	{CodeConnectionOverflow, CategoryCircuitBreaker, SeverityWarning, "The connection limit to the upstream is reached (UO)", false},
	{CodeRetryOverflow, CategoryCircuitBreaker, SeverityWarning, "Retries are refused because the retry circuit breaker is full", false},
	{CodeBreakerOpen, CategoryCircuitBreaker, SeverityError, "A circuit breaker of the upstream is open now", false},
	{CodeLoadShed, CategoryCircuitBreaker, SeverityError, "The proxy sheds load: overload manager or drop_overload (OM, DO, UDO)", false},
	{CodeRateLimited, CategoryCircuitBreaker, SeverityWarning, "A rate limit refuses requests (RL, RLSE, 429)", false},
	{CodeKeepAliveRace, CategoryUpstreamReset, SeverityError, "The upstream closes pooled connections under requests (UC): keep-alive race", false},
	{CodeRemoteReset, CategoryUpstreamReset, SeverityError, "The upstream resets requests (UR)", false},
	{CodeLocalReset, CategoryUpstreamReset, SeverityWarning, "The proxy resets requests to the upstream (LR)", false},
	{CodeProtocolError, CategoryUpstreamReset, SeverityError, "The upstream's response breaks the HTTP protocol (UPE)", false},
	{CodeNoHealthyUpstream, CategoryNoHealthyUpstream, SeverityError, "No healthy host is left in the upstream (UH)", false},
	{CodeHostsEjected, CategoryNoHealthyUpstream, SeverityWarning, "Outlier detection has ejected upstream hosts", false},
	{CodeHostsFailingHealth, CategoryNoHealthyUpstream, SeverityWarning, "Upstream hosts fail health checks", false},
	{CodeLocalHealthFailed, CategoryNoHealthyUpstream, SeverityWarning, "The local service failed its health check (LH)", false},
	{CodeRetriesExhausted, CategoryRetriesExhausted, SeverityError, "Requests failed after all retries (URX)", false},
	{CodeNoRoute, CategoryNoRoute, SeverityError, "Requests match no route or filter chain (NR, 404)", false},
	{CodeNoCluster, CategoryNoRoute, SeverityError, "Routes send traffic to a cluster the proxy does not have (NC, 503)", false},
	{CodeBadRequest, CategoryNoRoute, SeverityWarning, "Callers send malformed requests or invalid headers (DPE, IH)", false},
	{CodeUndeclaredProtocol, CategoryNoRoute, SeverityInfo, "A Service port declares no protocol, so Istio sniffs it or treats it as TCP", false},
	{CodeTLSHandshakeErrors, CategoryMTLS, SeverityError, "TLS handshakes fail", false},
	{CodeTLSModeMismatch, CategoryMTLS, SeverityError, "Client and server disagree on mTLS", false},
	{CodePlaintextInbound, CategoryMTLS, SeverityInfo, "Plaintext requests reach a listener that accepts them (PERMISSIVE)", false},
	{CodeAuthzDenied, CategoryMTLS, SeverityWarning, "An authorization policy refuses requests (RBAC or ext_authz, 403)", false},
	{CodeCertExpiringSoon, CategoryCertExpiry, SeverityWarning, "A certificate of the proxy expires soon", false},
	{CodeCertExpired, CategoryCertExpiry, SeverityError, "A certificate of the proxy has expired", false},
	{CodeConfigRejected, CategoryConfigRejected, SeverityError, "The proxy rejected configuration it was sent", false},
	{CodeFilterConfigMissing, CategoryConfigRejected, SeverityError, "A filter's configuration never arrived (NFCF)", false},
	{CodeConfigNotArrived, CategoryConfigRejected, SeverityError, "Configuration or a secret the proxy waits for did not arrive (initial fetch timeout, missing secret)", false},
	{CodeHighUpstreamLatency, CategoryLatency, SeverityWarning, "The upstream is slow", false},
	{CodeProxyOverhead, CategoryLatency, SeverityWarning, "Requests spend a large share of their time in the proxy", false},
	{CodeSlowConnect, CategoryLatency, SeverityWarning, "TCP connects to the upstream are slow", false},
	{CodePendingQueue, CategoryLatency, SeverityWarning, "Requests wait for a connection to the upstream", false},
	{CodeLatencyBetweenPods, CategoryLatency, SeverityWarning, "Most of the upstream's latency is spent between the pods, not in its application", false},
	{CodeLatencyInUpstreamApp, CategoryLatency, SeverityInfo, "Most of the upstream's latency is its application's own time", false},
	{CodeLatencyInUpstreamProxy, CategoryLatency, SeverityWarning, "Most of the upstream's latency is spent in its sidecars, not its application", false},
	{CodeClusterStatsDisabled, CategoryStatsDisabled, SeverityInfo, "Per-upstream stats are not recorded by this proxy", false},
	{CodeSidecarNotReady, CategorySidecarNotReady, SeverityError, "The istio-proxy container is not ready", false},
	{CodeSidecarOOMKilled, CategorySidecarNotReady, SeverityError, "The istio-proxy container was OOM-killed", false},
	{CodeControlPlaneUnreachable, CategorySidecarNotReady, SeverityError, "The proxy cannot reach its control plane (the xDS stream fails)", false},
	{CodeCertUnobtainable, CategorySidecarNotReady, SeverityError, "The proxy's agent cannot get its workload certificate (CA or SDS request failed)", false},
	{CodeProxyCrashed, CategorySidecarNotReady, SeverityError, "The proxy crashed, was killed or ran out of file descriptors", false},
	{CodeSidecarCPULimit, CategoryCPUThrottling, SeverityWarning, "A CPU limit on istio-proxy throttles its bursts", false},
	{CodeSidecarLowersQoS, CategoryCPUThrottling, SeverityWarning, "istio-proxy's resources make the pod Burstable, or it has no requests", false},
	{CodeProxyThrottled, CategoryCPUThrottling, SeverityWarning, "istio-proxy is CPU-throttled: measured in its cgroup's cpu.stat", false},
	{CodeAppThrottled, CategoryCPUThrottling, SeverityWarning, "An application container of the pod is CPU-throttled (cAdvisor)", false},
	{CodeNodeCPUSteal, CategoryNodeCPUSteal, SeverityWarning, "The node loses CPU time to steal: the hypervisor runs other guests", false},
	{CodeNodeIOWait, CategoryNodeIO, SeverityWarning, "The node's CPUs spend much of their time waiting for I/O (iowait)", false},
	{CodeNodeDiskAwait, CategoryNodeIO, SeverityWarning, "A disk of the node is slow: high average time per I/O", false},
	{CodeNodeIOPressure, CategoryNodeIO, SeverityWarning, "Tasks on the node stall on I/O (pressure stall information)", false},
	{CodeConntrackFull, CategoryNodeLimits, SeverityWarning, "The conntrack table is near full: new connections get dropped", false},
	{CodeFileHandlesFull, CategoryNodeLimits, SeverityWarning, "The node's file handles are near fs.file-max", false},
	{CodeSysctlBelowTuning, CategoryNodeLimits, SeverityInfo, "Sysctls fall short of the recommended node tuning (port range, keep-alive, TIME_WAIT reuse)", false},
	{CodeApplicationErrors, CategoryAppError, SeverityWarning, "The application itself answers with 5xx", false},
	{CodeFaultInjected, CategoryAppError, SeverityInfo, "The route injects faults on purpose (FI, DI)", false},
	{CodeServedFromCache, CategoryAppError, SeverityInfo, "The response came from the cache filter, not the upstream (RFCF)", false},
}

var catalogByCode = func() map[Code]CodeInfo {
	m := make(map[Code]CodeInfo, len(catalog))
	for _, c := range catalog {
		m[c.Code] = c
	}
	return m
}()

// LookupCode returns the catalog entry of a code.
func LookupCode(c Code) (CodeInfo, bool) {
	info, ok := catalogByCode[c]
	return info, ok
}

// NewFinding starts a finding for a catalog code, filling category, default severity, title and
// doc anchor. It panics on a code missing from the catalog: that is a programming error that the
// catalog tests catch.
func NewFinding(code Code, subject Subject) Finding {
	info, ok := catalogByCode[code]
	if !ok {
		panic(fmt.Sprintf("diagnose: code %s is not in the catalog", code))
	}
	return Finding{
		Code:     string(code),
		Severity: info.Severity,
		Category: info.Category,
		Subject:  subject,
		Title:    info.Title,
		Doc:      info.Doc(),
	}
}

// Catalog returns every code ever defined, in catalog order. It is a copy: the catalog itself
// cannot be changed from outside.
func Catalog() []CodeInfo { return append([]CodeInfo(nil), catalog...) }
