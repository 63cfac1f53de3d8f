"""Builders for Envoy/Istio admin outputs in their real formats.

The shapes follow the real captures in ../shared/captures (see ../README.md): the Istio 1.21
config dump (istio-1.21-sidecar-full-with-eds-sds.json) for /config_dump, the DataDog Istio 1.5
excerpt for /stats/prometheus naming and labels, istio/istio's clusters.json for
/clusters?format=json, the kiali and GitHub-issue lines for the access log, and the envoyproxy
example for /server_info. Sidecar-specific parts the 1.21 capture (a waypoint) lacks are written
the way Istio 1.21's sidecar generator emits them.
"""
import base64
import copy
import json

ISTIO_VERSION = "1.21.2"
ENVOY_SHA = "b4a4b4cb6bb1e9d4fc6e7b4b9c1ad1bff9cbd4a2"
ENVOY_VERSION = ENVOY_SHA + "/1.29.4-dev/Clean/RELEASE/BoringSSL"
PROXY_SHA = "8d9b2c0f4a1e6e3b07c5d2a19f4e8b6c3d7a0f15"

CLUSTER_T = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LISTENER_T = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE_T = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLA_T = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
HCM_T = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY_T = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
UPSTREAM_TLS_T = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS_T = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
HTTP_OPTS_T = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TYPED_STRUCT_T = "type.googleapis.com/udpa.type.v1.TypedStruct"
ROUTER_T = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

MAX32 = 4294967295
REDACTED = base64.b64encode(b"[redacted]").decode()  # what Envoy prints for a private key

ADS = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
SDS_CONFIG = {
    "api_config_source": {
        "api_type": "GRPC",
        "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}],
        "set_node_on_first_message_only": True,
    },
    "initial_fetch_timeout": "0s",
    "resource_api_version": "V3",
}
TLS_PARAMS = {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"}

DEFAULT_RETRY = {
    "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
    "num_retries": 2,
    "retry_host_predicate": [{
        "name": "envoy.retry_host_predicates.previous_hosts",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
    }],
    "host_selection_retry_max_attempts": "5",
    "retriable_status_codes": [503],
}

# Istio's default stats inclusions (pkg/bootstrap/config.go, 1.21): "reporter=" for the standard
# metrics, the prefixes readiness needs, the RBAC suffixes, then "component" for istio_build.
DEFAULT_PREFIXES = ["reporter=", "cluster_manager", "listener_manager", "server", "cluster.xds-grpc", "wasm"]
DEFAULT_SUFFIXES = ["rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied"]

# The inclusion regex `kubectl mesh install` adds through proxyStatsMatcher: only the per-cluster
# stats the diagnosis reads, so /stats stays cheap on a large proxy.
MESH_STATS_REGEX = (
    r"cluster\.(outbound|inbound)\|.*\.(upstream_rq_(total|time|timeout|per_try_timeout|retry.*|"
    r"pending_(overflow|active)|rx_reset|tx_reset|active|[0-9]xx|[0-9]{3})|"
    r"upstream_cx_(total|active|connect_fail|connect_timeout|overflow|"
    r"destroy_remote_with_active_rq|none_healthy)|outlier_detection\..*|circuit_breakers\.default\..*|"
    r"membership_(healthy|total)|ssl\.(handshake|connection_error|fail_verify_.*))"
)

STATS_TAGS = [
    {"tag_name": "cluster_name", "regex": "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)"},
    {"tag_name": "tcp_prefix", "regex": "^tcp\\.((.*?)\\.)\\w+?$"},
    {"regex": "_rq(_(\\d{3}))$", "tag_name": "response_code"},
    {"tag_name": "response_code_class", "regex": "_rq(_(\\dxx))$"},
    {"tag_name": "http_conn_manager_listener_prefix", "regex": "^listener(?=\\.).*?\\.http\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)"},
    {"tag_name": "http_conn_manager_prefix", "regex": "^http\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)"},
    {"tag_name": "listener_address", "regex": "^listener\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)"},
    {"tag_name": "mongo_prefix", "regex": "^mongo\\.(.+?)\\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$"},
    {"regex": "(reporter=\\.=(.*?);\\.;)", "tag_name": "reporter"},
    {"regex": "(source_namespace=\\.=(.*?);\\.;)", "tag_name": "source_namespace"},
    {"regex": "(source_workload=\\.=(.*?);\\.;)", "tag_name": "source_workload"},
    {"regex": "(destination_service=\\.=(.*?);\\.;)", "tag_name": "destination_service"},
    {"regex": "(response_code=\\.=(.*?);\\.;)", "tag_name": "response_code"},
    {"regex": "(response_flags=\\.=(.*?);\\.;)", "tag_name": "response_flags"},
    {"regex": "(connection_security_policy=\\.=(.*?);\\.;)", "tag_name": "connection_security_policy"},
    {"regex": "(component\\.(.+?)\\.)", "tag_name": "component"},
]


def sds_secret_config(name):
    return {"name": name, "sds_config": copy.deepcopy(SDS_CONFIG)}


def istio_mutual_context(sans, sni):
    """The UpstreamTlsContext Istio writes for ISTIO_MUTUAL (auto or explicit)."""
    return {
        "@type": UPSTREAM_TLS_T,
        "common_tls_context": {
            "tls_params": dict(TLS_PARAMS),
            "alpn_protocols": ["istio-peer-exchange", "istio"],
            "tls_certificate_sds_secret_configs": [sds_secret_config("default")],
            "combined_validation_context": {
                "default_validation_context": {"match_subject_alt_names": [{"exact": s} for s in sans]},
                "validation_context_sds_secret_config": sds_secret_config("ROOTCA"),
            },
        },
        "sni": sni,
    }


# ---------------------------------------------------------------------------------------------
# Clusters


def circuit_breakers(max_connections=MAX32, max_pending=MAX32, max_requests=MAX32, max_retries=MAX32):
    return {"thresholds": [{
        "max_connections": max_connections,
        "max_pending_requests": max_pending,
        "max_requests": max_requests,
        "max_retries": max_retries,
        "track_remaining": True,
    }]}


def outbound_cluster(svc, subset=None, dr=None, version="2024-04-16T12:49:47Z/27"):
    """An Istio 1.21 sidecar outbound EDS cluster for a Kubernetes service.

    svc: {host, name, ns, port, sans}; dr: the DestinationRule's effect, keys tls ("auto",
    "ISTIO_MUTUAL", "DISABLE"), max_connections, max_pending, max_requests_per_connection,
    idle_timeout, outlier {consecutive_5xx, interval, base_ejection_time, max_ejection_percent}.
    """
    dr = dr or {}
    name = f"outbound|{svc['port']}|{subset or ''}|{svc['host']}"
    sni = f"outbound_.{svc['port']}_.{subset or ''}_.{svc['host']}"
    istio_md = {"services": [{"host": svc["host"], "name": svc["name"], "namespace": svc["ns"]}],
                "default_original_port": svc["port"]}
    if dr.get("config"):
        istio_md["config"] = f"/apis/networking.istio.io/v1alpha3/namespaces/{svc['ns']}/destination-rule/{svc['name']}"
    if subset:
        istio_md["subset"] = subset
    c = {
        "@type": CLUSTER_T,
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": copy.deepcopy(ADS), "service_name": name},
        "connect_timeout": "10s",
        "lb_policy": "LEAST_REQUEST",
        "circuit_breakers": circuit_breakers(
            max_connections=dr.get("max_connections", MAX32),
            max_pending=dr.get("max_pending", MAX32),
            max_requests=dr.get("max_requests", MAX32),
        ),
        "common_lb_config": {},
        "metadata": {"filter_metadata": {"istio": istio_md}},
        "filters": [{
            "name": "istio.metadata_exchange",
            "typed_config": {
                "@type": TYPED_STRUCT_T,
                "type_url": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
                "value": {"protocol": "istio-peer-exchange", "enable_discovery": True},
            },
        }],
    }
    if "outlier" in dr:
        o = dr["outlier"]
        c["outlier_detection"] = {
            "consecutive_5xx": o["consecutive_5xx"],
            "interval": o["interval"],
            "base_ejection_time": o["base_ejection_time"],
            "max_ejection_percent": o["max_ejection_percent"],
            "enforcing_consecutive_5xx": 100,
            "enforcing_success_rate": 0,
        }
        # Istio disables the panic threshold with outlier detection (min_health_percent 0).
        c["common_lb_config"] = {"healthy_panic_threshold": {}}
    tls = dr.get("tls", "auto")
    if tls == "auto":
        c["transport_socket_matches"] = [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": {"name": "envoy.transport_sockets.tls",
                                  "typed_config": istio_mutual_context(svc["sans"], sni)}},
            {"name": "tlsMode-disabled", "match": {},
             "transport_socket": {"name": "envoy.transport_sockets.raw_buffer",
                                  "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}},
        ]
    elif tls == "ISTIO_MUTUAL":
        c["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": istio_mutual_context(svc["sans"], sni)}
    # tls == "DISABLE": no transport socket at all, Envoy's plaintext default.
    opts = {"@type": HTTP_OPTS_T, "explicit_http_config": {"http_protocol_options": {}}}
    common = {}
    if "idle_timeout" in dr:
        common["idle_timeout"] = dr["idle_timeout"]
    if "max_requests_per_connection" in dr:
        common["max_requests_per_connection"] = dr["max_requests_per_connection"]
    if common:
        opts = {"@type": HTTP_OPTS_T, "common_http_protocol_options": common,
                "explicit_http_config": {"http_protocol_options": {}}}
    c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
    return {"version_info": version, "cluster": c, "last_updated": "2024-04-16T12:51:33.604Z"}


def inbound_cluster(port, svc, version="2024-04-16T12:49:47Z/27"):
    """Istio 1.21's inbound cluster: ORIGINAL_DST to the pod IP, bound to 127.0.0.6."""
    name = f"inbound|{port}||"
    return {"version_info": version, "cluster": {
        "@type": CLUSTER_T,
        "name": name,
        "type": "ORIGINAL_DST",
        "connect_timeout": "10s",
        "lb_policy": "CLUSTER_PROVIDED",
        "circuit_breakers": circuit_breakers(),
        "cleanup_interval": "60s",
        "upstream_bind_config": {"source_address": {"address": "127.0.0.6", "port_value": 0}},
        "metadata": {"filter_metadata": {"istio": {"services": [{"host": svc["host"], "name": svc["name"], "namespace": svc["ns"]}]}}},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTS_T, "explicit_http_config": {"http_protocol_options": {}}}},
    }, "last_updated": "2024-04-16T12:51:33.611Z"}


def special_clusters(version="2024-04-16T12:49:47Z/27"):
    out = []
    out.append({"version_info": version, "cluster": {
        "@type": CLUSTER_T, "name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "10s"},
        "last_updated": "2024-04-16T12:51:33.598Z"})
    out.append({"version_info": version, "cluster": {
        "@type": CLUSTER_T, "name": "InboundPassthroughCluster", "type": "ORIGINAL_DST",
        "connect_timeout": "10s", "lb_policy": "CLUSTER_PROVIDED", "circuit_breakers": circuit_breakers(),
        "upstream_bind_config": {"source_address": {"address": "127.0.0.6", "port_value": 0}},
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTS_T, "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}},
        "metadata": {"filter_metadata": {"istio": {"services": []}}}},
        "last_updated": "2024-04-16T12:51:33.600Z"})
    out.append({"version_info": version, "cluster": {
        "@type": CLUSTER_T, "name": "PassthroughCluster", "type": "ORIGINAL_DST",
        "connect_timeout": "10s", "lb_policy": "CLUSTER_PROVIDED", "circuit_breakers": circuit_breakers(),
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": HTTP_OPTS_T, "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}},
        "filters": [{"name": "istio.metadata_exchange", "typed_config": {
            "@type": TYPED_STRUCT_T,
            "type_url": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange",
            "value": {"protocol": "istio-peer-exchange", "enable_discovery": True}}}]},
        "last_updated": "2024-04-16T12:51:33.600Z"})
    return out


def static_clusters(capture_static):
    """agent and prometheus_stats as in the real capture, plus sds-grpc and xds-grpc."""
    out = copy.deepcopy(capture_static)
    for c in out:
        c["last_updated"] = "2024-04-16T12:51:31.822Z"
    h2 = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": HTTP_OPTS_T, "explicit_http_config": {"http2_protocol_options": {}}}}
    out.append({"cluster": {
        "@type": CLUSTER_T, "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"pipe": {"path": "./var/run/secrets/workload-spiffe-uds/socket"}}}}]}]},
        "typed_extension_protocol_options": h2}, "last_updated": "2024-04-16T12:51:31.823Z"})
    out.append({"cluster": {
        "@type": CLUSTER_T, "name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"pipe": {"path": "./etc/istio/proxy/XDS"}}}}]}]},
        "circuit_breakers": {"thresholds": [
            {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000},
            {"priority": "HIGH", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]},
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 300}},
        "max_requests_per_connection": 1,
        "typed_extension_protocol_options": h2}, "last_updated": "2024-04-16T12:51:31.823Z"})
    return out


# ---------------------------------------------------------------------------------------------
# Endpoints


def endpoints(cluster_name, eps):
    """An EndpointsConfigDump entry; eps: [{ip, port, workload, tls, health}]."""
    lbs = []
    for e in eps:
        lb = {
            "endpoint": {"address": {"socket_address": {"address": e["ip"], "port_value": e["port"]}},
                         "health_check_config": {}},
            "health_status": e.get("health", "HEALTHY"),
            "metadata": {"filter_metadata": {"istio": {"workload": e["workload"]}}},
            "load_balancing_weight": 1,
        }
        if e.get("tls", True):
            lb["metadata"]["filter_metadata"]["envoy.transport_socket_match"] = {"tlsMode": "istio"}
        lbs.append(lb)
    return {"endpoint_config": {
        "@type": CLA_T,
        "cluster_name": cluster_name,
        "endpoints": [{"locality": {"region": "us-central1", "zone": "us-central1-a"}, "lb_endpoints": lbs,
                       "load_balancing_weight": len(lbs)}] if lbs else [],
        "policy": {"overprovisioning_factor": 140},
    }}


# ---------------------------------------------------------------------------------------------
# Routes and listeners


def vhost(svc, svc_ip, routes):
    h, p = svc["host"], svc["port"]
    short, ns = svc["name"], svc["ns"]
    return {
        "name": f"{h}:{p}",
        "domains": [f"{h}:{p}", short + f":{p}", short, f"{short}.{ns}.svc:{p}", f"{short}.{ns}.svc",
                    f"{short}.{ns}:{p}", f"{short}.{ns}", f"{svc_ip}:{p}", svc_ip, h],
        "routes": routes,
        "include_request_attempt_count": True,
    }


def default_route(svc, cluster=None):
    cluster = cluster or f"outbound|{svc['port']}||{svc['host']}"
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster, "timeout": "0s", "retry_policy": copy.deepcopy(DEFAULT_RETRY),
                  "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}},
        "decorator": {"operation": f"{svc['host']}:{svc['port']}/*"},
    }


def vs_route(svc, cluster, timeout=None, retry=None, name=None, weighted=None):
    """A route Istio generates from a VirtualService http route."""
    r = {
        "match": {"prefix": "/"},
        "route": {"timeout": timeout or "0s", "retry_policy": retry or copy.deepcopy(DEFAULT_RETRY),
                  "max_stream_duration": {"max_stream_duration": timeout or "0s", "grpc_timeout_header_max": timeout or "0s"}},
        "metadata": {"filter_metadata": {"istio": {"config": f"/apis/networking.istio.io/v1alpha3/namespaces/{svc['ns']}/virtual-service/{svc['name']}"}}},
        "decorator": {"operation": f"{svc['name']}.{svc['ns']}.svc.cluster.local:{svc['port']}/*"},
    }
    if weighted:
        r["route"]["weighted_clusters"] = {"clusters": [{"name": n, "weight": w} for n, w in weighted]}
    else:
        r["route"]["cluster"] = cluster
    if name:
        r["name"] = name
    return r


def route_config_9080(vhosts, version="2024-04-16T12:49:47Z/27"):
    allow_any = {"name": "allow_any", "domains": ["*"], "routes": [{
        "name": "allow_any", "match": {"prefix": "/"},
        "route": {"cluster": "PassthroughCluster", "timeout": "0s",
                  "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}}}],
        "include_request_attempt_count": True}
    return {"version_info": version, "route_config": {
        "@type": ROUTE_T, "name": "9080", "virtual_hosts": vhosts + [allow_any], "validate_clusters": False,
        "max_direct_response_body_size_bytes": 1048576, "ignore_port_in_host_matching": True},
        "last_updated": "2024-04-16T12:51:33.702Z"}


def stats_filter(reporter):
    return {"name": "istio.stats", "typed_config": {
        "@type": TYPED_STRUCT_T, "type_url": "type.googleapis.com/stats.PluginConfig",
        "value": {"reporter": reporter} if reporter else {}}}


# Istio's Telemetry API with filter `response.code >= 400`: only failed requests are logged.
ACCESS_LOG = [{"name": "envoy.access_loggers.file", "filter": {"extension_filter": {
    "name": "envoy.access_loggers.extension_filters.cel", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
        "expression": "response.code >= 400"}}}, "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/dev/stdout",
    "log_format": {"text_format_source": {"inline_string": "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"}}}}]


def outbound_http_listener(port=9080):
    return {"name": f"0.0.0.0_{port}", "active_state": {"version_info": "2024-04-16T12:49:47Z/27", "listener": {
        "@type": LISTENER_T, "name": f"0.0.0.0_{port}",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [{"filter_chain_match": {"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]},
            "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM_T, "stat_prefix": f"outbound_0.0.0.0_{port}",
                "rds": {"config_source": copy.deepcopy(ADS), "route_config_name": str(port)},
                "http_filters": [
                    {"name": "istio.metadata_exchange", "typed_config": {"@type": TYPED_STRUCT_T, "type_url": "type.googleapis.com/io.istio.http.peer_metadata.Config", "value": {"upstream_discovery": [{"istio_headers": {}}, {"workload_discovery": {}}], "upstream_propagation": [{"istio_headers": {}}]}}},
                    {"name": "envoy.filters.http.grpc_stats", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig", "emit_filter_state": True, "stats_for_all_methods": False}},
                    {"name": "istio.alpn", "typed_config": {"@type": "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig", "alpn_override": [{"alpn_override": ["istio-http/1.0", "istio", "http/1.0"]}, {"upstream_protocol": "HTTP11", "alpn_override": ["istio-http/1.1", "istio", "http/1.1"]}, {"upstream_protocol": "HTTP2", "alpn_override": ["istio-h2", "istio", "h2"]}]}},
                    {"name": "envoy.filters.http.fault", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
                    {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
                    stats_filter(None),
                    {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_T}}],
                "access_log": copy.deepcopy(ACCESS_LOG),
                "use_remote_address": False, "upgrade_configs": [{"upgrade_type": "websocket"}],
                "stream_idle_timeout": "0s", "normalize_path": True,
                "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}}],
            "name": f"0.0.0.0_{port}"}],
        "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": TCP_PROXY_T, "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster", "access_log": copy.deepcopy(ACCESS_LOG)}}],
            "name": "PassthroughFilterChain"},
        "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
                             {"name": "envoy.filters.listener.http_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}],
        "listener_filters_timeout": "0s", "continue_on_listener_filters_timeout": True,
        "traffic_direction": "OUTBOUND", "bind_to_port": False},
        "last_updated": "2024-04-16T12:51:33.690Z"}}


def virtual_outbound():
    return {"name": "virtualOutbound", "active_state": {"version_info": "2024-04-16T12:49:47Z/27", "listener": {
        "@type": LISTENER_T, "name": "virtualOutbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
        "filter_chains": [{"filter_chain_match": {"destination_port": 15001},
                           "filters": [stats_filter_tcp("SERVER"), {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                               "@type": TCP_PROXY_T, "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}],
                           "name": "virtualOutbound-blackhole"}],
        "default_filter_chain": {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": TCP_PROXY_T, "stat_prefix": "PassthroughCluster", "cluster": "PassthroughCluster", "access_log": copy.deepcopy(ACCESS_LOG)}}],
            "name": "PassthroughFilterChain"},
        "use_original_dst": True, "traffic_direction": "OUTBOUND"},
        "last_updated": "2024-04-16T12:51:33.689Z"}}


def stats_filter_tcp(reporter):
    return {"name": "istio.stats", "typed_config": {
        "@type": TYPED_STRUCT_T, "type_url": "type.googleapis.com/stats.PluginConfig", "value": {"reporter": reporter}}}


def downstream_tls():
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": DOWNSTREAM_TLS_T,
        "common_tls_context": {
            "tls_params": dict(TLS_PARAMS, cipher_suites=["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-GCM-SHA256"]),
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificate_sds_secret_configs": [sds_secret_config("default")],
            "combined_validation_context": {
                "default_validation_context": {"match_subject_alt_names": [{"prefix": "spiffe://cluster.local/"}]},
                "validation_context_sds_secret_config": sds_secret_config("ROOTCA")},
        },
        "require_client_certificate": True}}


def inbound_hcm(port, svc, extra_filters=None):
    filters = [
        {"name": "istio.metadata_exchange", "typed_config": {"@type": TYPED_STRUCT_T, "type_url": "type.googleapis.com/io.istio.http.peer_metadata.Config", "value": {"downstream_discovery": [{"istio_headers": {}}, {"workload_discovery": {}}], "downstream_propagation": [{"istio_headers": {}}]}}},
        {"name": "envoy.filters.http.grpc_stats", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig", "emit_filter_state": True, "stats_for_all_methods": False}},
        {"name": "envoy.filters.http.fault", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
        {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
    ] + (extra_filters or []) + [
        stats_filter("SERVER"),
        {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_T}},
    ]
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM_T, "stat_prefix": f"inbound_0.0.0.0_{port}",
        "route_config": {"name": f"inbound|{port}||", "virtual_hosts": [{
            "name": f"inbound|http|{port}", "domains": ["*"], "routes": [{
                "name": "default", "match": {"prefix": "/"},
                "route": {"cluster": f"inbound|{port}||", "timeout": "0s",
                          "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"}},
                "decorator": {"operation": f"{svc['host']}:{port}/*"}}]}],
            "validate_clusters": False},
        "http_filters": filters,
        "access_log": copy.deepcopy(ACCESS_LOG),
        "server_name": "istio-envoy", "use_remote_address": False, "forward_client_cert_details": "APPEND_FORWARD",
        "set_current_client_cert_details": {"subject": True, "dns": True, "uri": True},
        "upgrade_configs": [{"upgrade_type": "websocket"}], "stream_idle_timeout": "0s", "normalize_path": True,
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}}


def virtual_inbound(port, svc, mtls="PERMISSIVE", extra_filters=None):
    """Istio 1.21's virtualInbound: per-port mTLS and (PERMISSIVE only) plaintext chains, and the
    passthrough chains for ports without a service. PERMISSIVE tells mTLS from plain TLS by the
    Istio ALPN values; STRICT has one TLS chain per port, without ALPN match, that requires a
    client certificate (pilot's inboundStrictHTTPFilterChainMatchOptions)."""
    alpn = {"application_protocols": ["istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"]}
    if mtls == "STRICT":
        alpn = {}
    chains = [{"filter_chain_match": {"destination_port": 15006},
               "filters": [stats_filter_tcp("SERVER"), {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                   "@type": TCP_PROXY_T, "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}],
               "name": "virtualInbound-blackhole"}]
    chains.append({"filter_chain_match": dict({"destination_port": port, "transport_protocol": "tls"}, **alpn),
                   "filters": [inbound_hcm(port, svc, extra_filters)], "transport_socket": downstream_tls(),
                   "name": f"0.0.0.0_{port}"})
    if mtls == "PERMISSIVE":
        chains.append({"filter_chain_match": {"destination_port": port, "transport_protocol": "raw_buffer"},
                       "filters": [inbound_hcm(port, svc, extra_filters)], "name": f"0.0.0.0_{port}"})
    chains.append({"filter_chain_match": dict({"transport_protocol": "tls"}, **alpn),
                   "filters": [stats_filter_tcp("SERVER"), {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                       "@type": TCP_PROXY_T, "stat_prefix": "InboundPassthroughCluster", "cluster": "InboundPassthroughCluster"}}],
                   "transport_socket": downstream_tls(), "name": "virtualInbound"})
    if mtls == "PERMISSIVE":
        chains.append({"filter_chain_match": {"transport_protocol": "raw_buffer"},
                       "filters": [stats_filter_tcp("SERVER"), {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                           "@type": TCP_PROXY_T, "stat_prefix": "InboundPassthroughCluster", "cluster": "InboundPassthroughCluster"}}],
                       "name": "virtualInbound"})
    return {"name": "virtualInbound", "active_state": {"version_info": "2024-04-16T12:49:47Z/27", "listener": {
        "@type": LISTENER_T, "name": "virtualInbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
        "filter_chains": chains,
        "listener_filters": [
            {"name": "envoy.filters.listener.original_dst", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}},
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
            {"name": "envoy.filters.listener.http_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"}}],
        "listener_filters_timeout": "0s", "continue_on_listener_filters_timeout": True,
        "traffic_direction": "INBOUND"},
        "last_updated": "2024-04-16T12:51:33.693Z"}}


# ---------------------------------------------------------------------------------------------
# Bootstrap and the whole dump


def bootstrap(capture_boot, pod, extra_regexes=None, annotations=None):
    node_id = f"sidecar~{pod['ip']}~{pod['name']}.{pod['ns']}~{pod['ns']}.svc.cluster.local"
    boot = copy.deepcopy(capture_boot)
    b = boot["bootstrap"]
    md = b["node"]["metadata"]
    proxy_config = {"binaryPath": "/usr/local/bin/envoy", "concurrency": 2, "configPath": "./etc/istio/proxy",
                    "controlPlaneAuthPolicy": "MUTUAL_TLS", "discoveryAddress": "istiod.istio-system.svc:15012",
                    "drainDuration": "45s", "proxyAdminPort": 15000, "serviceCluster": "istio-proxy",
                    "statNameLength": 189, "statusPort": 15020, "terminationDrainDuration": "5s"}
    if extra_regexes:
        proxy_config["proxyStatsMatcher"] = {"inclusionRegexps": list(extra_regexes)}
    md.update({
        "ISTIO_PROXY_SHA": PROXY_SHA,
        "ISTIO_VERSION": ISTIO_VERSION,
        "ANNOTATIONS": dict(annotations or {}),
        "APP_CONTAINERS": pod["app"],
        "CLUSTER_ID": "Kubernetes",
        "ENVOY_PROMETHEUS_PORT": 15090,
        "ENVOY_STATUS_PORT": 15021,
        "INSTANCE_IPS": pod["ip"],
        "INTERCEPTION_MODE": "REDIRECT",
        "LABELS": {"app": pod["app"], "security.istio.io/tlsMode": "istio",
                   "service.istio.io/canonical-name": pod["app"], "service.istio.io/canonical-revision": pod["version"],
                   "version": pod["version"]},
        "MESH_ID": "cluster.local",
        "NAME": pod["name"],
        "NAMESPACE": pod["ns"],
        "NODE_NAME": pod["node"],
        "OWNER": f"kubernetes://apis/apps/v1/namespaces/{pod['ns']}/deployments/{pod['app']}-{pod['version']}",
        "PILOT_SAN": ["istiod.istio-system.svc"],
        "POD_PORTS": json.dumps([{"containerPort": pod["port"], "protocol": "TCP"}], separators=(",", ":")),
        "PROXY_CONFIG": proxy_config,
        "SERVICE_ACCOUNT": pod["sa"],
        "WORKLOAD_NAME": f"{pod['app']}-{pod['version']}",
    })
    md["metadata"]["revision.sha"] = ENVOY_SHA
    b["node"]["id"] = node_id
    b["node"]["cluster"] = f"{pod['app']}.{pod['ns']}"
    b["node"]["locality"] = {"region": "us-central1", "zone": "us-central1-a"}
    b["node"]["user_agent_name"] = "envoy"
    b["node"]["user_agent_build_version"] = {"version": {"major_number": 1, "minor_number": 29, "patch": 4},
                                             "metadata": {"build.type": "RELEASE", "revision.sha": ENVOY_SHA, "revision.status": "Clean", "ssl.version": "BoringSSL"}}
    patterns = [{"prefix": p} for p in DEFAULT_PREFIXES] + [{"suffix": s} for s in DEFAULT_SUFFIXES]
    patterns += [{"safe_regex": {"regex": r}} for r in (extra_regexes or [])]
    patterns += [{"prefix": "component"}]
    b["static_resources"] = {}  # filled by config_dump with the static clusters; listeners elided
    b["dynamic_resources"] = {
        "lds_config": copy.deepcopy(ADS), "cds_config": copy.deepcopy(ADS),
        "ads_config": {"api_type": "GRPC", "set_node_on_first_message_only": True, "transport_api_version": "V3",
                       "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}}
    b["cluster_manager"] = {"outlier_detection": {}}
    b["stats_config"] = {"stats_tags": STATS_TAGS, "use_all_default_tags": False,
                         "stats_matcher": {"inclusion_list": {"patterns": patterns}}}
    b["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 15000}},
                  "profile_path": "/var/lib/istio/data/envoy.prof"}
    boot["last_updated"] = "2024-04-16T12:51:31.818Z"
    return boot


def secrets_dump(chain_pem, root_pem, issued):
    return {
        "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
        "dynamic_active_secrets": [
            {"name": "default", "version_info": issued, "last_updated": issued,
             "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "default",
                        "tls_certificate": {"certificate_chain": {"inline_bytes": base64.b64encode(chain_pem).decode()},
                                            "private_key": {"inline_bytes": REDACTED}}}},
            {"name": "ROOTCA", "version_info": "2024-04-16T12:51:32Z", "last_updated": "2024-04-16T12:51:32.004Z",
             "secret": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", "name": "ROOTCA",
                        "validation_context": {"trusted_ca": {"inline_bytes": base64.b64encode(root_pem).decode()}}}},
        ],
    }


def config_dump(boot, static_cls, dynamic_cls, eds, listeners, static_listeners, routes, secrets, cds_version):
    # The bootstrap's static_resources repeat the static clusters and listeners listed below;
    # they are left out to keep the file small.
    del boot["bootstrap"]["static_resources"]
    return {"configs": [
        boot,
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": cds_version,
         "static_clusters": static_cls, "dynamic_active_clusters": dynamic_cls},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": eds},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "version_info": cds_version,
         "static_listeners": static_listeners, "dynamic_listeners": listeners},
        {"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": routes},
        secrets,
    ]}
