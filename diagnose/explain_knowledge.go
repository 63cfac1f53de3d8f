package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// This file is what `kubectl mesh explain` knows: every response flag, reset reason, transport
// failure and response-code detail Envoy writes, with what it means, what usually causes it and
// what to do.

// explainCtx is what an input says about where the request went, so fixes can name it.
type explainCtx struct {
	cluster string // upstream cluster, "" when unknown
	host    string // service host ("reviews.default.svc.cluster.local"), "" when unknown
	svc, ns string // the service's name and namespace, or placeholders
	addr    string // the upstream host address, "" when unknown
}

func newExplainCtx(cluster, addr string) explainCtx {
	c := explainCtx{cluster: cluster, host: serviceHost(cluster), svc: "<service>", ns: "<namespace>", addr: addr}
	if c.host != "" {
		name, ns := hostNameNamespace(c.host)
		c.svc, c.ns = name, orDefault(ns, c.ns)
	}
	return c
}

// hostOr is the service host, or a placeholder for YAML.
func (c explainCtx) hostOr() string {
	return orDefault(c.host, "<service>.<namespace>.svc.cluster.local")
}

func (c explainCtx) endpoints() string {
	return fmt.Sprintf("kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s -o wide", c.ns, c.svc)
}

// knowledge explains one flag, reset reason, transport failure or detail.
type knowledge struct {
	code    Code
	status  string // the status Envoy usually answers with, "" when it varies
	long    string // a flag's long name
	meaning string
	causes  string
	fix     func(c explainCtx) Fix
}

// flagKnowledge covers every response flag Envoy defines.
var flagKnowledge = map[string]knowledge{
	"UH": {CodeNoHealthyUpstream, "503", "NoHealthyUpstream", "The upstream cluster had no healthy host to send the request to.",
		"The service has no ready endpoints (pods not ready, a selector or targetPort that matches nothing), a DestinationRule subset whose labels match no pod, or outlier detection ejected every host.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the service's endpoints and the subset's labels; keep outlierDetection.maxEjectionPercent below 100.", Command: c.endpoints() + fmt.Sprintf("\nkubectl get destinationrules -n %s -o yaml | grep -A4 subsets", c.ns)}
		}},
	"UF": {CodeConnectFailure, "503", "UpstreamConnectionFailure", "The proxy could not open a connection to the upstream host.",
		"Refused (111): nothing listens there — the application binds 127.0.0.1 or another port than the targetPort, or the pod is shutting down. Timed out (110) or unreachable (113): a NetworkPolicy, a dead node, a stale endpoint. A TLS error: DestinationRule and PeerAuthentication disagree on mTLS.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Make the application listen on 0.0.0.0 on the Service's targetPort, let pods drain before they stop, and use ISTIO_MUTUAL toward sidecars; the transport failure reason of the same request says which.", Command: c.endpoints()}
		}},
	"UO": {CodePendingOverflow, "503", "UpstreamOverflow", "A circuit breaker refused the request: a limit of the upstream's connection pool was reached.",
		"The DestinationRule's connectionPool.tcp.maxConnections, http.http1MaxPendingRequests or http.http2MaxRequests (or outlierDetection's retry budget) is lower than the concurrency the callers bring.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Raise the limits to what the upstream can serve, or scale it out.", YAML: DestinationRuleYAML(c.hostOr(), "    connectionPool:\n      tcp:\n        maxConnections: 1024    # what the upstream can serve\n      http:\n        http1MaxPendingRequests: 1024\n        http2MaxRequests: 1024\n")}
		}},
	"URX": {CodeRetriesExhausted, "503", "UpstreamRetryLimitExceeded", "The request failed after the retries (or connect attempts) allowed were used up; the last attempt's failure is the cause.",
		"Every attempt hit the same underlying failure: a connect failure (UF), a terminated connection (UC), a reset or a 503. Istio retries twice by default on " + istioDefaultRetryWords + ".",
		func(c explainCtx) Fix {
			return Fix{Summary: "Fix the underlying failure: the other flags and the details of the same request name it. More retries only multiply the load on a failing upstream."}
		}},
	"UT": {CodeUpstreamTimeout, "504", "UpstreamRequestTimeout", "The route's timeout (or the per-try timeout) expired before the upstream answered.",
		"A VirtualService timeout below the upstream's slowest answers (its p99); perTryTimeout applies to every attempt, so with retries the route timeout must cover them all.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Set the route timeout above the upstream's p99 (or make the upstream faster).", YAML: VirtualServiceYAML(c.hostOr(), "    timeout: 30s    # above the upstream's p99\n")}
		}},
	"UC": {CodeKeepAliveRace, "503", "UpstreamConnectionTermination", "The upstream closed the connection before it answered.",
		"Most often a keep-alive race: the application closes idle connections sooner than Envoy's pool does (1h by default; applications often after a few seconds: Node.js 5s, gunicorn 2s) and a request is sent on one just as it closes. Also: the application crashed or was OOM-killed mid-request, or plaintext reached a STRICT mTLS sidecar.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Make Envoy close idle upstream connections before the application does: set connectionPool.http.idleTimeout " + keepAliveIdleAdvice + ", or raise the application's keep-alive timeout.", YAML: DestinationRuleYAML(c.hostOr(), keepAliveTrafficPolicy())}
		}},
	"UR": {CodeRemoteReset, "503", "UpstreamRemoteReset", "The upstream reset the stream (HTTP/2 RST_STREAM or a TCP reset).",
		"HTTP/2 server limits (max concurrent streams, GOAWAY while draining), the server's own timeouts, or its overload.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the upstream's server limits and its shutdown: a preStop drain lets in-flight requests finish before the pod stops."}
		}},
	"LR": {CodeLocalReset, "503", "LocalReset", "This proxy reset the stream itself.",
		"One of its own timeouts (stream idle, per-try idle), a caller that went away, or the proxy's overload.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Look at the response-code details of the same request and at the timeouts on its route.", Command: fmt.Sprintf("istioctl proxy-config routes <pod> -n %s -o json | grep -E 'timeout|idle'", c.ns)}
		}},
	"DC": {CodeDownstreamGaveUp, "0 or 499", "DownstreamConnectionTermination", "The caller closed its connection before the response was complete.",
		"The caller's own timeout is shorter than the time the request takes, or the caller crashed or cancelled.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Align the caller's timeout with the server's latency, or make the server faster; the server's side did nothing wrong."}
		}},
	"DR": {CodeDownstreamGaveUp, "", "DownstreamRemoteReset", "The caller reset the stream (HTTP/2 RST_STREAM, a cancelled gRPC call).",
		"The caller gave up: its deadline passed, or it cancelled the call.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Look at the caller's deadline and cancellation; align it with the server's latency."}
		}},
	"NR": {CodeNoRoute, "404", "NoRouteFound", "No route matched the request, or no filter chain matched the connection.",
		"No VirtualService or service for the Host header; a port whose name or appProtocol declares the wrong protocol; plaintext sent to a port that requires mTLS (details filter_chain_not_found).",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the routes the proxy has for that host and port, and the port's protocol.", Command: fmt.Sprintf("istioctl proxy-config routes <pod> -n %s\nistioctl analyze -n %s", c.ns, c.ns)}
		}},
	"NC": {CodeNoCluster, "503", "NoClusterFound", "The route names a cluster the proxy does not have.",
		"A VirtualService routes to a subset before the DestinationRule that defines it was applied, or to a host that is not in the service registry.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Apply the DestinationRule before the VirtualService that uses its subsets, and check the route's host.", Command: fmt.Sprintf("istioctl analyze -n %s", c.ns)}
		}},
	"UPE": {CodeProtocolError, "503", "UpstreamProtocolError", "The upstream's response broke the HTTP protocol.",
		"The port is declared HTTP (port name or appProtocol) but serves TLS, HTTP/2 or something else, or the application writes malformed headers.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Declare the port's real protocol on the Service with appProtocol (or the port name prefix).", YAML: fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  ports:\n  - port: <port>\n    appProtocol: tcp    # or http, http2, grpc, https: what the port really speaks", c.svc, c.ns)}
		}},
	"SI": {CodeStreamIdleTimeout, "408", "StreamIdleTimeout", "The stream carried no data for longer than the stream idle timeout (5 minutes by default).",
		"Long-lived streams (gRPC streams, server-sent events, websockets) with quiet periods, or an upstream that sends nothing for minutes.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Send keep-alive messages on quiet streams, or raise the connection manager's stream_idle_timeout.", YAML: streamIdleEnvoyFilter(c.ns)}
		}},
	"RL": {CodeRateLimited, "429", "RateLimited", "A rate-limit filter refused the request.",
		"A local rate limit (an EnvoyFilter with local_ratelimit) or the global rate-limit service said the caller is over its limit.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Raise the limit if the traffic is legitimate; otherwise the caller must back off.", Command: fmt.Sprintf("kubectl get envoyfilters -n %s -o yaml | grep -B3 -A12 ratelimit", c.ns)}
		}},
	"RLSE": {CodeRateLimited, "500", "RateLimitServiceError", "The global rate-limit service did not answer and the filter refuses requests then.",
		"The rate-limit service is down or slow, and its filter denies on failure (failure_mode_deny).",
		func(c explainCtx) Fix {
			return Fix{Summary: "Restore the rate-limit service, or let requests through while it fails (failure_mode_deny: false)."}
		}},
	"UAEX": {CodeAuthzDenied, "403", "UnauthorizedExternalService", "The external authorization service (ext_authz, an AuthorizationPolicy with action CUSTOM) denied the request.",
		"The authorization provider's decision, or its failure when the filter denies on error.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the provider's decision log and the CUSTOM AuthorizationPolicy.", Command: fmt.Sprintf("kubectl get authorizationpolicies -n %s -o yaml", c.ns)}
		}},
	"FI": {CodeFaultInjected, "", "FaultInjected", "A fault injection of the route (VirtualService fault.abort) answered instead of the upstream.",
		"A VirtualService with a fault block, usually left over from a test.",
		faultFix},
	"DI": {CodeFaultInjected, "", "DelayInjected", "A fault injection of the route (VirtualService fault.delay) delayed the request on purpose.",
		"A VirtualService with a fault block, usually left over from a test.",
		faultFix},
	"UMSDR": {CodeMaxDuration, "408", "UpstreamMaxStreamDurationReached", "The upstream request reached its maximum stream duration.",
		"The cluster's max_stream_duration (common_http_protocol_options) is shorter than the request.",
		maxDurationFix},
	"DT": {CodeMaxDuration, "504", "DurationTimeout", "The request reached its maximum duration (max_stream_duration or a grpc-timeout header).",
		"A route max_stream_duration, or a gRPC deadline the caller sent, shorter than the call takes.",
		maxDurationFix},
	"IH": {CodeBadRequest, "400", "InvalidEnvoyRequestHeaders", "The request carried invalid x-envoy-* headers and strict header checking refused it.",
		"The caller sets x-envoy-* headers (such as x-envoy-max-retries) to values Envoy rejects.",
		badRequestFix},
	"DPE": {CodeBadRequest, "400", "DownstreamProtocolError", "The caller's request broke the HTTP protocol.",
		"Malformed HTTP/1, an HTTP/2 protocol error, headers larger than allowed, or plaintext HTTP/1 to a port that expects HTTP/2.",
		badRequestFix},
	"LH": {CodeLocalHealthFailed, "503", "FailedLocalHealthCheck", "The local service failed its health check, so the health-check filter answered 503.",
		"The application behind this proxy is failing the health check the filter passes through.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Look at the local application's health endpoint and log."}
		}},
	"OM": {CodeLoadShed, "503", "OverloadManagerTerminated", "The proxy's overload manager refused the request: the proxy ran short of memory or another resource.",
		"The proxy's memory (or connection count) reached the overload manager's threshold.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Give the proxy more memory (annotation sidecar.istio.io/proxyMemoryLimit) and narrow its configuration with a Sidecar resource."}
		}},
	"DO": {CodeLoadShed, "503", "DropOverload", "The request was dropped on purpose: the control plane told the proxy to shed a share of traffic to this cluster (drop_overload).",
		"The endpoints' drop_overloads setting from the control plane.",
		dropFix},
	"UDO": {CodeLoadShed, "503", "UnconditionalDropOverload", "The request was dropped because drop_overload is set to 100% for this cluster.",
		"The endpoints' drop_overloads setting from the control plane.",
		dropFix},
	"DF": {CodeDNSFailure, "503", "DnsResolutionFailed", "The upstream's DNS name did not resolve.",
		"A ServiceEntry with resolution DNS (or a dynamic forward proxy) for a name the cluster's DNS does not know.",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the ServiceEntry's hosts and that the pod's DNS resolves them.", Command: fmt.Sprintf("kubectl get serviceentries -A\nkubectl exec -n %s <pod> -c istio-proxy -- getent hosts <host>", c.ns)}
		}},
	"NFCF": {CodeFilterConfigMissing, "500", "NoFilterConfigFound", "A filter whose configuration comes by ECDS (a WasmPlugin, for one) had none yet.",
		"istiod has not sent the filter's configuration, or the proxy rejected it (a Wasm module that fails to download or load).",
		func(c explainCtx) Fix {
			return Fix{Summary: "Check the WasmPlugins and istiod's log for the filter's configuration.", Command: "kubectl get wasmplugins -A\nkubectl logs -n istio-system deploy/istiod | grep -iE 'ecds|wasm'"}
		}},
	"RFCF": {CodeServedFromCache, "", "ResponseFromCacheFilter", "The cache filter answered from its cache; the upstream did not see the request.",
		"An HTTP cache filter on this route.",
		func(c explainCtx) Fix { return Fix{Summary: "Nothing to fix unless the cached answer is wrong."} }},
}

func faultFix(c explainCtx) Fix {
	return Fix{Summary: "Remove the fault block from the VirtualService unless the fault is wanted.", Command: fmt.Sprintf("kubectl get virtualservices -n %s -o yaml | grep -B8 -A8 'fault:'", c.ns)}
}

func maxDurationFix(c explainCtx) Fix {
	return Fix{Summary: "Raise the maximum duration, or the caller's deadline, above what the call takes.", Command: fmt.Sprintf("istioctl proxy-config routes <pod> -n %s -o json | grep -iE 'max_stream_duration|grpc_timeout'", c.ns)}
}

func badRequestFix(c explainCtx) Fix {
	return Fix{Summary: "Fix the caller: the request is malformed; the proxy refused it before any route."}
}

func dropFix(c explainCtx) Fix {
	return Fix{Summary: "Check the endpoints the control plane sends for this cluster: drop_overloads is a deliberate setting.", Command: fmt.Sprintf("istioctl proxy-config endpoints <pod> -n %s -o json | grep -i drop", c.ns)}
}

func streamIdleEnvoyFilter(ns string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata:
  name: stream-idle-timeout
  namespace: %s
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: MERGE
      value:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stream_idle_timeout: 3600s`, ns)
}

// resetKnowledge covers the reset reasons of the 503 body and of upstream_reset_* details. The
// connection failures get their code from the transport failure when there is one.
var resetKnowledge = map[string]knowledge{
	"local connection failure":    {code: CodeConnectFailure, meaning: "This proxy's side of the connection failed before it was set up."},
	"remote connection failure":   {code: CodeConnectFailure, meaning: "The connection to the upstream host failed: refused, timed out or unreachable."},
	"connection failure":          {code: CodeConnectFailure, meaning: "The connection to the upstream host failed (older Envoy releases do not say which side)."},
	"connection timeout":          {code: CodeConnectTimeout, meaning: "The TCP connect did not complete within the cluster's connect timeout (10s in Istio by default)."},
	"connection termination":      {code: CodeKeepAliveRace, meaning: "The upstream closed the connection before it answered."},
	"local reset":                 {code: CodeLocalReset, meaning: "This proxy reset the stream itself."},
	"local refused stream reset":  {code: CodeLocalReset, meaning: "This proxy refused to start the stream: a stream limit or a connection that was draining."},
	"remote refused stream reset": {code: CodeRemoteReset, meaning: "The upstream refused the stream (HTTP/2 REFUSED_STREAM): it was at its concurrent-stream limit or shutting down. Istio retries this by default."},
	"overflow":                    {code: CodePendingOverflow, meaning: "A circuit breaker of the upstream's connection pool refused the request."},
	"remote reset":                {code: CodeRemoteReset, meaning: "The upstream reset the stream."},
	"protocol error":              {code: CodeProtocolError, meaning: "The upstream's answer broke the HTTP protocol."},
	"overload manager reset":      {code: CodeLoadShed, meaning: "The proxy's overload manager reset the stream to shed load."},
}

// resetFlag maps a reset reason to the response flag whose causes and fixes apply.
var resetFlag = map[string]string{
	"local connection failure": "UF", "remote connection failure": "UF", "connection failure": "UF",
	"connection timeout": "UF", "connection termination": "UC", "local reset": "LR",
	"local refused stream reset": "LR", "remote refused stream reset": "UR", "overflow": "UO",
	"remote reset": "UR", "protocol error": "UPE", "overload manager reset": "OM",
}

var errnoPattern = lazyregexp.New(`(?i)connect[ _]error:?[ _]*(\d+)`)

// transportKnowledge explains an upstream transport failure reason ("delayed connect error:
// 111", "TLS_error:...:CERTIFICATE_VERIFY_FAILED"); ok is false for one it cannot read.
func transportKnowledge(tf string, c explainCtx) (k knowledge, ok bool) {
	// Details spell the reason with '_' for spaces ("TLS_error:_..."), the 503 body with spaces.
	upper := strings.ToUpper(strings.ReplaceAll(tf, " ", "_"))
	svcPorts := fmt.Sprintf("kubectl get svc %s -n %s -o jsonpath='{.spec.ports}'\nkubectl get pods -n %s -o wide    # then: kubectl exec <upstream-pod> -c istio-proxy -- ss -tlnp", c.svc, c.ns, c.ns)
	netCheck := fmt.Sprintf("kubectl get networkpolicies -n %s\n%s", c.ns, c.endpoints())
	switch m := errnoPattern.FindStringSubmatch(tf); {
	case m != nil && m[1] == "111":
		return knowledge{code: CodeConnectRefused, meaning: "Connection refused (errno 111): nothing listens on that address and port.",
			causes: "The application binds 127.0.0.1 instead of 0.0.0.0, listens on another port than the Service's targetPort, has not started yet, or the pod is shutting down.",
			fix: func(explainCtx) Fix {
				return Fix{Summary: "Make the application listen on 0.0.0.0 on the targetPort, and let pods drain (preStop) before they stop.", Command: svcPorts}
			}}, true
	case m != nil && (m[1] == "110" || m[1] == "113" || m[1] == "101"):
		what := map[string]string{"110": "Connection timed out (errno 110): the SYN got no answer.", "113": "No route to host (errno 113): the host is gone, or something rejects the traffic on the way.", "101": "Network unreachable (errno 101)."}[m[1]]
		return knowledge{code: CodeConnectTimeout, meaning: what,
			causes: "A NetworkPolicy or firewall that drops the traffic, a node that is down, or an endpoint whose pod no longer exists.",
			fix: func(explainCtx) Fix {
				return Fix{Summary: "Check the NetworkPolicies on the upstream's side and that the endpoint's pod and node are alive.", Command: netCheck}
			}}, true
	case m != nil:
		return knowledge{code: CodeConnectFailure, meaning: "The connect failed with errno " + m[1] + ".", fix: flagKnowledge["UF"].fix}, true
	case strings.Contains(upper, "WRONG_VERSION_NUMBER"):
		return knowledge{code: CodeTLSModeMismatch, meaning: "This proxy started a TLS handshake and the answer was not TLS (WRONG_VERSION_NUMBER): the upstream speaks plaintext on that port.",
			causes: "The upstream has no sidecar (or its sidecar does not intercept the port) while a DestinationRule or auto mTLS makes this proxy use mTLS.",
			fix: func(c explainCtx) Fix {
				return Fix{Summary: "Give the upstream a sidecar on that port; if it is meant to stay outside the mesh, set tls.mode DISABLE for it.", YAML: DestinationRuleYAML(c.hostOr(), "    tls:\n      mode: DISABLE\n")}
			}}, true
	case strings.Contains(upper, "CERTIFICATE_REQUIRED"):
		return knowledge{code: CodeTLSModeMismatch, meaning: "The upstream demanded a client certificate and this proxy sent none.",
			causes: "A DestinationRule with tls.mode SIMPLE toward a sidecar that requires mTLS (STRICT).",
			fix: func(c explainCtx) Fix {
				return Fix{Summary: "Use ISTIO_MUTUAL toward services with sidecars.", YAML: DestinationRuleYAML(c.hostOr(), "    tls:\n      mode: ISTIO_MUTUAL\n")}
			}}, true
	case strings.Contains(upper, "CERTIFICATE_EXPIRED") || strings.Contains(upper, "CERTIFICATE_HAS_EXPIRED"):
		return knowledge{code: CodeCertExpired, meaning: "A certificate in the handshake had expired (CERTIFICATE_EXPIRED): the peer's, or this proxy's own when the alert came from the peer.",
			causes: "Certificate rotation stopped (the agent cannot reach its CA), or a plug-in CA certificate or a gateway's credential passed its date.",
			fix: func(c explainCtx) Fix {
				return Fix{Summary: "Find which certificate expired and rotate it.", Command: "istioctl proxy-config secret <pod> -n <namespace>\nistioctl proxy-config secret <upstream-pod> -n " + c.ns}
			}}, true
	case strings.Contains(upper, "CERTIFICATE_VERIFY_FAILED"):
		return knowledge{code: CodeTLSHandshakeErrors, meaning: "The upstream's certificate failed verification (CERTIFICATE_VERIFY_FAILED): it is signed by a root this proxy does not trust, has expired, or names another identity than expected.",
			causes: "The two sides trust different roots (a CA change not rolled out everywhere, another mesh or cluster, a DestinationRule's caCertificates that do not sign the upstream's certificate), an expired certificate, or a DestinationRule's subjectAltNames that do not match.",
			fix: func(c explainCtx) Fix {
				return Fix{Summary: "Compare the root certificates, identities and expiry of both sides.", Command: "istioctl proxy-config secret <pod> -n <namespace>\nistioctl proxy-config secret <upstream-pod> -n " + c.ns + "    # the ROOTCA serial numbers must match; check the dates"}
			}}, true
	case strings.Contains(upper, "TLS") || strings.Contains(upper, "SSL"):
		meaning := "The TLS handshake with the upstream failed."
		return knowledge{code: CodeConnectTLS, meaning: meaning,
			causes: "The two sides trust different roots (a CA change not rolled out everywhere, another mesh or cluster), or a DestinationRule's subjectAltNames or credentials do not match the upstream.",
			fix: func(c explainCtx) Fix {
				return Fix{Summary: "Compare the root certificates and identities of both sides.", Command: "istioctl proxy-config secret <pod> -n <namespace>\nistioctl proxy-config secret <upstream-pod> -n " + c.ns + "    # the ROOTCA serial numbers must match"}
			}}, true
	}
	return knowledge{}, false
}
