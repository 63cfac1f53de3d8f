package diagnose

import (
	"fmt"
	"io"
	"strings"
)

// codeHints says in a sentence or two what to do about each code, for docs/findings.md. Kept
// beside the catalog rather than in its entries so the entries stay one line each; the catalog
// tests require a hint for every code.
var codeHints = map[Code]string{
	CodeCertUnobtainable:        "The agent's certificate requests fail: check that istiod (or the configured CA) is reachable on 15012 and that its CA is healthy (`kubectl logs -n istio-system deploy/istiod | grep -i ca`); for a custom CA, its issuer and the agent's trust settings.",
	CodeConfigNotArrived:        "Envoy waited for a resource that never came: for a secret, check that the Secret named by the Gateway's `credentialName` exists in the gateway's namespace; otherwise check istiod's log for the push to this proxy and `istioctl proxy-status`.",
	CodeProxyCrashed:            "Read the proxy's last lines before it stopped (`kubectl logs POD -c istio-proxy --previous`): an OOM kill wants a higher memory limit, \"Too many open files\" a higher file-descriptor limit on the node or the container runtime, an assertion a fixed Envoy release.",
	CodeControlPlaneUnreachable: "The proxy cannot hold its xDS stream to istiod: check istiod's pods and Service, NetworkPolicies and firewalls toward port 15012, and the `discoveryAddress` in the proxy's config.",
	CodeUpstreamTimeout:         "Compare the route timeout with the upstream's p99: raise the VirtualService `timeout` above it, or make the upstream faster. With retries, the route timeout must cover every attempt.",
	CodePerTryTimeout:           "Set `retries.perTryTimeout` above the upstream's p99; each retry starts over, so the route timeout must exceed attempts × perTryTimeout.",
	CodeDownstreamGaveUp:        "The caller's timeout is shorter than the request takes: align it with the server's latency, or make the server faster.",
	CodeStreamIdleTimeout:       "Send keep-alive messages on long, quiet streams, or raise the connection manager's `stream_idle_timeout` (5 minutes by default).",
	CodeMaxDuration:             "Raise the route's or cluster's `max_stream_duration`, or the caller's gRPC deadline, above what the call takes.",
	CodeConnectRefused:          "Nothing listens on the endpoint: make the application listen on 0.0.0.0 on the Service's targetPort, and drain pods (preStop) before they stop.",
	CodeConnectTimeout:          "Check NetworkPolicies and firewalls toward the upstream, and that its pods and nodes are alive.",
	CodeConnectTLS:              "Compare both sides' roots and identities with `istioctl proxy-config secret`; check the DestinationRule's `tls` block against the upstream's PeerAuthentication.",
	CodeConnectFailure:          "Read the access log's transport failure reason for these requests: it says whether the connect was refused, timed out or failed TLS.",
	CodeDNSFailure:              "Check the ServiceEntry's hosts and that the pod's DNS resolves them.",
	CodePendingOverflow:         "Raise `connectionPool.http.http1MaxPendingRequests` (and `maxConnections`) to what the upstream can serve, or scale it out.",
	CodeConnectionOverflow:      "Raise `connectionPool.tcp.maxConnections`, or scale the upstream out.",
	CodeRetryOverflow:           "Too many retries in flight: fix the failure that causes them before raising the retry budget.",
	CodeBreakerOpen:             "A limit is reached right now: see the overflow findings of the same upstream for which one, and raise it or scale out.",
	CodeLoadShed:                "The proxy sheds load on purpose: give it more memory, or check the control plane's `drop_overloads` for the cluster.",
	CodeKeepAliveRace:           "Set `connectionPool.http.idleTimeout` in the DestinationRule shorter than the application's keep-alive timeout (4s under Node.js's default 5s, 1s under gunicorn's 2s); check the upstream for crashes and OOM kills.",
	CodeRemoteReset:             "Check the upstream's HTTP/2 limits and its shutdown; a preStop drain lets in-flight requests finish.",
	CodeLocalReset:              "Check the timeouts on the route and the response-code details of the reset requests.",
	CodeProtocolError:           "Declare the port's real protocol on the Service with `appProtocol` (or the port-name prefix).",
	CodeNoHealthyUpstream:       "Check the service's endpoints and DestinationRule subset labels; keep `outlierDetection.maxEjectionPercent` below 100.",
	CodeHostsEjected:            "Look at the ejected hosts' pods: they answered 5xx or failed to connect. Outlier detection is doing its job; the pods are the problem.",
	CodeHostsFailingHealth:      "Check the failing hosts' health endpoints and pods.",
	CodeLocalHealthFailed:       "The application behind this proxy fails its health check: look at its health endpoint and log.",
	CodeRetriesExhausted:        "Fix the failure every attempt hit (the finding beside this one); more retries only add load.",
	CodeNoRoute:                 "Check `istioctl proxy-config routes` for the host and port, the port's protocol, and whether plaintext reaches a STRICT mTLS port.",
	CodeNoCluster:               "Apply the DestinationRule that defines a subset before the VirtualService that routes to it; run `istioctl analyze`. Seen in the config dump alone, with no failed request, it is a warning: check with `istioctl proxy-config clusters` that the proxy lacks the cluster, since dumps can be partial.",
	CodeUndeclaredProtocol:      "Set `appProtocol` (http, grpc, http2, tcp) on the Service port, or name it with the protocol's prefix (`http-web`), so Istio applies HTTP routing, retries and metrics without sniffing.",
	CodeBadRequest:              "Fix the caller: its requests are malformed or carry invalid `x-envoy-*` headers.",
	CodeTLSHandshakeErrors:      "Compare the root certificates of both sides (`istioctl proxy-config secret`) and the identity the peer presents with the one expected.",
	CodeTLSModeMismatch:         "Make the client's DestinationRule `tls.mode` match the server: ISTIO_MUTUAL toward sidecars, DISABLE toward pods without one; give plaintext callers a sidecar before STRICT.",
	CodePlaintextInbound:        "Find the callers without mTLS (`source_workload` of istio_requests_total) and give them a sidecar; only then apply PeerAuthentication STRICT.",
	CodeCertExpiringSoon:        "A workload certificate that is not renewed means istio-agent cannot reach istiod: check that, then restart the pod. For a CA certificate, plan the root rotation now.",
	CodeCertExpired:             "Restore the agent's path to istiod and restart the pod (workload certificate), or rotate the CA (root certificate); until then new mTLS connections fail, while connections opened before keep working. Expiry is judged against the capture time (meta.json); a folder without one is judged against the current time, and the finding says so.",
	CodeConfigRejected:          "Istio: find the NACK in istiod's log (`ACK ERROR`), then fix or remove the EnvoyFilter, VirtualService or DestinationRule it names; check proxy/istiod version skew. Other control planes: Envoy's own log names each rejected resource and why (`gRPC config ... rejected`). The finding names istiod only when the evidence shows an Istio proxy.",
	CodeFilterConfigMissing:     "Check the WasmPlugin (or other ECDS filter) and istiod's log for why its configuration did not arrive.",
	CodeHighUpstreamLatency:     "Diagnose the upstream itself: its own sidecar shows whether its application or its dependencies are slow.",
	CodeProxyOverhead:           "Check the proxy's CPU throttling (`cpu.stat`), its filters (Wasm, Lua, ext_authz) and retries on that port.",
	CodeSlowConnect:             "Check the nodes' conntrack table (`nf_conntrack_count` vs `nf_conntrack_max`), NetworkPolicies that drop, and node load; toward localhost, the application accepts too slowly.",
	CodePendingQueue:            "Requests wait for a connection: allow connection reuse (`maxRequestsPerConnection: 0`, keep-alive in the app) or raise `connectionPool.tcp.maxConnections`.",
	CodeLatencyBetweenPods:      "Look between the pods: the client's connection pool (pending requests), the nodes (CPU steal, conntrack, throttled proxies) and their placement (cross-zone hops); the server's application is not where the time goes.",
	CodeLatencyInUpstreamApp:    "Profile the upstream's application (its pods are named in the evidence); the mesh and the network add little to its time.",
	CodeLatencyInUpstreamProxy:  "Diagnose the upstream's pods (kubectl mesh why-slow -l app=...): a CPU-throttled or starved istio-proxy, a CPU limit on it, or heavy filters (Lua, Wasm, ext_authz) on its inbound listener.",
	CodeClusterStatsDisabled:    "Add a `proxyStatsMatcher` with inclusionRegexps for upstream stats in the pod template's `proxy.istio.io/config` annotation, and restart the pods.",
	CodeSidecarNotReady:         "Read `kubectl logs -c istio-proxy` and `istioctl proxy-status`: an unready proxy has no configuration from istiod yet, or crashes.",
	CodeSidecarOOMKilled:        "Raise `sidecar.istio.io/proxyMemoryLimit` and narrow the proxy's configuration with a Sidecar resource.",
	CodeSidecarLowersQoS:        "Give istio-proxy requests equal to its limits (`sidecar.istio.io/proxyCPU` = `proxyCPULimit`, `proxyMemory` = `proxyMemoryLimit`) so a pod shaped for Guaranteed stays Guaranteed; never leave the proxy without requests.",
	CodeProxyThrottled:          "Raise istio-proxy's CPU limit (`sidecar.istio.io/proxyCPULimit`) or remove it and keep a request; the finding's numbers come from the proxy's own cgroup, so this is throttling measured, not inferred.",
	CodeAppThrottled:            "Raise the application container's CPU limit (`kubectl set resources ... --limits=cpu=`) or remove it; the proxy's latency to the app includes the app's throttling.",
	CodeNodeCPUSteal:            "Move the pod off the node (`kubectl cordon`, then delete the pod) and run the node pool on instance types with dedicated CPUs; steal comes from the host, not from anything in the cluster.",
	CodeNodeIOWait:              "Find what keeps the node's disks busy (`iotop` in `kubectl debug node/...`) and give the node faster or provisioned storage.",
	CodeNodeDiskAwait:           "The volume is saturated or throttled (IOPS or burst credits): provision more IOPS or a faster disk class, and move heavy writers (logging, the app's files) off the node's root disk.",
	CodeNodeIOPressure:          "Tasks wait for I/O on this node: find the writer, give the node faster storage, or move the pod to a quieter node.",
	CodeConntrackFull:           "Raise `net.netfilter.nf_conntrack_max` (kube-proxy's `conntrack.maxPerCore`), and cut the connection churn that fills it: keep-alive in the app, `connectionPool` limits.",
	CodeFileHandlesFull:         "Raise `fs.file-max` on the node (2097152 recommended) and look for a process leaking connections.",
	CodeSysctlBelowTuning:       "Set `net.ipv4.ip_local_port_range=1024 65535`, `tcp_tw_reuse=1` and keep-alive 600/60/3 in the pod's `securityContext.sysctls`; `fs.file-max` and `nf_conntrack_max` on the node (image or privileged DaemonSet).",
	CodeSidecarCPULimit:         "Raise or remove the proxy's CPU limit (`sidecar.istio.io/proxyCPULimit`) after confirming throttling in its `cpu.stat`.",
	CodeApplicationErrors:       "Read the application's log (`kubectl logs POD -c APP`): the mesh delivered the requests and passed the application's 5xx on.",
	CodeRateLimited:             "Raise the rate limit if the traffic is legitimate; otherwise the caller must back off.",
	CodeAuthzDenied:             "Compare the caller's identity, path and method with the workload's AuthorizationPolicies (`istioctl x authz check`).",
	CodeFaultInjected:           "Remove the VirtualService's `fault` block unless the fault is wanted.",
	CodeServedFromCache:         "Nothing to fix unless the cached answer is wrong.",
}

// Hint returns what to do about a code, for the documentation.
func (c CodeInfo) Hint() string { return codeHints[c.Code] }

// WriteFindingsDoc writes docs/findings.md: every code of the catalog, by category, with its
// severity, title and what to do. Findings link to its anchors (CodeInfo.Doc).
func WriteFindingsDoc(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Findings\n\n")
	b.WriteString("<!-- Generated from diagnose/catalog.go and diagnose/catalog_hints.go by `go test ./diagnose -update`; do not edit. -->\n\n")
	b.WriteString("Every finding `kubectl mesh` reports has a code. Codes are stable: a code keeps its meaning and is never reused. The severity is the usual one; a rule may raise or lower it from the evidence.\n\n")
	b.WriteString("| code | category | severity | title |\n|---|---|---|---|\n")
	for _, c := range catalog {
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | %s |\n", c.Code, c.Code, c.Category, c.Severity, mdCell(c.Title))
	}
	for _, cat := range categories {
		var codes []CodeInfo
		for _, c := range catalog {
			if c.Category == cat {
				codes = append(codes, c)
			}
		}
		if len(codes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n", cat)
		for _, c := range codes {
			fmt.Fprintf(&b, "\n<a id=\"%s\"></a>\n### %s: %s\n\n", c.Code, c.Code, c.Title)
			fmt.Fprintf(&b, "Severity: %s.", c.Severity)
			if c.Retired {
				b.WriteString(" Retired: no longer reported.")
			}
			fmt.Fprintf(&b, "\n\nWhat to do: %s\n", c.Hint())
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
