"""GET /stats/prometheus output as an Istio 1.21 sidecar prints it.

Envoy prints counters, then gauges, then histograms; within each, one `# TYPE` line per metric
followed by its series, metrics in name order. Stats without tags print an empty label set `{}`.
Istio's stats_tags turn the cluster name and response codes into labels
(envoy_cluster_upstream_rq{response_code="503",cluster_name="outbound|9080||..."}), as the
DataDog Istio capture shows.
"""

BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
          600000, 1800000, 3600000]

CLUSTER_COUNTERS = [
    "upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_destroy_remote_with_active_rq",
    "upstream_cx_none_healthy", "upstream_cx_overflow", "upstream_cx_total",
    "upstream_rq_pending_overflow", "upstream_rq_per_try_timeout", "upstream_rq_retry",
    "upstream_rq_retry_backoff_exponential", "upstream_rq_retry_backoff_ratelimited",
    "upstream_rq_retry_limit_exceeded", "upstream_rq_retry_overflow", "upstream_rq_retry_success",
    "upstream_rq_rx_reset", "upstream_rq_timeout", "upstream_rq_total", "upstream_rq_tx_reset",
]
OUTLIER_COUNTERS = [
    "outlier_detection_ejections_consecutive_5xx", "outlier_detection_ejections_detected_consecutive_5xx",
    "outlier_detection_ejections_enforced_consecutive_5xx", "outlier_detection_ejections_enforced_total",
    "outlier_detection_ejections_overflow", "outlier_detection_ejections_total",
]
SSL_COUNTERS = ["ssl_connection_error", "ssl_fail_verify_cert_hash", "ssl_fail_verify_error",
                "ssl_fail_verify_no_cert", "ssl_fail_verify_san", "ssl_handshake"]
BREAKER_GAUGES = ["cx_open", "cx_pool_open", "rq_open", "rq_pending_open", "rq_retry_open",
                  "remaining_cx", "remaining_pending", "remaining_retries", "remaining_rq"]


def fmt_num(v):
    if isinstance(v, float) and not v.is_integer():
        s = repr(round(v, 6))
        return s
    return str(int(v))


def label_str(labels):
    if not labels:
        return "{}"
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


class Sample:
    """One /stats/prometheus reading."""

    def __init__(self):
        self.metrics = {}  # name -> (type, [(labels, value or histogram)])

    def add(self, kind, name, labels, value):
        t, series = self.metrics.setdefault(name, (kind, []))
        assert t == kind, name
        series.append((labels, value))

    def counter(self, name, value, labels=()):
        self.add("counter", name, list(labels), value)

    def gauge(self, name, value, labels=()):
        self.add("gauge", name, list(labels), value)

    def histogram(self, name, obs, labels=()):
        self.add("histogram", name, list(labels), obs)

    def render(self):
        out = []
        for kind in ("counter", "gauge", "histogram"):
            for name in sorted(n for n, (t, _) in self.metrics.items() if t == kind):
                _, series = self.metrics[name]
                out.append(f"# TYPE {name} {kind}")
                for labels, v in series:
                    if kind != "histogram":
                        out.append(f"{name}{label_str(labels)} {fmt_num(v)}")
                        continue
                    cum = 0
                    counts = bucketize(v)
                    for bound, c in zip(BOUNDS, counts):
                        cum += c
                        out.append(f"{name}_bucket{label_str(labels + [('le', fmt_bound(bound))])} {cum}")
                    total = sum(n for _, n in v)
                    out.append(f"{name}_bucket{label_str(labels + [('le', '+Inf')])} {total}")
                    out.append(f"{name}_sum{label_str(labels)} {fmt_num(float(sum(ms * n for ms, n in v)))}")
                    out.append(f"{name}_count{label_str(labels)} {total}")
        return "\n".join(out) + "\n"


def fmt_bound(b):
    return str(b) if isinstance(b, float) else str(b)


def bucketize(obs):
    counts = [0] * len(BOUNDS)
    for ms, n in obs:
        for i, b in enumerate(BOUNDS):
            if ms <= b:
                counts[i] += n
                break
    return counts


def cluster_series(s, cluster, values, codes, gauges, hists, outlier=False, ssl=False):
    """Writes one cluster's stats, as selected by the mesh stats regex."""
    cl = ("cluster_name", cluster)
    for name in CLUSTER_COUNTERS:
        s.counter("envoy_cluster_" + name, values.get(name, 0), [cl])
    classes = {}
    for code, n in sorted(codes.items()):
        s.counter("envoy_cluster_upstream_rq", n, [("response_code", str(code)), cl])
        classes[str(code)[0] + "xx"] = classes.get(str(code)[0] + "xx", 0) + n
    for cls, n in sorted(classes.items()):
        s.counter("envoy_cluster_upstream_rq", n, [("response_code_class", cls), cl])
    if outlier:
        for name in OUTLIER_COUNTERS:
            s.counter("envoy_cluster_" + name, values.get(name, 0), [cl])
    if ssl:
        for name in SSL_COUNTERS:
            s.counter("envoy_cluster_" + name, values.get(name, 0), [cl])
    for g in BREAKER_GAUGES:
        s.gauge("envoy_cluster_circuit_breakers_default_" + g, gauges.get("cb_" + g, 0), [cl])
    for g in ["membership_healthy", "membership_total", "upstream_cx_active", "upstream_rq_active",
              "upstream_rq_pending_active"]:
        s.gauge("envoy_cluster_" + g, gauges.get(g, 0), [cl])
    if outlier:
        s.gauge("envoy_cluster_outlier_detection_ejections_active", gauges.get("ejections_active", 0), [cl])
    for h in ("upstream_rq_time",):
        s.histogram("envoy_cluster_" + h, hists.get(h, []), [cl])


def xds_series(s, uptime):
    cl = ("cluster_name", "xds-grpc")
    pushes = 31 + uptime // 600
    vals = {
        "assignment_stale": 0, "assignment_timeout_received": 0, "bind_errors": 0, "default_total_match_count": 1,
        "lb_healthy_panic": 0, "lb_recalculate_zone_structures": 0, "lb_zone_cluster_too_small": 0,
        "lb_zone_no_capacity_left": 0, "membership_change": 1, "original_dst_host_invalid": 0,
        "retry_or_shadow_abandoned": 0, "update_attempt": 0, "update_empty": 0, "update_failure": 0,
        "update_no_rebuild": 0, "update_success": 0, "upstream_cx_close_notify": 0, "upstream_cx_connect_attempts_exceeded": 0,
        "upstream_cx_connect_fail": 0, "upstream_cx_connect_timeout": 0, "upstream_cx_destroy": 0,
        "upstream_cx_destroy_local": 0, "upstream_cx_destroy_remote": 0, "upstream_cx_http2_total": 1,
        "upstream_cx_none_healthy": 0, "upstream_cx_overflow": 0, "upstream_cx_protocol_error": 0,
        "upstream_cx_rx_bytes_total": 912384 + pushes * 4211, "upstream_cx_total": 1,
        "upstream_cx_tx_bytes_total": 48213 + pushes * 380, "upstream_rq_cancelled": 0, "upstream_rq_completed": 0,
        "upstream_rq_pending_overflow": 0, "upstream_rq_pending_total": 1, "upstream_rq_per_try_timeout": 0,
        "upstream_rq_retry": 0, "upstream_rq_rx_reset": 0, "upstream_rq_timeout": 0, "upstream_rq_total": 1,
        "upstream_rq_tx_reset": 0,
    }
    for k, v in vals.items():
        s.counter("envoy_cluster_" + k, v, [cl])
    for prio in ("default", "high"):
        for g in ("cx_open", "cx_pool_open", "rq_open", "rq_pending_open", "rq_retry_open"):
            s.gauge(f"envoy_cluster_circuit_breakers_{prio}_{g}", 0, [cl])
    for g, v in [("membership_degraded", 0), ("membership_excluded", 0), ("membership_healthy", 1),
                 ("membership_total", 1), ("upstream_cx_active", 1), ("upstream_rq_active", 1),
                 ("upstream_rq_pending_active", 0), ("version", 0)]:
        s.gauge("envoy_cluster_" + g, v, [cl])


def manager_series(s, uptime, clusters, listeners, cds_pushes, lds_pushes, cds_rejected=0, lds_rejected=0,
                   cert_days=0, concurrency=2, state=0, memory=0):
    c = s.counter
    g = s.gauge
    c("envoy_cluster_manager_cds_init_fetch_timeout", 0)
    c("envoy_cluster_manager_cds_update_attempt", cds_pushes + cds_rejected + 1)
    c("envoy_cluster_manager_cds_update_failure", 0)
    c("envoy_cluster_manager_cds_update_rejected", cds_rejected)
    c("envoy_cluster_manager_cds_update_success", cds_pushes)
    c("envoy_cluster_manager_cluster_added", clusters)
    c("envoy_cluster_manager_cluster_modified", 0)
    c("envoy_cluster_manager_cluster_removed", 0)
    c("envoy_cluster_manager_cluster_updated", 0)
    c("envoy_cluster_manager_cluster_updated_via_merge", 0)
    c("envoy_cluster_manager_update_merge_cancelled", 0)
    c("envoy_cluster_manager_update_out_of_merge_window", 0)
    g("envoy_cluster_manager_active_clusters", clusters)
    g("envoy_cluster_manager_cds_update_time", 1713272551704)
    g("envoy_cluster_manager_cds_version", 17240315828843151082)
    g("envoy_cluster_manager_warming_clusters", 0)
    c("envoy_listener_manager_lds_init_fetch_timeout", 0)
    c("envoy_listener_manager_lds_update_attempt", lds_pushes + lds_rejected + 1)
    c("envoy_listener_manager_lds_update_failure", 0)
    c("envoy_listener_manager_lds_update_rejected", lds_rejected)
    c("envoy_listener_manager_lds_update_success", lds_pushes)
    c("envoy_listener_manager_listener_added", listeners)
    c("envoy_listener_manager_listener_create_failure", 0)
    c("envoy_listener_manager_listener_create_success", listeners * concurrency)
    c("envoy_listener_manager_listener_in_place_updated", 0)
    c("envoy_listener_manager_listener_modified", 0)
    c("envoy_listener_manager_listener_removed", 0)
    c("envoy_listener_manager_listener_stopped", 0)
    g("envoy_listener_manager_lds_update_time", 1713272551712)
    g("envoy_listener_manager_lds_version", 17240315828843151082)
    g("envoy_listener_manager_total_filter_chains_draining", 0)
    g("envoy_listener_manager_total_listeners_active", listeners)
    g("envoy_listener_manager_total_listeners_draining", 0)
    g("envoy_listener_manager_total_listeners_warming", 0)
    g("envoy_listener_manager_workers_started", 1)
    c("envoy_server_debug_assertion_failures", 0)
    c("envoy_server_dynamic_unknown_fields", 0)
    c("envoy_server_envoy_bug_failures", 0)
    c("envoy_server_main_thread_watchdog_mega_miss", 0)
    c("envoy_server_main_thread_watchdog_miss", 0)
    c("envoy_server_static_unknown_fields", 0)
    c("envoy_server_wip_protos", 0)
    c("envoy_server_worker_0_watchdog_mega_miss", 0)
    c("envoy_server_worker_0_watchdog_miss", 0)
    if concurrency > 1:
        c("envoy_server_worker_1_watchdog_mega_miss", 0)
        c("envoy_server_worker_1_watchdog_miss", 0)
    g("envoy_server_compilation_settings_fips_mode", 0)
    g("envoy_server_concurrency", concurrency)
    g("envoy_server_days_until_first_cert_expiring", cert_days)
    g("envoy_server_hot_restart_epoch", 0)
    g("envoy_server_hot_restart_generation", 1)
    g("envoy_server_live", 1)
    g("envoy_server_memory_allocated", memory or 11874520 + uptime * 13)
    g("envoy_server_memory_heap_size", 25165824)
    g("envoy_server_memory_physical_size", 27590656)
    g("envoy_server_parent_connections", 0)
    g("envoy_server_seconds_until_first_ocsp_response_expiring", 0)
    g("envoy_server_state", state)
    g("envoy_server_stats_recent_lookups", 12873)
    g("envoy_server_total_connections", 14)
    g("envoy_server_uptime", uptime)
    g("envoy_server_version", 11818102)
    g("envoy_wasm_envoy_wasm_runtime_null_active", 18)
    c("envoy_wasm_envoy_wasm_runtime_null_created", 42)
    g("istio_build", 1, [("component", "proxy"), ("tag", "1.21.2")])


def istio_labels(reporter, src, dst, code, flags="-", csp=None, dst_known=True):
    """istio_requests_total's labels, in the order Istio 1.21 prints them."""
    if csp is None:
        csp = "unknown" if reporter == "source" else "mutual_tls"
    unk = "unknown"
    return [
        ("reporter", reporter),
        ("source_workload", src["workload"]),
        ("source_canonical_service", src["app"]),
        ("source_canonical_revision", src["version"]),
        ("source_workload_namespace", src["ns"]),
        ("source_principal", src["principal"]),
        ("source_app", src["app"]),
        ("source_version", src["version"]),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", dst["workload"] if dst_known else unk),
        ("destination_workload_namespace", dst["ns"] if dst_known else unk),
        ("destination_principal", dst["principal"] if dst_known else unk),
        ("destination_app", dst["app"] if dst_known else unk),
        ("destination_version", dst["version"] if dst_known else unk),
        ("destination_service", dst["service"]),
        ("destination_canonical_service", dst["app"] if dst_known else unk),
        ("destination_canonical_revision", dst["version"] if dst_known else "latest"),
        ("destination_service_name", dst["service_name"]),
        ("destination_service_namespace", dst["ns"]),
        ("destination_cluster", "Kubernetes" if dst_known else unk),
        ("request_protocol", "http"),
        ("response_code", str(code)),
        ("grpc_response_status", ""),
        ("response_flags", flags),
        ("connection_security_policy", csp),
    ]
