"""The bookinfo deployment every incident happens in, and the files that describe one pod."""
import copy
import datetime as dt
import hashlib
import json
import os

import yaml

import envoy
import stats

UTC = dt.timezone.utc
T1 = dt.datetime(2024, 4, 16, 14, 2, 11, tzinfo=UTC)  # first stats sample
WINDOW = 10
T2 = T1 + dt.timedelta(seconds=WINDOW)
PROXY_START = dt.datetime(2024, 4, 16, 12, 51, 31, tzinfo=UTC)
UPTIME1 = int((T1 - PROXY_START).total_seconds())  # 4240
UPTIME2 = UPTIME1 + WINDOW

NS = "default"


def svc(name, ip):
    host = f"{name}.{NS}.svc.cluster.local"
    return {"name": name, "ns": NS, "host": host, "port": 9080, "ip": ip,
            "sans": [f"spiffe://cluster.local/ns/{NS}/sa/bookinfo-{name}"]}


SERVICES = {
    "details": svc("details", "10.96.120.33"),
    "productpage": svc("productpage", "10.96.45.10"),
    "ratings": svc("ratings", "10.96.201.7"),
    "reviews": svc("reviews", "10.96.77.140"),
}


def pod(name, app, version, ip, node, rs):
    return {"name": name, "app": app, "version": version, "ip": ip, "node": node, "ns": NS, "rs": rs,
            "sa": f"bookinfo-{app}", "port": 9080, "workload": f"{app}-{version}",
            "principal": f"spiffe://cluster.local/ns/{NS}/sa/bookinfo-{app}"}


PODS = {
    "productpage": pod("productpage-v1-6c5b8d6b9f-k7x2m", "productpage", "v1", "10.244.1.17", "kind-worker", "6c5b8d6b9f"),
    "details": pod("details-v1-7f4669bdd9-qv8lp", "details", "v1", "10.244.1.12", "kind-worker", "7f4669bdd9"),
    "reviews-v1": pod("reviews-v1-5b5d6494f4-8hm2c", "reviews", "v1", "10.244.2.21", "kind-worker2", "5b5d6494f4"),
    "reviews-v2": pod("reviews-v2-5c4d5f6b7b-x9wqz", "reviews", "v2", "10.244.2.22", "kind-worker2", "5c4d5f6b7b"),
    "reviews-v3": pod("reviews-v3-7bd4f7c8b6-lm4p8", "reviews", "v3", "10.244.1.23", "kind-worker", "7bd4f7c8b6"),
    "ratings-a": pod("ratings-v1-85c74b6cb4-2tj6n", "ratings", "v1", "10.244.2.14", "kind-worker2", "85c74b6cb4"),
    "ratings-b": pod("ratings-v1-85c74b6cb4-r5w8d", "ratings", "v1", "10.244.1.19", "kind-worker", "85c74b6cb4"),
}
INGRESS = {"workload": "istio-ingressgateway", "app": "istio-ingressgateway", "version": "latest", "ns": "istio-system",
           "principal": "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
           "ip": "10.244.0.9"}

BACKENDS = {
    "details": ["details"],
    "productpage": ["productpage"],
    "ratings": ["ratings-a", "ratings-b"],
    "reviews": ["reviews-v1", "reviews-v2", "reviews-v3"],
}


def dst_of(service, pod_key=None):
    s = SERVICES[service]
    p = PODS[pod_key or BACKENDS[service][0]]
    return {"workload": p["workload"], "ns": NS, "principal": p["principal"], "app": p["app"],
            "version": p["version"], "service": s["host"], "service_name": service}


def src_of(p):
    return {"workload": p["workload"], "app": p["app"], "version": p["version"], "ns": p["ns"], "principal": p["principal"]}


def ts(t, ms=0):
    """An Envoy %START_TIME%: RFC 3339 with milliseconds."""
    t = t + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def rfc(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def request_id(*parts):
    h = hashlib.sha1("/".join(str(p) for p in parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-9{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


# ---------------------------------------------------------------------------------------------
# Access-log lines in Istio's default text format (1.9 and later)


def log_line(start, method, path, code, flags, details, term, transport, rx, tx, duration, upstream_time,
             ua, rid, authority, upstream_host, cluster, up_local, down_local, down_remote, sni, route):
    def dash(v):
        return "-" if v in (None, "") else str(v)
    return (f'[{start}] "{method} {path} HTTP/1.1" {code} {dash(flags)} {dash(details)} {dash(term)} '
            f'"{dash(transport)}" {rx} {tx} {duration} {dash(upstream_time)} "-" "{ua}" "{rid}" "{authority}" '
            f'"{dash(upstream_host)}" {dash(cluster)} {dash(up_local)} {dash(down_local)} {dash(down_remote)} '
            f'{dash(sni)} {dash(route)}')


UA = "fortio.org/fortio-1.63.3"


def outbound_log(p, service, start, code, flags, details, *, term=None, transport=None, tx=0, duration=0,
                 upstream_time=None, upstream_pod=None, cluster=None, path=None, port_seed=0, route="default"):
    """A line the client sidecar of pod p logs for a request to a service."""
    s = SERVICES[service]
    up = PODS[upstream_pod] if upstream_pod else None
    cluster = cluster if cluster is not None else f"outbound|9080||{s['host']}"
    path = path or {"details": "/details/0", "reviews": "/reviews/0", "ratings": "/ratings/0",
                    "productpage": "/productpage"}[service]
    local_port = 40000 + (port_seed * 7919) % 20000
    return log_line(start, "GET", path, code, flags, details, term, transport, 0, tx, duration, upstream_time,
                    UA, request_id(p["name"], start, service, port_seed), f"{service}:9080",
                    f"{up['ip']}:9080" if up else None, cluster,
                    f"{p['ip']}:{local_port}" if up and flags not in ("UF", "UF,URX") else None,
                    f"{s['ip']}:9080", f"{p['ip']}:{local_port + 1}", None, route)


def inbound_log(p, start, code, flags, details, *, term=None, transport=None, tx=0, duration=0,
                upstream_time=None, src_ip="10.244.1.17", port_seed=0, path="/details/0"):
    """A line the server sidecar of pod p logs for a request to its app."""
    local_port = 40000 + (port_seed * 7919) % 20000
    host = SERVICES[p["app"]]["host"]
    ok = flags in (None, "", "-")
    return log_line(start, "GET", path, code, flags, details, term, transport, 0, tx, duration, upstream_time,
                    UA, request_id(p["name"], start, port_seed), f"{p['app']}:9080", f"{p['ip']}:9080",
                    "inbound|9080||", "127.0.0.6:" + str(local_port) if ok else None, f"{p['ip']}:9080",
                    f"{src_ip}:{local_port + 3}", f"outbound_.9080_._.{host}", "default")


# ---------------------------------------------------------------------------------------------
# Histograms


def dist(n, shape):
    """n observations spread over [(ms, share)], rounding so the counts add up to n."""
    out, left = [], n
    for i, (ms, share) in enumerate(shape):
        c = left if i == len(shape) - 1 else int(round(n * share))
        c = min(c, left)
        left -= c
        if c:
            out.append((ms, c))
    return out


FAST = [(2, .35), (4, .35), (8, .2), (20, .08), (45, .02)]
NORMAL = [(6, .30), (12, .35), (30, .25), (70, .08), (160, .02)]
CONNECT = [(0.4, .6), (0.9, .35), (3, .05)]


# ---------------------------------------------------------------------------------------------
# Cluster traffic over the two phases: before the first sample, and the window


class Traffic:
    """A cluster's counters, gauges and histograms at the two samples."""

    def __init__(self, cluster, outlier=False, ssl=True, membership=1):
        self.cluster = cluster
        self.outlier, self.ssl = outlier, ssl
        self.values = [{}, {}]
        self.codes = [{}, {}]
        self.hists = [{}, {}]
        g = {"cb_remaining_cx": envoy.MAX32, "cb_remaining_pending": envoy.MAX32,
             "cb_remaining_retries": envoy.MAX32, "cb_remaining_rq": envoy.MAX32,
             "membership_healthy": membership, "membership_total": membership}
        self.gauges = [dict(g), dict(g)]

    def add(self, phase, values=None, codes=None, rq_time=None, connect=None):
        """Adds counts to a phase: 0 is before the first sample, 1 the window (the second sample
        is cumulative, so it includes phase 0)."""
        for ph in range(phase, 2):
            for k, v in (values or {}).items():
                self.values[ph][k] = self.values[ph].get(k, 0) + v
            for k, v in (codes or {}).items():
                self.codes[ph][k] = self.codes[ph].get(k, 0) + v
            if rq_time:
                self.hists[ph]["upstream_rq_time"] = self.hists[ph].get("upstream_rq_time", []) + list(rq_time)
            if connect:
                self.hists[ph]["upstream_cx_connect_ms"] = self.hists[ph].get("upstream_cx_connect_ms", []) + list(connect)
        return self

    def ok(self, phase, n, shape=NORMAL, conns=None):
        conns = conns if conns is not None else max(1, n // 400)
        return self.add(phase, {"upstream_rq_total": n, "upstream_cx_total": conns, "ssl_handshake": conns if self.ssl else 0},
                        {200: n}, dist(n, shape), dist(conns, CONNECT))

    def gauge(self, sample, **g):
        self.gauges[sample].update(g)
        return self

    def both(self, **g):
        return self.gauge(0, **g).gauge(1, **g)

    def write(self, sample, s):
        v = dict(self.values[sample])
        if not self.ssl:
            v = {k: x for k, x in v.items() if not k.startswith("ssl_")}
        stats.cluster_series(s, self.cluster, v, self.codes[sample], self.gauges[sample], self.hists[sample],
                             outlier=self.outlier, ssl=self.ssl)


class IstioTraffic:
    """istio_requests_total and istio_request_duration_milliseconds series."""

    def __init__(self):
        self.series = {}  # key -> [labels, [count0, count1], [obs0, obs1], with_duration]

    def add(self, phase, labels, n, shape=None, duration=False):
        key = tuple(labels)
        e = self.series.setdefault(key, [labels, [0, 0], [[], []], duration])
        obs = dist(n, shape) if shape else []
        for ph in range(phase, 2):
            e[1][ph] += n
            e[2][ph] = e[2][ph] + obs
        return self

    def write(self, sample, s):
        for labels, counts, obs, with_duration in self.series.values():
            s.counter("istio_requests_total", counts[sample], labels)
        for labels, counts, obs, with_duration in self.series.values():
            if with_duration:
                s.histogram("istio_request_duration_milliseconds", obs[sample], labels)


# ---------------------------------------------------------------------------------------------
# pod.yaml


def pod_annotations(p, extra=None):
    """The pod's annotations after injection; the sidecar's node metadata (ANNOTATIONS) has
    the same, read from the downward API."""
    ann = {
        "istio.io/rev": "default",
        "kubectl.kubernetes.io/default-container": p["app"],
        "kubectl.kubernetes.io/default-logs-container": p["app"],
        "prometheus.io/path": "/stats/prometheus",
        "prometheus.io/port": "15020",
        "prometheus.io/scrape": "true",
        "sidecar.istio.io/status": json.dumps({"initContainers": ["istio-init"], "containers": ["istio-proxy"],
                                               "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
                                               "imagePullSecrets": None, "revision": "default"}, separators=(",", ":")),
    }
    ann.update(extra or {})
    return ann


def pod_yaml(p, proxy_resources=None, annotations=None, proxy_status=None, app_ready=True, restarts=0,
             proxy_limits_from_annotation=False, created=None, started=None):
    """The pod as `kubectl get pod -o yaml` prints a bookinfo pod after sidecar injection."""
    created = created or PROXY_START - dt.timedelta(seconds=9)
    started = started or PROXY_START
    res = proxy_resources or {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    ann = pod_annotations(p, annotations)
    app_container = {
        "image": f"docker.io/istio/examples-bookinfo-{p['app']}-{p['version']}:1.19.1",
        "imagePullPolicy": "IfNotPresent",
        "name": p["app"],
        "ports": [{"containerPort": 9080, "protocol": "TCP"}],
        "resources": {},
        "securityContext": {"runAsUser": 1000},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-7xqzn", "readOnly": True}],
    }
    if p["app"] == "productpage":
        app_container["volumeMounts"].insert(0, {"mountPath": "/tmp", "name": "tmp"})
    proxy_env = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.serviceAccountName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}},
        {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
        {"name": "PROXY_CONFIG", "value": "{}\n"},
        {"name": "ISTIO_META_POD_PORTS", "value": "[\n    {\"containerPort\":9080,\"protocol\":\"TCP\"}\n]"},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": p["app"]},
        {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.memory"}}},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"divisor": "0", "resource": "limits.cpu"}}},
        {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
        {"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": p["workload"]},
        {"name": "ISTIO_META_OWNER", "value": f"kubernetes://apis/apps/v1/namespaces/{NS}/deployments/{p['workload']}"},
        {"name": "ISTIO_META_MESH_ID", "value": "cluster.local"},
        {"name": "TRUST_DOMAIN", "value": "cluster.local"},
    ]
    if "proxy.istio.io/config" in ann:
        for e in proxy_env:
            if e["name"] == "PROXY_CONFIG":
                e["value"] = json.dumps(yaml.safe_load(ann["proxy.istio.io/config"]), separators=(",", ":")) + "\n"
    proxy = {
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning",
                 "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "env": proxy_env,
        "image": "docker.io/istio/proxyv2:1.21.2",
        "imagePullPolicy": "IfNotPresent",
        "name": "istio-proxy",
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {"failureThreshold": 4, "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                           "periodSeconds": 15, "successThreshold": 1, "timeoutSeconds": 3},
        "resources": res,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsGroup": 1337, "runAsNonRoot": True, "runAsUser": 1337},
        "startupProbe": {"failureThreshold": 600, "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                         "periodSeconds": 1, "successThreshold": 1, "timeoutSeconds": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
            {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-7xqzn", "readOnly": True},
        ],
    }
    init = {
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
                 "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
        "image": "docker.io/istio/proxyv2:1.21.2",
        "imagePullPolicy": "IfNotPresent",
        "name": "istio-init",
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "10m", "memory": "40Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                            "privileged": False, "readOnlyRootFilesystem": False, "runAsGroup": 0, "runAsNonRoot": False, "runAsUser": 0},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-7xqzn", "readOnly": True}],
    }
    volumes = [
        {"emptyDir": {}, "name": "workload-socket"},
        {"emptyDir": {}, "name": "credential-socket"},
        {"emptyDir": {}, "name": "workload-certs"},
        {"emptyDir": {"medium": "Memory"}, "name": "istio-envoy"},
        {"emptyDir": {}, "name": "istio-data"},
        {"downwardAPI": {"defaultMode": 420, "items": [
            {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}, "path": "labels"},
            {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}, "path": "annotations"}]}, "name": "istio-podinfo"},
        {"name": "istio-token", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
        {"configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}, "name": "istiod-ca-cert"},
    ]
    if p["app"] == "productpage":
        volumes.append({"emptyDir": {}, "name": "tmp"})
    volumes.append({"name": "kube-api-access-7xqzn", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
        {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}})

    proxy_status = proxy_status or {"ready": True, "restartCount": 0, "started": True,
                                    "state": {"running": {"startedAt": rfc(started)}}}
    proxy_ready = proxy_status["ready"]
    all_ready = proxy_ready and app_ready
    cond_time = rfc(started + dt.timedelta(seconds=2))

    def cstatus(name, image, image_id, extra):
        d = {"containerID": "containerd://" + hashlib.sha256((p["name"] + name).encode()).hexdigest(),
             "image": image, "imageID": image_id, "lastState": {}, "name": name}
        d.update(extra)
        return d

    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": ann,
            "creationTimestamp": rfc(created),
            "generateName": f"{p['app']}-{p['version']}-{p['rs']}-",
            "labels": {"app": p["app"], "pod-template-hash": p["rs"], "security.istio.io/tlsMode": "istio",
                       "service.istio.io/canonical-name": p["app"], "service.istio.io/canonical-revision": p["version"],
                       "version": p["version"]},
            "name": p["name"],
            "namespace": NS,
            "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                 "kind": "ReplicaSet", "name": f"{p['app']}-{p['version']}-{p['rs']}",
                                 "uid": request_id("rs", p["rs"])}],
            "resourceVersion": str(48213 + int(hashlib.sha1(p["name"].encode()).hexdigest()[:3], 16)),
            "uid": request_id("pod", p["name"]),
        },
        "spec": {
            "containers": [app_container, proxy],
            "dnsPolicy": "ClusterFirst",
            "enableServiceLinks": True,
            "initContainers": [init],
            "nodeName": p["node"],
            "preemptionPolicy": "PreemptLowerPriority",
            "priority": 0,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": p["sa"],
            "serviceAccountName": p["sa"],
            "terminationGracePeriodSeconds": 30,
            "tolerations": [
                {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": volumes,
        },
        "status": {
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": rfc(started), "status": "True", "type": "PodReadyToStartContainers"},
                {"lastProbeTime": None, "lastTransitionTime": rfc(started), "status": "True", "type": "Initialized"},
                {"lastProbeTime": None, "lastTransitionTime": cond_time, "status": "True" if all_ready else "False", "type": "Ready"}
                | ({} if all_ready else {"message": "containers with unready status: [istio-proxy]" if not proxy_ready else f"containers with unready status: [{p['app']}]", "reason": "ContainersNotReady"}),
                {"lastProbeTime": None, "lastTransitionTime": cond_time, "status": "True" if all_ready else "False", "type": "ContainersReady"}
                | ({} if all_ready else {"message": "containers with unready status: [istio-proxy]" if not proxy_ready else f"containers with unready status: [{p['app']}]", "reason": "ContainersNotReady"}),
                {"lastProbeTime": None, "lastTransitionTime": rfc(created), "status": "True", "type": "PodScheduled"},
            ],
            "containerStatuses": [
                cstatus("istio-proxy", "docker.io/istio/proxyv2:1.21.2",
                        "docker.io/istio/proxyv2@sha256:1ab2d4b0c2b1b8a8f1dd6bd0f2b7e2a6e1f1ef1f0e6f3d1c5a0b7a3a4d2c1e0f", proxy_status),
                cstatus(p["app"], f"docker.io/istio/examples-bookinfo-{p['app']}-{p['version']}:1.19.1",
                        f"docker.io/istio/examples-bookinfo-{p['app']}-{p['version']}@sha256:" + hashlib.sha256(p["app"].encode()).hexdigest(),
                        {"ready": app_ready, "restartCount": restarts, "started": True,
                         "state": {"running": {"startedAt": rfc(started + dt.timedelta(seconds=1))}}}),
            ],
            "hostIP": "172.18.0.3" if p["node"] == "kind-worker" else "172.18.0.4",
            "hostIPs": [{"ip": "172.18.0.3" if p["node"] == "kind-worker" else "172.18.0.4"}],
            "initContainerStatuses": [cstatus("istio-init", "docker.io/istio/proxyv2:1.21.2",
                                              "docker.io/istio/proxyv2@sha256:1ab2d4b0c2b1b8a8f1dd6bd0f2b7e2a6e1f1ef1f0e6f3d1c5a0b7a3a4d2c1e0f",
                                              {"ready": True, "restartCount": 0, "started": False, "state": {"terminated": {
                                                  "containerID": "containerd://" + hashlib.sha256((p["name"] + "init").encode()).hexdigest(),
                                                  "exitCode": 0, "finishedAt": rfc(started - dt.timedelta(seconds=1)), "reason": "Completed",
                                                  "startedAt": rfc(started - dt.timedelta(seconds=2))}}})],
            "phase": "Running",
            "podIP": p["ip"],
            "podIPs": [{"ip": p["ip"]}],
            "qosClass": "Burstable",
            "startTime": rfc(created),
        },
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)


# ---------------------------------------------------------------------------------------------
# /server_info and /clusters?format=json


def server_info(p, uptime, state="LIVE", concurrency=2):
    node_id = f"sidecar~{p['ip']}~{p['name']}.{NS}~{NS}.svc.cluster.local"
    return {
        "version": envoy.ENVOY_VERSION,
        "state": state,
        "hot_restart_version": "disabled",
        "command_line_options": {
            "base_id": "0", "use_dynamic_base_id": False, "skip_hot_restart_on_no_parent": False,
            "skip_hot_restart_parent_stats": False, "base_id_path": "", "concurrency": concurrency,
            "config_path": "etc/istio/proxy/envoy-rev.json", "config_yaml": "", "allow_unknown_static_fields": True,
            "reject_unknown_dynamic_fields": False, "ignore_unknown_dynamic_fields": False,
            "admin_address_path": "", "local_address_ip_version": "v4", "log_level": "warning",
            "component_log_level": "misc:error", "log_format": "%Y-%m-%dT%T.%fZ\t%l\tenvoy %n %g:%#\t%v\tthread=%t",
            "log_format_escaped": False, "log_path": "", "service_cluster": "", "service_node": "", "service_zone": "",
            "drain_strategy": "Immediate", "mode": "Serve", "disable_hot_restart": True, "enable_mutex_tracing": False,
            "restart_epoch": 0, "cpuset_threads": False, "disabled_extensions": [], "enable_fine_grain_logging": False,
            "socket_path": "@envoy_domain_socket", "socket_mode": 0, "enable_core_dump": False, "stats_tag": [],
            "drain_time": "45s", "parent_shutdown_time": "60s", "file_flush_interval": "10s",
        },
        "node": {"id": node_id, "cluster": f"{p['app']}.{NS}",
                 "metadata": {"ISTIO_VERSION": envoy.ISTIO_VERSION, "NAME": p["name"], "NAMESPACE": NS,
                              "CLUSTER_ID": "Kubernetes", "WORKLOAD_NAME": p["workload"]},
                 "locality": {"region": "us-central1", "zone": "us-central1-a"}, "user_agent_name": "envoy",
                 "user_agent_build_version": {"version": {"major_number": 1, "minor_number": 29, "patch": 4},
                                              "metadata": {"revision.sha": envoy.ENVOY_SHA, "revision.status": "Clean",
                                                           "build.type": "RELEASE", "ssl.version": "BoringSSL"}}},
        "uptime_current_epoch": f"{uptime}s",
        "uptime_all_epochs": f"{uptime}s",
    }


def host_status(ip, stats_vals, healthy=True, outlier=False, eds="HEALTHY", success_rate=None):
    names = ["cx_connect_fail", "cx_total", "rq_error", "rq_success", "rq_timeout", "rq_total"]
    st = []
    for n in names:
        e = {"name": n}
        if stats_vals.get(n):
            e["value"] = str(stats_vals[n])
        st.append(e)
    for n in ("cx_active", "rq_active"):
        e = {"type": "GAUGE", "name": n}
        if stats_vals.get(n):
            e["value"] = str(stats_vals[n])
        st.append(e)
    hs = {"eds_health_status": eds}
    if outlier:
        hs = {"failed_outlier_check": True, "eds_health_status": eds}
    h = {"address": {"socket_address": {"address": ip, "port_value": 9080}}, "stats": st, "health_status": hs,
         "weight": 1, "locality": {"region": "us-central1", "zone": "us-central1-a"}}
    if success_rate is not None:
        h["success_rate"] = {"value": success_rate}
    h["local_origin_success_rate"] = {"value": -1}
    return h


def cluster_status(name, hosts, cb=None):
    cb = cb or {"max_connections": envoy.MAX32, "max_pending_requests": envoy.MAX32, "max_requests": envoy.MAX32, "max_retries": envoy.MAX32}
    return {"name": name, "added_via_api": True, "host_statuses": hosts,
            "circuit_breakers": {"thresholds": [dict(cb),
                                                {"priority": "HIGH", "max_connections": 1024, "max_pending_requests": 1024, "max_requests": 1024, "max_retries": 3}]},
            "observability_name": name, "eds_service_name": name}


# ---------------------------------------------------------------------------------------------
# Writing a folder


def write_folder(root, name, files):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.remove(os.path.join(d, old))
    for fn, content in files.items():
        if content is None:
            continue
        if not isinstance(content, str):
            content = json.dumps(content, indent=1) + "\n"
            # Envoy's JSON printer escapes < and > (as in "\u003cinline\u003e" in /certs).
            content = content.replace("<", "\\u003c").replace(">", "\\u003e")
        with open(os.path.join(d, fn), "w") as f:
            f.write(content)


def meta(p, captured_by="kubectl-mesh capture v0.1.0"):
    return {"pod": p["name"], "namespace": NS, "captureTimes": [rfc(T1), rfc(T2)], "windowSeconds": WINDOW,
            "capturedBy": captured_by}
