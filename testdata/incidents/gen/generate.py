#!/usr/bin/env python3
"""Regenerates the incident evidence folders in testdata/incidents from the real captures.

Run from anywhere: python3 testdata/incidents/gen/generate.py (needs PyYAML; the captures are read
from ../shared/captures beside the repository, or MESH_CAPTURES_DIR). See ../README.md for what
each incident shows and what was taken from which capture. The certificates in certs/ were made
once for these incidents (their keys were never kept); regenerating does not change them, so the
output is byte-for-byte stable.
"""
import copy
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the repository

import envoy  # noqa: E402
import kube  # noqa: E402
import node  # noqa: E402
import stats  # noqa: E402
import world as w  # noqa: E402
from world import PODS, SERVICES, T1, Traffic, IstioTraffic, dist, FAST, NORMAL  # noqa: E402

INCIDENTS = os.path.dirname(HERE)
CAPTURES = os.environ.get("MESH_CAPTURES_DIR") or os.path.join(INCIDENTS, "..", "..", "..", "shared", "captures")
CAPTURE_121 = os.path.join(CAPTURES, "config_dump", "istio-1.21-sidecar-full-with-eds-sds.json")


def load_capture():
    with open(CAPTURE_121) as f:
        d = json.load(f)
    by_type = {c["@type"].rsplit(".", 1)[1]: c for c in d["configs"]}
    return {
        "boot": by_type["BootstrapConfigDump"],
        "static_clusters": by_type["ClustersConfigDump"]["static_clusters"],
        "static_listeners": by_type["ListenersConfigDump"]["static_listeners"],
    }


CAP = load_capture()


def cert(name):
    with open(os.path.join(HERE, "certs", name), "rb") as f:
        return f.read()


ROOT_PEM = cert("root-cert.pem")

# ---------------------------------------------------------------------------------------------
# The sidecar's configuration


# The Sidecar resources of the namespace limit each workload's egress to what it calls.
EGRESS = {"productpage": ["details", "reviews"], "reviews": ["ratings"], "details": [], "ratings": []}


def sidecar_dump(p, drs=None, vss=None, mtls="PERMISSIVE", regexes=(envoy.MESH_STATS_REGEX,), cert_file=None,
                 cert_issued="2024-04-16T12:51:31.914Z", annotations=None, eds_health=None, eds_tls=None,
                 listener_error=None, inbound_filters=None, eds_empty=()):
    """The /config_dump?include_eds of pod p's sidecar.

    drs: service -> DestinationRule effect (see envoy.outbound_cluster) plus "subsets": [names].
    vss: service -> list of route dicts (envoy.vs_route) replacing the default route.
    eds_empty: services whose EDS holds no endpoint (none of their pods is ready).
    """
    drs, vss = drs or {}, vss or {}
    eds_health, eds_tls = eds_health or {}, eds_tls or {}
    dyn, eds, vhosts = [], [], []
    for name in EGRESS[p["app"]]:
        s = SERVICES[name]
        dr = drs.get(name, {})
        backends = [] if name in eds_empty else w.BACKENDS[name]

        # istiod decides an endpoint's tlsMode metadata from the DestinationRule's TLS mode when
        # it sets one (tlsMode=istio only under ISTIO_MUTUAL), else from the pod's sidecar and
        # PeerAuthentication (eds_tls: False for a pod without either); a subset cluster is judged
        # by the subset's own policy, and these subsets have no tls of their own
        # (pilot/pkg/xds/endpoints/mtls_checker.go, checkMtlsEnabled).
        def eps(pods, dr_tls):
            return [{"ip": PODS[k]["ip"], "port": 9080,
                     "workload": f"{PODS[k]['workload']};{w.NS};{PODS[k]['app']};{PODS[k]['version']};Kubernetes",
                     "tls": dr_tls == "ISTIO_MUTUAL" if dr_tls else eds_tls.get(k, True),
                     "health": eds_health.get(k, "HEALTHY")} for k in pods]
        main = envoy.outbound_cluster(s, dr=dict(dr, config=bool(dr)))
        dyn.append(main)
        eds.append(envoy.endpoints(main["cluster"]["name"], eps(backends, dr.get("tls"))))
        for subset in dr.get("subsets", []):
            c = envoy.outbound_cluster(s, subset=subset, dr=dict(dr, config=True))
            dyn.append(c)
            eds.append(envoy.endpoints(c["cluster"]["name"], eps([k for k in backends if PODS[k]["version"] == subset], None)))
        vhosts.append(envoy.vhost(s, s["ip"], vss.get(name) or [envoy.default_route(s)]))
    svc = SERVICES[p["app"]]
    dyn.append(envoy.inbound_cluster(9080, svc))
    dyn += envoy.special_clusters()
    dyn.sort(key=lambda c: c["cluster"]["name"])
    listeners = [envoy.outbound_http_listener(9080), envoy.virtual_inbound(9080, svc, mtls, inbound_filters), envoy.virtual_outbound()]
    listeners.sort(key=lambda x: x["name"])
    if listener_error:
        for l in listeners:
            if l["name"] == listener_error["name"]:
                l["error_state"] = listener_error["error_state"]
    static_listeners = copy.deepcopy(CAP["static_listeners"])
    for sl in static_listeners:
        sl["last_updated"] = "2024-04-16T12:51:31.831Z"
    boot = envoy.bootstrap(CAP["boot"], p, extra_regexes=list(regexes), annotations=w.pod_annotations(p, annotations))
    chain = cert(cert_file or {"productpage": "productpage.pem", "details": "details.pem", "reviews": "reviews.pem"}[p["app"]]) + ROOT_PEM
    return envoy.config_dump(boot, envoy.static_clusters(CAP["static_clusters"]), dyn, eds, listeners,
                             static_listeners, [envoy.route_config_9080(vhosts)],
                             envoy.secrets_dump(chain, ROOT_PEM, cert_issued), "2024-04-16T12:49:47Z/27")


MESH_ANNOTATION = "proxyStatsMatcher:\n  inclusionRegexps:\n  - " + json.dumps(envoy.MESH_STATS_REGEX) + "\n"


def mesh_annotations(extra=None):
    a = {"proxy.istio.io/config": MESH_ANNOTATION}
    a.update(extra or {})
    return a


# ---------------------------------------------------------------------------------------------
# Stats


def render_stats(traffics, istio, sample, *, clusters=27, listeners=5, cds_rejected=(0, 0), lds_rejected=(0, 0),
                 cert_days=0, concurrency=2, extra=None):
    s = stats.Sample()
    uptime = w.UPTIME1 if sample == 0 else w.UPTIME2
    for t in traffics:
        t.write(sample, s)
    stats.xds_series(s, uptime)
    stats.manager_series(s, uptime, clusters, listeners, 27 + uptime // 600, 27 + uptime // 600,
                         cds_rejected=cds_rejected[sample], lds_rejected=lds_rejected[sample],
                         cert_days=cert_days, concurrency=concurrency)
    if istio:
        istio.write(sample, s)
    if extra:
        extra(s, sample)
    return s.render()


def inbound_traffic(p, rate=20, shape=None, ok_window=None, before_s=None):
    """The pod's own inbound cluster: requests from the caller, served by the app."""
    t = Traffic("inbound|9080||", ssl=False, membership=1)
    before = rate * (before_s or w.UPTIME1)
    window = ok_window if ok_window is not None else rate * w.WINDOW
    t.ok(0, before, shape or NORMAL, conns=40)
    t.ok(1, window, shape or NORMAL, conns=0)
    t.both(upstream_cx_active=4, upstream_rq_active=1)
    return t


def outbound_ok(service, rate=20, shape=FAST, membership=None):
    s = SERVICES[service]
    t = Traffic(f"outbound|9080||{s['host']}", membership=membership or len(w.BACKENDS[service]))
    t.ok(0, rate * w.UPTIME1, shape, conns=12)
    t.ok(1, rate * w.WINDOW, shape, conns=0)
    t.both(upstream_cx_active=6, upstream_rq_active=1)
    return t


def istio_ok(it, p, service, traffic, shape=None, split=None, duration=False, plaintext=False):
    """Source-reporter 200s from pod p to a service, as many as the cluster's stats counted,
    split across its backends. plaintext: no peer certificate, so no destination principal."""
    split = split or {k: 1 / len(w.BACKENDS[service]) for k in w.BACKENDS[service]}
    n0 = traffic.codes[0].get(200, 0)
    n1 = traffic.codes[1].get(200, 0) - n0
    keys = list(split)
    left0, left1 = n0, n1
    for i, k in enumerate(keys):
        c0 = left0 if i == len(keys) - 1 else int(n0 * split[k])
        c1 = left1 if i == len(keys) - 1 else int(n1 * split[k])
        left0, left1 = left0 - c0, left1 - c1
        dst = w.dst_of(service, k)
        if plaintext:
            dst["principal"] = "unknown"
        labels = stats.istio_labels("source", w.src_of(p), dst, 200)
        it.add(0, labels, c0, shape if duration else None, duration)
        it.add(1, labels, c1, shape if duration else None, duration)


def istio_inbound(it, p, rate, caller=None, shape=None, duration=False, before_s=None):
    caller = caller or w.INGRESS
    dst = {"workload": p["workload"], "ns": w.NS, "principal": p["principal"], "app": p["app"], "version": p["version"],
           "service": SERVICES[p["app"]]["host"], "service_name": p["app"]}
    labels = stats.istio_labels("destination", caller, dst, 200)
    it.add(0, labels, int(rate * (before_s or w.UPTIME1)), shape if duration else None, duration)
    it.add(1, labels, rate * w.WINDOW, shape if duration else None, duration)


def standard_files(p, dump, s1, s2, log=None, pod_kwargs=None, clusters_json=None, certs=None, server=True,
                   concurrency=2, timestamps=False):
    files = {
        "meta.json": w.meta(p),
        "config_dump.json": dump,
        "stats.prom": s1,
        "stats-2.prom": s2,
        "pod.yaml": w.pod_yaml(p, **(pod_kwargs or {})),
    }
    if server:
        files["server_info.json"] = w.server_info(p, w.UPTIME2, concurrency=concurrency)
    if log:
        if timestamps:
            log = [f"{stamp_for(line)} {line}" for line in log]
        files["access.log"] = "\n".join(log) + "\n"
    if clusters_json:
        files["clusters.json"] = {"cluster_statuses": clusters_json}
    if certs:
        files["certs.json"] = certs
    return files


def stamp_for(line):
    """`kubectl logs --timestamps` prefix: when the line reached the container log, a little after
    the request started."""
    start = line[1:25]
    sec = int(start[17:19])
    ms = int(start[20:23])
    return f"{start[:17]}{sec:02d}.{ms * 1000000 + 418733:09d}Z"


def window_starts(n, offset_ms=0, spread_ms=10000, before_ms=0):
    """n request start times spread over the window (and before it, by before_ms)."""
    total = spread_ms + before_ms
    return [w.ts(T1, -before_ms + offset_ms + (i * total) // max(n, 1)) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# The incidents. Each returns the files of its folder.

PP = PODS["productpage"]


def productpage_base(it, rate=20, details=True, reviews=True, inbound_shape=None):
    """productpage's usual traffic: 20 req/s from the ingress gateway, each calling details and
    reviews once."""
    traffics = [inbound_traffic(PP, rate, inbound_shape)]
    istio_inbound(it, PP, rate)
    if details:
        traffics.append(outbound_ok("details", rate, FAST))
        istio_ok(it, PP, "details", traffics[-1])
    if reviews:
        traffics.append(outbound_ok("reviews", rate, NORMAL))
        istio_ok(it, PP, "reviews", traffics[-1], split={"reviews-v1": .34, "reviews-v2": .33, "reviews-v3": .33})
    return traffics


def healthy():
    it = IstioTraffic()
    traffics = productpage_base(it)
    ann = mesh_annotations()
    dump = sidecar_dump(PP, annotations=ann)
    cj = [w.cluster_status(f"outbound|9080||{SERVICES['details']['host']}", [
        w.host_status(PODS["details"]["ip"], {"cx_total": 12, "rq_success": 84999, "rq_total": 84999, "cx_active": 6})])]
    files = standard_files(PP, dump, render_stats(traffics, it, 0, cert_days=0), render_stats(traffics, it, 1, cert_days=0),
                           pod_kwargs={"annotations": ann}, clusters_json=cj)
    # The Service that selects productpage names its port http, so Istio need not sniff it.
    files["services.yaml"] = kube.services(kube.service("productpage"))
    files.update(node.node_files())  # a quiet node: the node rules' silent case
    return files


def timeout():
    it = IstioTraffic()
    traffics = productpage_base(it, reviews=False)
    rv = SERVICES["reviews"]
    t = Traffic(f"outbound|9080||{rv['host']}", membership=3)
    # Before the VirtualService's 0.5s timeout (applied 15 minutes ago) every request completed.
    before_ok = 20 * (w.UPTIME1 - 900)
    t.ok(0, before_ok, [(6, .3), (12, .3), (30, .2), (120, .1), (450, .06), (850, .03), (1400, .01)], conns=12)
    # Since then reviews-v3 (a third of the traffic) answers in 400 ms to 1.4 s: those over 500 ms
    # hit the route timeout; the rest complete.
    ok15, ut15 = 20 * 900 - 3060, 3060
    shape_done = [(6, .32), (12, .3), (30, .18), (120, .08), (300, .07), (460, .05)]
    t.ok(0, ok15, shape_done, conns=0)
    t.add(0, {"upstream_rq_timeout": ut15, "upstream_rq_tx_reset": ut15, "upstream_rq_total": ut15}, {504: ut15})
    t.ok(1, 166, shape_done, conns=0)
    t.add(1, {"upstream_rq_timeout": 34, "upstream_rq_tx_reset": 34, "upstream_rq_total": 34}, {504: 34})
    t.both(upstream_cx_active=9, upstream_rq_active=7)
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v1": .5, "reviews-v2": .33, "reviews-v3": .17})
    lbl = stats.istio_labels("source", w.src_of(PP), w.dst_of("reviews", "reviews-v3"), 504, "UT")
    it.add(0, lbl, ut15, [(501, 1)], duration=False)
    it.add(1, lbl, 34, [(501, 1)], duration=False)
    vs = {"reviews": [envoy.vs_route(rv, f"outbound|9080||{rv['host']}", timeout="0.500s")]}
    ann = mesh_annotations()
    dump = sidecar_dump(PP, vss=vs, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=2000)):
        log.append(w.outbound_log(PP, "reviews", start, 504, "UT", "response_timeout", tx=24, duration=500 + i % 2,
                                  upstream_pod="reviews-v3", port_seed=i))
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann})


def connect_refused():
    p = PODS["details"]
    it = IstioTraffic()
    t = Traffic("inbound|9080||", ssl=False, membership=1)
    # productpage sends 5 req/s; each is refused by the app (bound to 127.0.0.1) and retried twice
    # by productpage's sidecar, so 15 connection attempts a second reach this sidecar's inbound cluster.
    attempts0, attempts1 = 15 * w.UPTIME1, 150
    for ph, n in ((0, attempts0), (1, attempts1)):
        t.add(ph, {"upstream_cx_connect_fail": n, "upstream_cx_total": n}, {503: n}, connect=None)
    traffics = [t]
    src = w.src_of(PP)
    dst = {"workload": p["workload"], "ns": w.NS, "principal": p["principal"], "app": "details", "version": "v1",
           "service": SERVICES["details"]["host"], "service_name": "details"}
    lbl = stats.istio_labels("destination", src, dst, 503, "UF")
    it.add(0, lbl, attempts0)
    it.add(1, lbl, attempts1)
    ann = mesh_annotations()
    dump = sidecar_dump(p, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=1000)):
        log.append(w.inbound_log(p, start, 503, "UF",
                                 "upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111}",
                                 transport="delayed connect error: 111", tx=145, duration=0, port_seed=i))
    return standard_files(p, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann}, timestamps=True)


def circuit_breaker():
    it = IstioTraffic()
    traffics = productpage_base(it, reviews=False)
    rv = SERVICES["reviews"]
    t = Traffic(f"outbound|9080||{rv['host']}", membership=3)
    # DestinationRule: one connection, one pending request, one request per connection. With a
    # load test at 20 req/s in bursts of 4, a third of the requests find the queue full.
    before_ok, before_uo = 20 * (w.UPTIME1 - 1200), 0
    t.ok(0, before_ok, NORMAL, conns=before_ok)
    ok20, uo20 = 20 * 1200 - 7440, 7440
    t.ok(0, ok20, NORMAL, conns=ok20)
    t.add(0, {"upstream_rq_pending_overflow": uo20, "upstream_cx_overflow": 2310}, {503: uo20})
    t.ok(1, 138, NORMAL, conns=138)
    t.add(1, {"upstream_rq_pending_overflow": 62, "upstream_cx_overflow": 19}, {503: 62})
    t.gauge(0, cb_cx_open=1, cb_rq_pending_open=0, cb_remaining_cx=0, cb_remaining_pending=1,
            upstream_cx_active=1, upstream_rq_active=1, upstream_rq_pending_active=0)
    t.gauge(1, cb_cx_open=1, cb_rq_pending_open=1, cb_remaining_cx=0, cb_remaining_pending=0,
            upstream_cx_active=1, upstream_rq_active=1, upstream_rq_pending_active=1)
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v1": .34, "reviews-v2": .33, "reviews-v3": .33})
    lbl = stats.istio_labels("source", w.src_of(PP), w.dst_of("reviews"), 503, "UO", dst_known=False)
    it.add(0, lbl, uo20)
    it.add(1, lbl, 62)
    dr = {"reviews": {"max_connections": 1, "max_pending": 1, "max_requests_per_connection": 1}}
    ann = mesh_annotations()
    dump = sidecar_dump(PP, drs=dr, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=3000)):
        log.append(w.outbound_log(PP, "reviews", start, 503, "UO", "upstream_reset_before_response_started{overflow}",
                                  tx=81, duration=0, port_seed=i))
    cb = {"max_connections": 1, "max_pending_requests": 1, "max_requests": envoy.MAX32, "max_retries": envoy.MAX32}
    cj = [w.cluster_status(f"outbound|9080||{rv['host']}", [
        w.host_status(PODS[k]["ip"], {"cx_total": n, "rq_success": n, "rq_total": n, "cx_active": 1 if k == "reviews-v2" else 0,
                                      "rq_active": 1 if k == "reviews-v2" else 0})
        for k, n in (("reviews-v1", 28930), ("reviews-v2", 28078), ("reviews-v3", 28070))], cb)]
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann}, clusters_json=cj)


def keepalive_race():
    it = IstioTraffic()
    traffics = productpage_base(it, details=False)
    dt_ = SERVICES["details"]
    # details v1.4 (node) runs without a sidecar (sidecar.istio.io/inject: "false"), so auto mTLS
    # sends it plaintext (its endpoint has no tlsMode metadata) and productpage's pool connects
    # to the app itself. The app closes connections idle for 5 s; the pool keeps them for 1 h.
    # Now and then a request is written to a connection the app has just closed. (Behind a
    # sidecar the race would be on details' inbound cluster, and productpage would get a 503
    # response that its default retries absorb, not a UC of its own.)
    t = Traffic(f"outbound|9080||{dt_['host']}", ssl=False, membership=1)
    t.ok(0, 20 * w.UPTIME1 - 1700, FAST, conns=1700 + 40)
    t.add(0, {"upstream_cx_destroy_remote_with_active_rq": 1700, "upstream_rq_total": 1700}, {503: 1700})
    t.ok(1, 196, FAST, conns=5)
    t.add(1, {"upstream_cx_destroy_remote_with_active_rq": 4, "upstream_rq_total": 4}, {503: 4})
    t.both(upstream_cx_active=5, upstream_rq_active=1)
    traffics.append(t)
    istio_ok(it, PP, "details", t, plaintext=True)
    lbl = stats.istio_labels("source", w.src_of(PP), dict(w.dst_of("details"), principal="unknown"), 503, "UC")
    it.add(0, lbl, 1700)
    it.add(1, lbl, 4)
    dr = {"details": {"idle_timeout": "3600s"}}
    ann = mesh_annotations()
    dump = sidecar_dump(PP, drs=dr, annotations=ann, eds_tls={"details": False})
    log = []
    starts = window_starts(14, before_ms=52000, offset_ms=311)
    for i, start in enumerate(starts):
        log.append(w.outbound_log(PP, "details", start, 503, "UC",
                                  "upstream_reset_before_response_started{connection_termination}",
                                  tx=95, duration=1 if i % 3 else 0, upstream_pod="details", port_seed=i))
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann}, timestamps=True)


RV2 = PODS["reviews-v2"]


def reviews_v2_base(it, rate=6.7):
    """reviews-v2 serves a third of productpage's 20 req/s and calls ratings for each."""
    traffics = [inbound_traffic(RV2, rate)]
    istio_inbound(it, RV2, rate, caller=w.src_of(PP))
    return traffics


def outlier_ejection():
    it = IstioTraffic()
    traffics = reviews_v2_base(it)
    rt = SERVICES["ratings"]
    t = Traffic(f"outbound|9080||{rt['host']}", outlier=True, membership=2)
    # ratings lost its database 4 minutes ago: both pods answered 500 until outlier detection
    # ejected them (5 consecutive 5xx each); with maxEjectionPercent 100 and no panic threshold
    # nothing is left, so every request fails fast with "no healthy upstream".
    before_ok = int(6.7 * (w.UPTIME1 - 240))
    t.ok(0, before_ok, FAST, conns=10)
    t.add(0, {"upstream_rq_total": 60, "outlier_detection_ejections_consecutive_5xx": 8,
              "outlier_detection_ejections_detected_consecutive_5xx": 8,
              "outlier_detection_ejections_enforced_consecutive_5xx": 8, "outlier_detection_ejections_enforced_total": 8,
              "outlier_detection_ejections_total": 8, "upstream_cx_none_healthy": 1548}, {500: 60})
    t.add(1, {"upstream_cx_none_healthy": 67})
    t.gauge(0, membership_healthy=0, ejections_active=2, upstream_cx_active=0)
    t.gauge(1, membership_healthy=0, ejections_active=2, upstream_cx_active=0)
    traffics.append(t)
    istio_ok(it, RV2, "ratings", t, split={"ratings-a": .5, "ratings-b": .5})
    it.add(0, stats.istio_labels("source", w.src_of(RV2), w.dst_of("ratings", "ratings-a"), 500), 31)
    it.add(0, stats.istio_labels("source", w.src_of(RV2), w.dst_of("ratings", "ratings-b"), 500), 29)
    lbl = stats.istio_labels("source", w.src_of(RV2), w.dst_of("ratings"), 503, "UH", dst_known=False)
    it.add(0, lbl, 1548)
    it.add(1, lbl, 67)
    dr = {"ratings": {"outlier": {"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 100}}}
    ann = mesh_annotations()
    dump = sidecar_dump(RV2, drs=dr, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=-4000)):
        log.append(w.outbound_log(RV2, "ratings", start, 503, "UH", "no_healthy_upstream", tx=19, duration=0,
                                  port_seed=i, path="/ratings/0"))
    cj = [w.cluster_status(f"outbound|9080||{rt['host']}", [
        w.host_status(PODS["ratings-a"]["ip"], {"cx_total": 6, "rq_error": 31, "rq_success": 13412, "rq_total": 13443}, outlier=True),
        w.host_status(PODS["ratings-b"]["ip"], {"cx_total": 5, "rq_error": 29, "rq_success": 13397, "rq_total": 13426}, outlier=True),
    ])]
    return standard_files(RV2, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann}, clusters_json=cj)


def retries_exhausted():
    it = IstioTraffic()
    traffics = reviews_v2_base(it)
    rt = SERVICES["ratings"]
    t = Traffic(f"outbound|9080||{rt['host']}", membership=2)
    # ratings is overloaded and answers 503 to 60% of attempts. The VirtualService retries 503
    # three times; a request fails only when all four attempts get a 503 (URX).
    before_ok = int(6.7 * (w.UPTIME1 - 600))
    t.ok(0, before_ok, FAST, conns=10)
    # 10 minutes at 6.7 req/s = 4020 requests: per 67 requests, 58 succeed (31 after a retry),
    # 87 attempts get a 503, 78 retries, 9 give up.
    k = 60
    t.ok(0, 58 * k, [(40, .5), (90, .3), (240, .2)], conns=0)
    t.add(0, {"upstream_rq_total": 87 * k, "upstream_rq_retry": 78 * k, "upstream_rq_retry_success": 31 * k,
              "upstream_rq_retry_limit_exceeded": 9 * k, "upstream_rq_retry_backoff_exponential": 78 * k},
          {503: 87 * k}, dist(87 * k, [(30, .6), (80, .4)]))
    t.ok(1, 58, [(40, .5), (90, .3), (240, .2)], conns=0)
    t.add(1, {"upstream_rq_total": 87, "upstream_rq_retry": 78, "upstream_rq_retry_success": 31,
              "upstream_rq_retry_limit_exceeded": 9, "upstream_rq_retry_backoff_exponential": 78},
          {503: 87}, dist(87, [(30, .6), (80, .4)]))
    t.both(upstream_cx_active=4, upstream_rq_active=2)
    traffics.append(t)
    istio_ok(it, RV2, "ratings", t, split={"ratings-a": .5, "ratings-b": .5})
    for key, n0, n1 in (("ratings-a", 5 * k, 5), ("ratings-b", 4 * k, 4)):
        lbl = stats.istio_labels("source", w.src_of(RV2), w.dst_of("ratings", key), 503, "URX")
        it.add(0, lbl, n0)
        it.add(1, lbl, n1)
    retry = {"retry_on": "connect-failure,refused-stream,unavailable,retriable-status-codes", "num_retries": 3,
             "per_try_timeout": "1s", "retry_host_predicate": copy.deepcopy(envoy.DEFAULT_RETRY["retry_host_predicate"]),
             "host_selection_retry_max_attempts": "5", "retriable_status_codes": [503]}
    vs = {"ratings": [envoy.vs_route(rt, f"outbound|9080||{rt['host']}", retry=retry)]}
    ann = mesh_annotations()
    dump = sidecar_dump(RV2, vss=vs, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(24, before_ms=16000)):
        pod_key = "ratings-a" if i % 9 < 5 else "ratings-b"
        log.append(w.outbound_log(RV2, "ratings", start, 503, "URX", "via_upstream", tx=31, duration=150 + (i * 37) % 80,
                                  upstream_time=25 + (i * 13) % 20, upstream_pod=pod_key, port_seed=i))
    return standard_files(RV2, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann}, timestamps=True)


def no_cluster():
    it = IstioTraffic()
    traffics = productpage_base(it, reviews=False)
    rv = SERVICES["reviews"]
    # Until 8 minutes ago reviews got 20 req/s. Then a canary VirtualService sending everything to
    # subset v3 was applied before the DestinationRule that defines the subsets: the route names
    # a cluster the proxy does not have.
    t = outbound_ok("reviews", 20, NORMAL)
    t.values[0]["upstream_rq_total"] -= 20 * 480
    t.codes[0][200] -= 20 * 480
    t.values[1] = dict(t.values[0])
    t.codes[1] = dict(t.codes[0])
    t.hists[1] = dict(t.hists[0])
    t.both(upstream_cx_active=6, upstream_rq_active=0)
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v1": .34, "reviews-v2": .33, "reviews-v3": .33})
    dst = {"workload": "unknown", "ns": "unknown", "principal": "unknown", "app": "unknown", "version": "unknown",
           "service": "reviews:9080", "service_name": "reviews:9080"}
    lbl = stats.istio_labels("source", w.src_of(PP), dst, 503, "NC", dst_known=False)
    it.add(0, lbl, 20 * 480)
    it.add(1, lbl, 200)
    vs = {"reviews": [envoy.vs_route(rv, f"outbound|9080|v3|{rv['host']}", name="reviews-v3-canary")]}
    ann = mesh_annotations()
    dump = sidecar_dump(PP, vss=vs, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=0)):
        log.append(w.outbound_log(PP, "reviews", start, 503, "NC", "cluster_not_found", tx=0, duration=0,
                                  cluster="", port_seed=i, route="reviews-v3-canary"))
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1),
                          log=log, pod_kwargs={"annotations": ann})


def app_error():
    it = IstioTraffic()
    traffics = productpage_base(it, details=False)
    dt_ = SERVICES["details"]
    t = Traffic(f"outbound|9080||{dt_['host']}", membership=1)
    # details v1.5 throws on books without an ISBN-13 and answers 500 for a quarter of requests,
    # for 12 minutes now. The proxy only relays them (via_upstream, no flag).
    t.ok(0, 20 * (w.UPTIME1 - 720) + 15 * 720, FAST, conns=12)
    t.add(0, {"upstream_rq_total": 5 * 720}, {500: 5 * 720}, dist(5 * 720, [(4, .5), (9, .5)]))
    t.ok(1, 150, FAST, conns=0)
    t.add(1, {"upstream_rq_total": 50}, {500: 50}, dist(50, [(4, .5), (9, .5)]))
    t.both(upstream_cx_active=6, upstream_rq_active=1)
    traffics.append(t)
    istio_ok(it, PP, "details", t)
    lbl = stats.istio_labels("source", w.src_of(PP), w.dst_of("details"), 500)
    it.add(0, lbl, 5 * 720)
    it.add(1, lbl, 50)
    ann = mesh_annotations()
    dump = sidecar_dump(PP, annotations=ann)
    log = []
    for i, start in enumerate(window_starts(25, before_ms=0)):
        log.append(w.outbound_log(PP, "details", start, 500, None, "via_upstream", tx=61, duration=5 + i % 4,
                                  upstream_time=4 + i % 4, upstream_pod="details", port_seed=i))
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                          pod_kwargs={"annotations": ann})


def slow_reviews(slow, page, membership):
    """productpage's files when its calls to reviews take the slow shape."""
    it = IstioTraffic()
    traffics = [inbound_traffic(PP, 20, page)]
    istio_inbound(it, PP, 20)
    traffics.append(outbound_ok("details", 20, FAST))
    istio_ok(it, PP, "details", traffics[-1])
    rv = SERVICES["reviews"]
    t = Traffic(f"outbound|9080||{rv['host']}", membership=membership)
    t.ok(0, 20 * w.UPTIME1, slow, conns=30)
    t.ok(1, 200, slow, conns=2)
    t.both(upstream_cx_active=14, upstream_rq_active=9)
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v2": 1.0})
    ann = mesh_annotations()
    dump = sidecar_dump(PP, annotations=ann)
    return standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1),
                          pod_kwargs={"annotations": ann})


def latency():
    slow = [(15, .4), (40, .3), (120, .15), (600, .1), (1800, .035), (2400, .015)]
    page = [(45, .4), (80, .3), (160, .15), (650, .1), (1850, .035), (2450, .015)]
    return slow_reviews(slow, page, 3)


def network_latency():
    """productpage waits 400 ms on average for reviews, whose own sidecar measured its
    application at under 30 ms: the time goes between the pods. The hop to reviews was followed
    (hops.json): reviews-v2's inbound side, sampled over its own window."""
    slow = [(120, .3), (250, .4), (600, .2), (1200, .08), (2400, .02)]
    page = [(150, .3), (280, .4), (640, .2), (1250, .08), (2450, .02)]
    files = slow_reviews(slow, page, 1)
    rv = SERVICES["reviews"]
    # reviews-v2 serves productpage and other callers at 30 req/s: its application answers in
    # 27 ms on average and its sidecar holds each request 1 ms longer.
    app = [(12, .4), (25, .35), (45, .2), (90, .05)]
    held = [(13, .4), (26, .35), (46, .2), (91, .05)]
    rv2 = PODS["reviews-v2"]
    inbound = Traffic("inbound|9080||", ssl=False, membership=1)
    inbound.ok(0, 30 * w.UPTIME1, app, conns=40)
    inbound.ok(1, 30 * w.WINDOW, app, conns=0)
    inbound.both(upstream_cx_active=4, upstream_rq_active=1)

    def downstream(s, sample):
        n = 30 * (w.UPTIME1 + (w.WINDOW if sample else 0))
        s.histogram("envoy_http_downstream_rq_time", dist(n, held), [("http_conn_manager_prefix", "inbound_0.0.0.0_9080")])

    files["hop-1.prom"] = render_stats([inbound], None, 0, extra=downstream)
    files["hop-1-2.prom"] = render_stats([inbound], None, 1, extra=downstream)
    files["hops.json"] = {"upstream": f"outbound|9080||{rv['host']}", "serviceNamespace": w.NS, "serviceName": "reviews",
                          "port": 9080, "windowSeconds": w.WINDOW,
                          "pods": [{"namespace": w.NS, "pod": rv2["name"], "stats": "hop-1.prom", "stats2": "hop-1-2.prom"}]}
    return files


def stats_disabled():
    it = IstioTraffic()
    istio_inbound(it, PP, 20)
    # The same traffic as the healthy incident; without per-cluster stats only Istio's metrics
    # show it (the Traffic objects only count the requests here, they are not written).
    istio_ok(it, PP, "details", outbound_ok("details", 20, FAST))
    istio_ok(it, PP, "reviews", outbound_ok("reviews", 20, NORMAL), split={"reviews-v1": 1.0}, shape=NORMAL, duration=True)
    dump = sidecar_dump(PP, regexes=())
    return standard_files(PP, dump, render_stats([], it, 0), render_stats([], it, 1))


def cpu_throttling():
    it = IstioTraffic()
    traffics = productpage_base(it)
    ann = mesh_annotations({"sidecar.istio.io/proxyCPU": "100m", "sidecar.istio.io/proxyCPULimit": "100m"})
    dump = sidecar_dump(PP, annotations=ann)
    res = {"limits": {"cpu": "100m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    files = standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1),
                           pod_kwargs={"annotations": ann, "proxy_resources": res})
    # istio-proxy's cgroup: 10 ms of CPU per 100 ms period, used up in 71 of the window's 100
    # periods; its threads waited 4.2 s in all (two workers).
    files.update(node.node_files(proxy_cgroup=(412345678, 42400, 27012, 1804123456),
                                 proxy_cgroup_delta=(1000000, 100, 71, 4200000)))
    return files


def healthy_node_incident(**node_kw):
    """productpage's healthy traffic on a node in trouble: the proxy and its upstreams are fine,
    the node's evidence is not."""
    it = IstioTraffic()
    traffics = productpage_base(it)
    ann = mesh_annotations()
    dump = sidecar_dump(PP, annotations=ann)
    files = standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1),
                           pod_kwargs={"annotations": ann})
    files.update(node.node_files(**node_kw))
    return files


def node_cpu_steal():
    # The node is a VM on an oversubscribed host: 38% of its CPU time in the window went to
    # other guests (steal), against 0.3% since boot.
    return healthy_node_incident(window_shares=dict(node.QUIET, steal=38, user=30, system=9),
                                 cpu_psi=((34.10, 28.70, 12.40, 2812345678), None), cpu_psi_delta=3400000)


def node_io():
    # A noisy neighbour on the node writes flat out to its root volume, a cloud disk out of burst
    # credits: 1960 I/Os in the window at 240 ms each, the disk busy 98% of the time, tasks
    # stalled on I/O 46% of it, iowait 31% of CPU time.
    return healthy_node_incident(window_shares=dict(node.QUIET, iowait=31),
                                 disk_delta=(310, 55800, 1650, 414600, 9800),
                                 io_psi=((47.30, 41.20, 22.80, 81234567), (21.40, 18.90, 9.70, 31234567)),
                                 io_psi_delta=(4600000, 2100000))


def conntrack_full():
    # A batch job on the node opens a new connection per request: 130917 of 131072 conntrack
    # entries are taken. productpage's pooled connections still work in the window; the next
    # new connection to or from the pod may be dropped.
    return healthy_node_incident(conntrack=(130917, 131072))


def sidecar_not_ready():
    restarted = w.T1 - w.dt.timedelta(seconds=130)
    status = {"ready": False, "restartCount": 4, "started": False,
              "lastState": {"terminated": {"containerID": "containerd://" + "5f2c" * 16, "exitCode": 137,
                                           "finishedAt": w.rfc(restarted - w.dt.timedelta(seconds=1)), "reason": "OOMKilled",
                                           "startedAt": w.rfc(restarted - w.dt.timedelta(minutes=9, seconds=40))}},
              "state": {"running": {"startedAt": w.rfc(restarted)}}}
    # Envoy is OOM-killed while it loads the whole mesh's configuration (no Sidecar resource in
    # this namespace, 256Mi limit); after its fourth restart it is still warming clusters.
    ann = {"sidecar.istio.io/proxyMemoryLimit": "256Mi"}
    res = {"limits": {"cpu": "2", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    files = {
        "meta.json": w.meta(PP),
        "pod.yaml": w.pod_yaml(PP, proxy_resources=res, annotations=ann, proxy_status=status),
        "server_info.json": w.server_info(PP, 140, state="INITIALIZING"),
        # The kubelet's events: the startup probe of /healthz/ready answers 503 every second
        # since the last restart (Envoy runs, istiod's configuration is not loaded yet), and the
        # back-offs between the OOM kills before it.
        "events.yaml": kube.events(
            kube.event(PP, "BackOff", f"Back-off restarting failed container istio-proxy in pod {PP['name']}_default({kube.uid('pod', PP['name'])})",
                       3, restarted - w.dt.timedelta(minutes=31), restarted - w.dt.timedelta(seconds=12)),
            kube.event(PP, "Started", "Started container istio-proxy", 5, w.PROXY_START, restarted, typ="Normal"),
            kube.event(PP, "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: 503", 497,
                       w.PROXY_START + w.dt.timedelta(seconds=2), w.T1 - w.dt.timedelta(seconds=1)),
        ),
    }
    return files


def mtls_mismatch():
    it = IstioTraffic()
    traffics = productpage_base(it, reviews=False)
    rv = SERVICES["reviews"]
    # A DestinationRule for reviews with tls.mode DISABLE (copied from a guide for a service
    # outside the mesh) was applied 6 minutes ago. The namespace's PeerAuthentication is STRICT,
    # so reviews' sidecars close every plaintext connection once the request is written: each
    # request fails with 503 UC connection_termination, which alone would read as a keep-alive
    # race. What this proxy shows is the cluster's mode (DISABLE, for a service of the mesh whose
    # default is auto mTLS) and that every request in the window fails that way. It does not show
    # that reviews' pods run a sidecar: under a DestinationRule's DISABLE istiod sends their
    # endpoints without tlsMode metadata. Its own inbound listener is STRICT, as the namespace's
    # PeerAuthentication makes it.
    t = Traffic(f"outbound|9080||{rv['host']}", ssl=False, membership=3)
    before_ok = 20 * (w.UPTIME1 - 360)
    t.ok(0, before_ok, NORMAL, conns=14)
    for ph, n in ((0, 20 * 360), (1, 200)):
        t.add(ph, {"upstream_cx_destroy_remote_with_active_rq": n, "upstream_rq_total": n, "upstream_cx_total": n}, {503: n})
    t.both(upstream_cx_active=2, upstream_rq_active=2)
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v1": .34, "reviews-v2": .33, "reviews-v3": .33})
    for key, share in (("reviews-v1", .34), ("reviews-v2", .33), ("reviews-v3", .33)):
        # Plaintext: no peer certificate, so the destination principal is unknown; the workload
        # labels still come from the endpoint's istio.workload metadata.
        dst = dict(w.dst_of("reviews", key), principal="unknown")
        lbl = stats.istio_labels("source", w.src_of(PP), dst, 503, "UC")
        it.add(0, lbl, int(20 * 360 * share))
        it.add(1, lbl, int(200 * share))
    dr = {"reviews": {"tls": "DISABLE"}}
    ann = mesh_annotations()
    dump = sidecar_dump(PP, drs=dr, mtls="STRICT", annotations=ann)
    log = []
    keys = ["reviews-v1", "reviews-v2", "reviews-v3"]
    for i, start in enumerate(window_starts(25, before_ms=0)):
        log.append(w.outbound_log(PP, "reviews", start, 503, "UC",
                                  "upstream_reset_before_response_started{connection_termination}",
                                  tx=95, duration=1 if i % 4 else 2, upstream_pod=keys[i % 3], port_seed=i))
    files = standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                           pod_kwargs={"annotations": ann})
    # What a capture reads from the API server: the namespace's PeerAuthentication STRICT and the
    # DestinationRule that sets DISABLE for reviews.
    files["istio.yaml"] = kube.istio(
        kube.istio_object("networking.istio.io/v1", "DestinationRule", "reviews-external", "default",
                          {"host": "reviews", "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
        kube.istio_object("security.istio.io/v1", "PeerAuthentication", "default", "default", {"mtls": {"mode": "STRICT"}}),
    )
    files["services.yaml"] = kube.services(kube.service("productpage"))
    return files


def no_endpoints():
    it = IstioTraffic()
    traffics = productpage_base(it, reviews=False)
    rv = SERVICES["reviews"]
    # reviews was upgraded 3 minutes ago with strategy Recreate and a readiness probe on /health,
    # a path its image does not serve: its three pods run but never become ready, so its
    # EndpointSlice holds three endpoints that are not ready, istiod sends productpage's proxy
    # none, and every request to reviews fails fast with 503 UH no_healthy_upstream.
    t = Traffic(f"outbound|9080||{rv['host']}", membership=0)
    t.ok(0, 20 * (w.UPTIME1 - 180), NORMAL, conns=14)
    t.add(0, {"upstream_cx_none_healthy": 20 * 180})
    t.add(1, {"upstream_cx_none_healthy": 200})
    traffics.append(t)
    istio_ok(it, PP, "reviews", t, split={"reviews-v1": .34, "reviews-v2": .33, "reviews-v3": .33})
    lbl = stats.istio_labels("source", w.src_of(PP), w.dst_of("reviews"), 503, "UH", dst_known=False)
    it.add(0, lbl, 20 * 180)
    it.add(1, lbl, 200)
    ann = mesh_annotations()
    dump = sidecar_dump(PP, annotations=ann, eds_empty=("reviews",))
    log = []
    for i, start in enumerate(window_starts(25)):
        log.append(w.outbound_log(PP, "reviews", start, 503, "UH", "no_healthy_upstream", tx=19, duration=0, port_seed=i))
    files = standard_files(PP, dump, render_stats(traffics, it, 0), render_stats(traffics, it, 1), log=log,
                           pod_kwargs={"annotations": ann})
    files["services.yaml"] = kube.services(kube.service("productpage"))
    files["endpointslices.yaml"] = kube.endpoint_slices(
        kube.endpoint_slice("productpage", {"productpage": True}, suffix="m4vzd"),
        kube.endpoint_slice("reviews", {"reviews-v1": False, "reviews-v2": False, "reviews-v3": False}),
    )
    return files


def cert_expiry():
    # The pod has run since yesterday 11:35. A NetworkPolicy applied in the namespace last night
    # blocks egress to istiod (istio-system:15012), so istio-agent could neither renew the
    # workload certificate (due from about 23:37) nor pass on configuration. The certificate
    # expired at 11:37 today. Requests still flow on the connections opened before that, so
    # nothing fails in the window yet; the first new mTLS connection, to or from this pod, will.
    saved = (w.PROXY_START, w.UPTIME1, w.UPTIME2)
    w.PROXY_START = w.dt.datetime(2024, 4, 15, 11, 35, 0, tzinfo=w.UTC)
    w.UPTIME1 = int((T1 - w.PROXY_START).total_seconds())
    w.UPTIME2 = w.UPTIME1 + w.WINDOW
    try:
        it = IstioTraffic()
        traffics = productpage_base(it)
        for t in traffics:  # no new connection, hence no handshake, in the window
            t.values[1]["upstream_cx_total"] = t.values[0].get("upstream_cx_total", 0)
            if "ssl_handshake" in t.values[0]:
                t.values[1]["ssl_handshake"] = t.values[0]["ssl_handshake"]
        ann = mesh_annotations()
        dump = sidecar_dump(PP, annotations=ann, cert_file="productpage-expired.pem",
                            cert_issued="2024-04-15T11:37:02.114Z")
        expired = cert("productpage-expired.pem")
        certs = {"certificates": [certs_entry(expired), certs_entry(expired)]}
        files = standard_files(PP, dump, render_stats(traffics, it, 0, cert_days=0), render_stats(traffics, it, 1, cert_days=0),
                               pod_kwargs={"annotations": ann}, certs=certs)
    finally:
        w.PROXY_START, w.UPTIME1, w.UPTIME2 = saved
    return files


def certs_entry(leaf_pem):
    """One entry of GET /certs: a TLS context's trusted CA and certificate chain."""
    from cryptography import x509
    root = x509.load_pem_x509_certificate(ROOT_PEM)
    leaf = x509.load_pem_x509_certificate(leaf_pem)

    def details(c, sans):
        left = (c.not_valid_after_utc - T1).days
        return {"path": "\u003cinline\u003e", "serial_number": format(c.serial_number, "x"),
                "subject_alt_names": sans, "days_until_expiration": str(max(left, 0)),
                "valid_from": c.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "expiration_time": c.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    leaf_sans = [{"uri": u} for u in leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)]
    return {"ca_cert": [details(root, [])], "cert_chain": [details(leaf, leaf_sans), details(root, [])]}


LUA = """function envoy_on_request(request_handle)
  request_handle:headers():add("x-request-start", "t=" .. os.time()
end
"""


def config_rejected():
    it = IstioTraffic()
    traffics = productpage_base(it)
    ann = mesh_annotations()
    lua_filter = {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", "inline_code": LUA}}
    # An EnvoyFilter (add-request-start, applied 40 minutes ago) inserts a Lua filter with a
    # syntax error into the inbound HTTP connection manager. Envoy rejects every virtualInbound
    # update since and keeps serving the listener it had; each push from istiod (an endpoint
    # change, one during the window) is rejected again.
    failed = envoy.virtual_inbound(9080, SERVICES["productpage"], "PERMISSIVE", [lua_filter])["active_state"]["listener"]
    error_state = {"name": "virtualInbound", "error_state": {
        "failed_configuration": failed,
        "last_update_attempt": "2024-04-16T14:02:17.402Z",
        "details": "Error adding/updating listener(s) virtualInbound: script load error: [string \"function envoy_on_request(request_handle)...\"]:3: ')' expected (to close '(' at line 2) near 'end'\n",
        "version_info": "2024-04-16T14:02:17Z/41"}}
    dump = sidecar_dump(PP, annotations=ann, listener_error=error_state)
    return standard_files(PP, dump, render_stats(traffics, it, 0, lds_rejected=(9, 10)),
                          render_stats(traffics, it, 1, lds_rejected=(9, 10)), pod_kwargs={"annotations": ann})


INCIDENT_BUILDERS = {
    "cert-expiry": cert_expiry,
    "config-rejected": config_rejected,
    "mtls-mismatch": mtls_mismatch,
    "app-error": app_error,
    "circuit-breaker": circuit_breaker,
    "connect-refused": connect_refused,
    "conntrack-full": conntrack_full,
    "cpu-throttling": cpu_throttling,
    "healthy": healthy,
    "keepalive-race": keepalive_race,
    "latency": latency,
    "network-latency": network_latency,
    "no-cluster": no_cluster,
    "no-endpoints": no_endpoints,
    "node-cpu-steal": node_cpu_steal,
    "node-io": node_io,
    "outlier-ejection": outlier_ejection,
    "retries-exhausted": retries_exhausted,
    "sidecar-not-ready": sidecar_not_ready,
    "stats-disabled": stats_disabled,
    "timeout": timeout,
}


def main():
    only = set(sys.argv[1:])
    for name, build in INCIDENT_BUILDERS.items():
        if only and name not in only:
            continue
        w.write_folder(INCIDENTS, name, build())
        size = sum(os.path.getsize(os.path.join(INCIDENTS, name, f)) for f in os.listdir(os.path.join(INCIDENTS, name)))
        print(f"{name:20s} {size / 1024:7.1f} KiB")


if __name__ == "__main__":
    main()
