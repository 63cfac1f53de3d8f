"""The Kubernetes evidence files of an incident folder (events.yaml, services.yaml,
endpointslices.yaml, istio.yaml), as `kubectl get -o yaml` prints the lists a capture writes."""
import hashlib

import yaml

import world as w


def uid(*parts):
    h = hashlib.sha1("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def dump(kind, items, api="v1"):
    return yaml.safe_dump({"apiVersion": api, "items": items, "kind": kind, "metadata": {"resourceVersion": ""}},
                          sort_keys=False, default_flow_style=False, width=1000)


def service(name, port_name="http", app_protocol=None):
    s = w.SERVICES[name]
    port = {"name": port_name, "port": s["port"], "protocol": "TCP", "targetPort": s["port"]}
    if port_name is None:
        del port["name"]
    if app_protocol:
        port["appProtocol"] = app_protocol
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"creationTimestamp": "2024-04-15T09:12:40Z", "labels": {"app": name, "service": name},
                         "name": name, "namespace": w.NS, "resourceVersion": "1187", "uid": uid("svc", name)},
            "spec": {"clusterIP": s["ip"], "clusterIPs": [s["ip"]], "internalTrafficPolicy": "Cluster",
                     "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "ports": [port],
                     "selector": {"app": name}, "sessionAffinity": "None", "type": "ClusterIP"},
            "status": {"loadBalancer": {}}}


def services(*svcs):
    return dump("ServiceList", list(svcs))


def endpoint_slice(name, ready, suffix="7x2kq", port_name="http"):
    """The EndpointSlice of a service, its pods ready or not (ready: pod key -> bool)."""
    eps = []
    for key, ok in ready.items():
        p = w.PODS[key]
        eps.append({"addresses": [p["ip"]], "conditions": {"ready": ok, "serving": ok, "terminating": False},
                    "nodeName": p["node"], "targetRef": {"kind": "Pod", "name": p["name"], "namespace": w.NS,
                                                         "uid": uid("pod", p["name"])}})
    return {"addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": eps, "kind": "EndpointSlice",
            "metadata": {"creationTimestamp": "2024-04-15T09:12:40Z", "generateName": name + "-",
                         "labels": {"app": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                                    "kubernetes.io/service-name": name, "service": name},
                         "name": f"{name}-{suffix}", "namespace": w.NS, "resourceVersion": "50377",
                         "uid": uid("eps", name)},
            "ports": [{"name": port_name, "port": 9080, "protocol": "TCP"}]}


def endpoint_slices(*slices):
    return dump("EndpointSliceList", list(slices), api="discovery.k8s.io/v1")


def event(pod, reason, message, count, first, last, typ="Warning", field="spec.containers{istio-proxy}"):
    name = f"{pod['name']}.{hashlib.sha1((reason + message).encode()).hexdigest()[:16]}"
    return {"apiVersion": "v1", "count": count, "eventTime": None, "firstTimestamp": w.rfc(first),
            "involvedObject": {"apiVersion": "v1", "fieldPath": field, "kind": "Pod", "name": pod["name"],
                               "namespace": w.NS, "uid": uid("pod", pod["name"])},
            "kind": "Event", "lastTimestamp": w.rfc(last), "message": message,
            "metadata": {"creationTimestamp": w.rfc(first), "name": name, "namespace": w.NS, "resourceVersion": "50412",
                         "uid": uid("event", name)},
            "reason": reason, "reportingComponent": "kubelet", "reportingInstance": pod["node"],
            "source": {"component": "kubelet", "host": pod["node"]}, "type": typ}


def events(*evs):
    return dump("EventList", list(evs))


def istio_object(api, kind, name, ns, spec):
    return {"apiVersion": api, "kind": kind,
            "metadata": {"creationTimestamp": "2024-04-16T13:56:02Z", "generation": 1, "name": name, "namespace": ns,
                         "resourceVersion": "49920", "uid": uid(kind, ns, name)},
            "spec": spec}


def istio(*objs):
    return dump("List", list(objs))
