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
	CodeHBONEBlocked            Code = "MESH0206" // ztunnel's HBONE connections to port 15008 time out
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
	CodeAmbientNotEnrolled      Code = "MESH1901" // istio-cni or ztunnel could not take the pod's traffic
	CodeHBONEProtocol           Code = "MESH1902" // the peer on port 15008 does not speak HBONE
	CodeWaypointMissing         Code = "MESH1903" // the waypoint the pod's traffic is bound to is missing or not programmed
	CodeZtunnelUnawareOfPod     Code = "MESH1904" // ztunnel does not know the pod, or does not capture it
	CodeL7PolicyAtZtunnel       Code = "MESH1905" // an AuthorizationPolicy's HTTP rules bind an ambient pod at ztunnel
)

// CodeInfo is a code's entry in the catalog.
type CodeInfo struct {
	Code     Code
	Category Category
	Severity Severity // the usual severity; a rule may lower or raise it
	Title    string   // what the code means, for documentation and `explain`
	// Hint says in a sentence or two what to do about the code, for docs/findings.md.
	Hint    string
	Retired bool // never reported any more; kept so the code is not reused
}

// Doc returns the documentation anchor of the code.
func (c CodeInfo) Doc() string { return "docs/findings.md#" + string(c.Code) }

// catalog lists every code ever defined.
var catalog = []CodeInfo{
	{Code: CodeUpstreamTimeout, Category: CategoryTimeout, Severity: SeverityError, Title: "Requests to the upstream hit the route timeout (UT, 504)",
		Hint: "Compare the route timeout with the upstream's p99: raise the VirtualService `timeout` above it, or make the upstream faster. With retries, the route timeout must cover every attempt."},
	{Code: CodePerTryTimeout, Category: CategoryTimeout, Severity: SeverityWarning, Title: "Attempts hit the per-try timeout and were retried or failed",
		Hint: "Set `retries.perTryTimeout` above the upstream's p99; each retry starts over, so the route timeout must exceed attempts × perTryTimeout."},
	{Code: CodeDownstreamGaveUp, Category: CategoryTimeout, Severity: SeverityWarning, Title: "Callers closed their connection before the response (DC)",
		Hint: "The caller's timeout is shorter than the request takes: align it with the server's latency, or make the server faster."},
	{Code: CodeStreamIdleTimeout, Category: CategoryTimeout, Severity: SeverityWarning, Title: "Streams were idle longer than the stream idle timeout (SI, 408)",
		Hint: "Send keep-alive messages on long, quiet streams, or raise the connection manager's `stream_idle_timeout` (5 minutes by default)."},
	{Code: CodeMaxDuration, Category: CategoryTimeout, Severity: SeverityWarning, Title: "Requests reached a maximum request or stream duration (DT, UMSDR)",
		Hint: "Raise the route's or cluster's `max_stream_duration`, or the caller's gRPC deadline, above what the call takes."},
	{Code: CodeConnectRefused, Category: CategoryConnectFailure, Severity: SeverityError, Title: "Connections to the upstream are refused (UF, errno 111)",
		Hint: "Nothing listens on the endpoint: make the application listen on 0.0.0.0 on the Service's targetPort, and drain pods (preStop) before they stop."},
	{Code: CodeConnectTimeout, Category: CategoryConnectFailure, Severity: SeverityError, Title: "Connections to the upstream time out or the host is unreachable (UF, 110/113)",
		Hint: "Check NetworkPolicies and firewalls toward the upstream, and that its pods and nodes are alive."},
	{Code: CodeConnectTLS, Category: CategoryConnectFailure, Severity: SeverityError, Title: "The TLS handshake with the upstream fails while connecting (UF, TLS error)",
		Hint: "Compare both sides' roots and identities with `istioctl proxy-config secret`; check the DestinationRule's `tls` block against the upstream's PeerAuthentication."},
	{Code: CodeConnectFailure, Category: CategoryConnectFailure, Severity: SeverityError, Title: "Connections to the upstream fail (UF)",
		Hint: "Read the access log's transport failure reason for these requests: it says whether the connect was refused, timed out or failed TLS."},
	{Code: CodeDNSFailure, Category: CategoryConnectFailure, Severity: SeverityError, Title: "The upstream's DNS name does not resolve (DF)",
		Hint: "Check the ServiceEntry's hosts and that the pod's DNS resolves them."},
	{Code: CodeHBONEBlocked, Category: CategoryConnectFailure, Severity: SeverityError, Title: "ztunnel's HBONE connections to the peer's port 15008 time out",
		Hint: "Allow TCP 15008 between the nodes' pods: a NetworkPolicy that selects the destination pods must admit port 15008 as well as the application's port, and node firewalls or security groups must pass it."},
	{Code: CodePendingOverflow, Category: CategoryCircuitBreaker, Severity: SeverityError, Title: "Requests are rejected because the pending-request queue is full (UO)",
		Hint: "Raise `connectionPool.http.http1MaxPendingRequests` (and `maxConnections`) to what the upstream can serve, or scale it out."},
	{Code: CodeConnectionOverflow, Category: CategoryCircuitBreaker, Severity: SeverityWarning, Title: "The connection limit to the upstream is reached (UO)",
		Hint: "Raise `connectionPool.tcp.maxConnections`, or scale the upstream out."},
	{Code: CodeRetryOverflow, Category: CategoryCircuitBreaker, Severity: SeverityWarning, Title: "Retries are refused because the retry circuit breaker is full",
		Hint: "Too many retries in flight: fix the failure that causes them before raising the retry budget."},
	{Code: CodeBreakerOpen, Category: CategoryCircuitBreaker, Severity: SeverityError, Title: "A circuit breaker of the upstream is open now",
		Hint: "A limit is reached right now: see the overflow findings of the same upstream for which one, and raise it or scale out."},
	{Code: CodeLoadShed, Category: CategoryCircuitBreaker, Severity: SeverityError, Title: "The proxy sheds load: overload manager or drop_overload (OM, DO, UDO)",
		Hint: "The proxy sheds load on purpose: give it more memory, or check the control plane's `drop_overloads` for the cluster."},
	{Code: CodeRateLimited, Category: CategoryCircuitBreaker, Severity: SeverityWarning, Title: "A rate limit refuses requests (RL, RLSE, 429)",
		Hint: "Raise the rate limit if the traffic is legitimate; otherwise the caller must back off."},
	{Code: CodeKeepAliveRace, Category: CategoryUpstreamReset, Severity: SeverityError, Title: "The upstream closes pooled connections under requests (UC): keep-alive race",
		Hint: "Set `connectionPool.http.idleTimeout` in the DestinationRule shorter than the application's keep-alive timeout (4s under Node.js's default 5s, 1s under gunicorn's 2s); check the upstream for crashes and OOM kills."},
	{Code: CodeRemoteReset, Category: CategoryUpstreamReset, Severity: SeverityError, Title: "The upstream resets requests (UR)",
		Hint: "Check the upstream's HTTP/2 limits and its shutdown; a preStop drain lets in-flight requests finish."},
	{Code: CodeLocalReset, Category: CategoryUpstreamReset, Severity: SeverityWarning, Title: "The proxy resets requests to the upstream (LR)",
		Hint: "Check the timeouts on the route and the response-code details of the reset requests."},
	{Code: CodeProtocolError, Category: CategoryUpstreamReset, Severity: SeverityError, Title: "The upstream's response breaks the HTTP protocol (UPE)",
		Hint: "Declare the port's real protocol on the Service with `appProtocol` (or the port-name prefix)."},
	{Code: CodeNoHealthyUpstream, Category: CategoryNoHealthyUpstream, Severity: SeverityError, Title: "No healthy host is left in the upstream (UH)",
		Hint: "Check the service's endpoints and DestinationRule subset labels; keep `outlierDetection.maxEjectionPercent` below 100."},
	{Code: CodeHostsEjected, Category: CategoryNoHealthyUpstream, Severity: SeverityWarning, Title: "Outlier detection has ejected upstream hosts",
		Hint: "Look at the ejected hosts' pods: they answered 5xx or failed to connect. Outlier detection is doing its job; the pods are the problem."},
	{Code: CodeHostsFailingHealth, Category: CategoryNoHealthyUpstream, Severity: SeverityWarning, Title: "Upstream hosts fail health checks",
		Hint: "Check the failing hosts' health endpoints and pods."},
	{Code: CodeLocalHealthFailed, Category: CategoryNoHealthyUpstream, Severity: SeverityWarning, Title: "The local service failed its health check (LH)",
		Hint: "The application behind this proxy fails its health check: look at its health endpoint and log."},
	{Code: CodeRetriesExhausted, Category: CategoryRetriesExhausted, Severity: SeverityError, Title: "Requests failed after all retries (URX)",
		Hint: "Fix the failure every attempt hit (the finding beside this one); more retries only add load."},
	{Code: CodeNoRoute, Category: CategoryNoRoute, Severity: SeverityError, Title: "Requests match no route or filter chain (NR, 404)",
		Hint: "Check `istioctl proxy-config routes` for the host and port, the port's protocol, and whether plaintext reaches a STRICT mTLS port."},
	{Code: CodeNoCluster, Category: CategoryNoRoute, Severity: SeverityError, Title: "Routes send traffic to a cluster the proxy does not have (NC, 503)",
		Hint: "Apply the DestinationRule that defines a subset before the VirtualService that routes to it; run `istioctl analyze`. Seen in the config dump alone, with no failed request, it is a warning: check with `istioctl proxy-config clusters` that the proxy lacks the cluster, since dumps can be partial."},
	{Code: CodeBadRequest, Category: CategoryNoRoute, Severity: SeverityWarning, Title: "Callers send malformed requests or invalid headers (DPE, IH)",
		Hint: "Fix the caller: its requests are malformed or carry invalid `x-envoy-*` headers."},
	{Code: CodeUndeclaredProtocol, Category: CategoryNoRoute, Severity: SeverityInfo, Title: "A Service port declares no protocol, so Istio sniffs it or treats it as TCP",
		Hint: "Set `appProtocol` (http, grpc, http2, tcp) on the Service port, or name it with the protocol's prefix (`http-web`), so Istio applies HTTP routing, retries and metrics without sniffing."},
	{Code: CodeTLSHandshakeErrors, Category: CategoryMTLS, Severity: SeverityError, Title: "TLS handshakes fail",
		Hint: "Compare the root certificates of both sides (`istioctl proxy-config secret`) and the identity the peer presents with the one expected."},
	{Code: CodeTLSModeMismatch, Category: CategoryMTLS, Severity: SeverityError, Title: "Client and server disagree on mTLS",
		Hint: "Make the client's DestinationRule `tls.mode` match the server: ISTIO_MUTUAL toward sidecars, DISABLE toward pods without one; give plaintext callers a sidecar before STRICT."},
	{Code: CodePlaintextInbound, Category: CategoryMTLS, Severity: SeverityInfo, Title: "Plaintext requests reach a listener that accepts them (PERMISSIVE)",
		Hint: "Find the callers without mTLS (`source_workload` of istio_requests_total) and give them a sidecar; only then apply PeerAuthentication STRICT."},
	{Code: CodeAuthzDenied, Category: CategoryMTLS, Severity: SeverityWarning, Title: "An authorization policy refuses requests (RBAC or ext_authz, 403)",
		Hint: "Compare the caller's identity, path and method with the workload's AuthorizationPolicies (`istioctl x authz check`)."},
	{Code: CodeCertExpiringSoon, Category: CategoryCertExpiry, Severity: SeverityWarning, Title: "A certificate of the proxy expires soon",
		Hint: "A workload certificate that is not renewed means istio-agent cannot reach istiod: check that, then restart the pod. For a CA certificate, plan the root rotation now."},
	{Code: CodeCertExpired, Category: CategoryCertExpiry, Severity: SeverityError, Title: "A certificate of the proxy has expired",
		Hint: "Restore the agent's path to istiod and restart the pod (workload certificate), or rotate the CA (root certificate); until then new mTLS connections fail, while connections opened before keep working. Expiry is judged against the capture time (meta.json); a folder without one is judged against the current time, and the finding says so."},
	{Code: CodeConfigRejected, Category: CategoryConfigRejected, Severity: SeverityError, Title: "The proxy rejected configuration it was sent",
		Hint: "Istio: find the NACK in istiod's log (`ACK ERROR`), then fix or remove the EnvoyFilter, VirtualService or DestinationRule it names; check proxy/istiod version skew. Other control planes: Envoy's own log names each rejected resource and why (`gRPC config ... rejected`). The finding names istiod only when the evidence shows an Istio proxy."},
	{Code: CodeFilterConfigMissing, Category: CategoryConfigRejected, Severity: SeverityError, Title: "A filter's configuration never arrived (NFCF)",
		Hint: "Check the WasmPlugin (or other ECDS filter) and istiod's log for why its configuration did not arrive."},
	{Code: CodeConfigNotArrived, Category: CategoryConfigRejected, Severity: SeverityError, Title: "Configuration or a secret the proxy waits for did not arrive (initial fetch timeout, missing secret)",
		Hint: "Envoy waited for a resource that never came: for a secret, check that the Secret named by the Gateway's `credentialName` exists in the gateway's namespace; otherwise check istiod's log for the push to this proxy and `istioctl proxy-status`."},
	{Code: CodeHighUpstreamLatency, Category: CategoryLatency, Severity: SeverityWarning, Title: "The upstream is slow",
		Hint: "Diagnose the upstream itself: its own sidecar shows whether its application or its dependencies are slow."},
	{Code: CodeProxyOverhead, Category: CategoryLatency, Severity: SeverityWarning, Title: "Requests spend a large share of their time in the proxy",
		Hint: "Check the proxy's CPU throttling (`cpu.stat`), its filters (Wasm, Lua, ext_authz) and retries on that port."},
	{Code: CodeSlowConnect, Category: CategoryLatency, Severity: SeverityWarning, Title: "TCP connects to the upstream are slow",
		Hint: "Check the nodes' conntrack table (`nf_conntrack_count` vs `nf_conntrack_max`), NetworkPolicies that drop, and node load; toward localhost, the application accepts too slowly."},
	{Code: CodePendingQueue, Category: CategoryLatency, Severity: SeverityWarning, Title: "Requests wait for a connection to the upstream",
		Hint: "Requests wait for a connection: allow connection reuse (`maxRequestsPerConnection: 0`, keep-alive in the app) or raise `connectionPool.tcp.maxConnections`."},
	{Code: CodeLatencyBetweenPods, Category: CategoryLatency, Severity: SeverityWarning, Title: "Most of the upstream's latency is spent between the pods, not in its application",
		Hint: "Look between the pods: the client's connection pool (pending requests), the nodes (CPU steal, conntrack, throttled proxies) and their placement (cross-zone hops); the server's application is not where the time goes."},
	{Code: CodeLatencyInUpstreamApp, Category: CategoryLatency, Severity: SeverityInfo, Title: "Most of the upstream's latency is its application's own time",
		Hint: "Profile the upstream's application (its pods are named in the evidence); the mesh and the network add little to its time."},
	{Code: CodeLatencyInUpstreamProxy, Category: CategoryLatency, Severity: SeverityWarning, Title: "Most of the upstream's latency is spent in its sidecars, not its application",
		Hint: "Diagnose the upstream's pods (kubectl mesh why-slow -l app=...): a CPU-throttled or starved istio-proxy, a CPU limit on it, or heavy filters (Lua, Wasm, ext_authz) on its inbound listener."},
	{Code: CodeClusterStatsDisabled, Category: CategoryStatsDisabled, Severity: SeverityInfo, Title: "Per-upstream stats are not recorded by this proxy",
		Hint: "Add a `proxyStatsMatcher` with inclusionRegexps for upstream stats in the pod template's `proxy.istio.io/config` annotation, and restart the pods."},
	{Code: CodeSidecarNotReady, Category: CategorySidecarNotReady, Severity: SeverityError, Title: "The istio-proxy container is not ready",
		Hint: "Read `kubectl logs -c istio-proxy` and `istioctl proxy-status`: an unready proxy has no configuration from istiod yet, or crashes."},
	{Code: CodeSidecarOOMKilled, Category: CategorySidecarNotReady, Severity: SeverityError, Title: "The istio-proxy container was OOM-killed",
		Hint: "Raise `sidecar.istio.io/proxyMemoryLimit` and narrow the proxy's configuration with a Sidecar resource."},
	{Code: CodeControlPlaneUnreachable, Category: CategorySidecarNotReady, Severity: SeverityError, Title: "The proxy cannot reach its control plane (the xDS stream fails)",
		Hint: "The proxy cannot hold its xDS stream to istiod: check istiod's pods and Service, NetworkPolicies and firewalls toward port 15012, and the `discoveryAddress` in the proxy's config."},
	{Code: CodeCertUnobtainable, Category: CategorySidecarNotReady, Severity: SeverityError, Title: "The proxy's agent cannot get its workload certificate (CA or SDS request failed)",
		Hint: "The agent's certificate requests fail: check that istiod (or the configured CA) is reachable on 15012 and that its CA is healthy (`kubectl logs -n istio-system deploy/istiod | grep -i ca`); for a custom CA, its issuer and the agent's trust settings."},
	{Code: CodeProxyCrashed, Category: CategorySidecarNotReady, Severity: SeverityError, Title: "The proxy crashed, was killed or ran out of file descriptors",
		Hint: "Read the proxy's last lines before it stopped (`kubectl logs POD -c istio-proxy --previous`): an OOM kill wants a higher memory limit, \"Too many open files\" a higher file-descriptor limit on the node or the container runtime, an assertion a fixed Envoy release."},
	{Code: CodeSidecarCPULimit, Category: CategoryCPUThrottling, Severity: SeverityWarning, Title: "A CPU limit on istio-proxy throttles its bursts",
		Hint: "Raise or remove the proxy's CPU limit (`sidecar.istio.io/proxyCPULimit`) after confirming throttling in its `cpu.stat`."},
	{Code: CodeSidecarLowersQoS, Category: CategoryCPUThrottling, Severity: SeverityWarning, Title: "istio-proxy's resources make the pod Burstable, or it has no requests",
		Hint: "Give istio-proxy requests equal to its limits (`sidecar.istio.io/proxyCPU` = `proxyCPULimit`, `proxyMemory` = `proxyMemoryLimit`) so a pod shaped for Guaranteed stays Guaranteed; never leave the proxy without requests."},
	{Code: CodeProxyThrottled, Category: CategoryCPUThrottling, Severity: SeverityWarning, Title: "istio-proxy is CPU-throttled: measured in its cgroup's cpu.stat",
		Hint: "Raise istio-proxy's CPU limit (`sidecar.istio.io/proxyCPULimit`) or remove it and keep a request; the finding's numbers come from the proxy's own cgroup, so this is throttling measured, not inferred."},
	{Code: CodeAppThrottled, Category: CategoryCPUThrottling, Severity: SeverityWarning, Title: "An application container of the pod is CPU-throttled (cAdvisor)",
		Hint: "Raise the application container's CPU limit (`kubectl set resources ... --limits=cpu=`) or remove it; the proxy's latency to the app includes the app's throttling."},
	{Code: CodeNodeCPUSteal, Category: CategoryNodeCPUSteal, Severity: SeverityWarning, Title: "The node loses CPU time to steal: the hypervisor runs other guests",
		Hint: "Move the pod off the node (`kubectl cordon`, then delete the pod) and run the node pool on instance types with dedicated CPUs; steal comes from the host, not from anything in the cluster."},
	{Code: CodeNodeIOWait, Category: CategoryNodeIO, Severity: SeverityWarning, Title: "The node's CPUs spend much of their time waiting for I/O (iowait)",
		Hint: "Find what keeps the node's disks busy (`iotop` in `kubectl debug node/...`) and give the node faster or provisioned storage."},
	{Code: CodeNodeDiskAwait, Category: CategoryNodeIO, Severity: SeverityWarning, Title: "A disk of the node is slow: high average time per I/O",
		Hint: "The volume is saturated or throttled (IOPS or burst credits): provision more IOPS or a faster disk class, and move heavy writers (logging, the app's files) off the node's root disk."},
	{Code: CodeNodeIOPressure, Category: CategoryNodeIO, Severity: SeverityWarning, Title: "Tasks on the node stall on I/O (pressure stall information)",
		Hint: "Tasks wait for I/O on this node: find the writer, give the node faster storage, or move the pod to a quieter node."},
	{Code: CodeConntrackFull, Category: CategoryNodeLimits, Severity: SeverityWarning, Title: "The conntrack table is near full: new connections get dropped",
		Hint: "Raise `net.netfilter.nf_conntrack_max` (kube-proxy's `conntrack.maxPerCore`), and cut the connection churn that fills it: keep-alive in the app, `connectionPool` limits."},
	{Code: CodeFileHandlesFull, Category: CategoryNodeLimits, Severity: SeverityWarning, Title: "The node's file handles are near fs.file-max",
		Hint: "Raise `fs.file-max` on the node (2097152 recommended) and look for a process leaking connections."},
	{Code: CodeSysctlBelowTuning, Category: CategoryNodeLimits, Severity: SeverityInfo, Title: "Sysctls fall short of the recommended node tuning (port range, keep-alive, TIME_WAIT reuse)",
		Hint: "Set `net.ipv4.ip_local_port_range=1024 65535`, `tcp_tw_reuse=1` and keep-alive 600/60/3 in the pod's `securityContext.sysctls`; `fs.file-max` and `nf_conntrack_max` on the node (image or privileged DaemonSet)."},
	{Code: CodeApplicationErrors, Category: CategoryAppError, Severity: SeverityWarning, Title: "The application itself answers with 5xx",
		Hint: "Read the application's log (`kubectl logs POD -c APP`): the mesh delivered the requests and passed the application's 5xx on."},
	{Code: CodeFaultInjected, Category: CategoryAppError, Severity: SeverityInfo, Title: "The route injects faults on purpose (FI, DI)",
		Hint: "Remove the VirtualService's `fault` block unless the fault is wanted."},
	{Code: CodeServedFromCache, Category: CategoryAppError, Severity: SeverityInfo, Title: "The response came from the cache filter, not the upstream (RFCF)",
		Hint: "Nothing to fix unless the cached answer is wrong."},
	{Code: CodeAmbientNotEnrolled, Category: CategoryAmbient, Severity: SeverityError, Title: "The pod's traffic is not taken into the ambient mesh (istio-cni or ztunnel could not enroll it)",
		Hint: "Check that the istio-cni node agent and ztunnel run and are ready on the pod's node (kubectl get pods -n istio-system -o wide), then restart the pod so it is enrolled again."},
	{Code: CodeHBONEProtocol, Category: CategoryAmbient, Severity: SeverityError, Title: "The HBONE handshake fails: the peer on port 15008 does not speak HBONE",
		Hint: "Make sure what listens on the destination's port 15008 is ztunnel or a waypoint of the same Istio release: a sidecar-injected or non-ambient destination, or mismatched versions, answer otherwise."},
	{Code: CodeWaypointMissing, Category: CategoryAmbient, Severity: SeverityError, Title: "The waypoint the pod's traffic is bound to is missing or not programmed",
		Hint: "Create the waypoint the istio.io/use-waypoint label names (kubectl mesh waypoint NAMESPACE --name NAME), or fix or remove the label; a waypoint that exists and is not programmed says why in its Programmed condition (kubectl describe gateway)."},
	{Code: CodeZtunnelUnawareOfPod, Category: CategoryAmbient, Severity: SeverityError, Title: "ztunnel does not know the pod, or does not capture it",
		Hint: "Check that istiod reaches the node's ztunnel (its log, kubectl mesh status) and that the pod is enrolled; istioctl ztunnel-config workloads shows what ztunnel knows."},
	{Code: CodeL7PolicyAtZtunnel, Category: CategoryAmbient, Severity: SeverityError, Title: "An AuthorizationPolicy with HTTP rules binds the pod at ztunnel, which enforces it without them",
		Hint: "Enforce HTTP rules at a waypoint: give the namespace one (kubectl mesh waypoint NAMESPACE) and bind the policy to it with targetRefs instead of a selector; keep selector policies to ports, namespaces, principals and IPs."},
}

var catalogByCode = func() map[Code]CodeInfo {
	m := make(map[Code]CodeInfo, len(catalog))
	for _, c := range catalog {
		m[c.Code] = c
	}
	return m
}()

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
