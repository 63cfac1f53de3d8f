package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Which clusters carry application traffic, what their hosts show, and the service hosts
// their names hold.

// clusterKind sorts upstream clusters by what the rules can say about them.
type clusterKind int

const (
	kindService      clusterKind = iota // a service the application calls (or a non-Istio upstream)
	kindInbound                         // inbound|port||: the local application behind the sidecar
	kindPassthrough                     // destinations outside the service registry
	kindBlackHole                       // traffic Istio drops on purpose (REGISTRY_ONLY)
	kindControlPlane                    // the proxy's xDS and SDS connections
	kindProxyOwn                        // the proxy's own plumbing (metrics, health, tracing)
)

// classifyCluster tells what kind of cluster a name is.
func classifyCluster(name string) clusterKind {
	switch name {
	case "BlackHoleCluster":
		return kindBlackHole
	case "PassthroughCluster", "InboundPassthroughCluster", "InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6":
		return kindPassthrough
	case "xds-grpc", "sds-grpc":
		return kindControlPlane
	case "agent", "prometheus_stats", "zipkin", "envoy_accesslog_service", "envoy_metrics_service",
		"lightstep", "datadog_agent", "opencensus", "admin", "envoy_admin":
		return kindProxyOwn
	}
	if strings.HasPrefix(envoyadmin.ParseClusterName(name).Direction, "inbound") {
		return kindInbound
	}
	return kindService
}

// appClusters lists the clusters that carry application traffic (services, the local
// application and passthrough destinations), in the order the evidence first names them.
func (s *Snapshot) appClusters() []string {
	var out []string
	for _, n := range s.ClusterNames() {
		switch classifyCluster(n) {
		case kindService, kindInbound, kindPassthrough:
			out = append(out, n)
		}
	}
	return out
}

// hostStat lists the hosts of a cluster in /clusters whose per-host counter is above zero,
// largest first, as evidence lines (at most maxListedHosts), with how many hosts have it and how
// many hosts the cluster has. /clusters counters are cumulative since the host was added.
func (s *Snapshot) hostStat(cluster, stat, label string) (ev []Evidence, with, total int) {
	u := s.Upstream(cluster)
	if u == nil {
		return nil, 0, 0
	}
	type hv struct {
		addr string
		v    uint64
	}
	var hs []hv
	for _, h := range u.Hosts {
		if v := h.Stats[stat]; v > 0 {
			hs = append(hs, hv{h.Address, v})
		}
	}
	sort.SliceStable(hs, func(i, j int) bool { return hs[i].v > hs[j].v })
	file := orDefault(s.UpstreamsFile, "clusters")
	for i, h := range hs {
		if i == maxListedHosts {
			break
		}
		ev = append(ev, Evidence{
			Label: fmt.Sprintf("%s on host %s (since %s)", label, h.addr, hostAddedSince), Value: float64(h.v), Unit: UnitCount,
			Source: fmt.Sprintf("%s %s::%s::%s", file, cluster, h.addr, stat),
		})
	}
	return ev, len(hs), len(u.Hosts)
}

// hostSpread says in words whether one host or all of them show a failure.
func hostSpread(with, total int) string {
	switch {
	case total == 0 || with == 0:
		return ""
	case with == total && total > 1:
		return fmt.Sprintf("All %d hosts show it, so the cause is common to the service (its port, its policy or the network to it), not one bad pod.", total)
	case with == total:
		return "The cluster's only host shows it."
	}
	return fmt.Sprintf("Only %d of %d hosts show it, so look at those pods first (terminating, crash-looping, or on one node).", with, total)
}

// ClusterSubject is the subject of a finding about an upstream cluster.
func ClusterSubject(name string) Subject { return Subject{Kind: SubjectCluster, Name: name} }

// ServiceHost returns the Kubernetes service host of an Istio cluster name
// ("reviews.default.svc.cluster.local"), or the raw name for other clusters.
func ServiceHost(cluster string) string { return orDefault(serviceHost(cluster), cluster) }

// serviceHost returns the Kubernetes service host of an Istio cluster, "" for other clusters.
func serviceHost(cluster string) string {
	return envoyadmin.ParseClusterName(cluster).Host
}

// hostNameNamespace splits "reviews.default.svc.cluster.local" into ("reviews", "default").
func hostNameNamespace(host string) (name, namespace string) {
	name, namespace, ok := envoyadmin.ServiceHostParts(host)
	if !ok {
		first, _, _ := strings.Cut(host, ".")
		name = strings.ReplaceAll(first, "*", "wildcard")
	}
	// The host comes from evidence: a part that is not a Kubernetes name never reaches a
	// command or YAML (names.go).
	if !kubeLabel(name) {
		name = "<service>"
	}
	if namespace != "" && !kubeLabel(namespace) {
		namespace = "<namespace>"
	}
	return name, namespace
}

// tlsModeMismatch reports whether the MTLSRule explains a cluster's failures by its TLS mode
// (MESH0802): ISTIO_MUTUAL toward endpoints that have no sidecar, or plaintext or one-way TLS to
// a service of the mesh with nearly every request cut off. The upstream rules then do not also
// report them as a connect failure or a keep-alive race. A plaintext cluster whose failures are
// a small share stays theirs: a keep-alive race happens to plaintext services too.
func (s *Snapshot) tlsModeMismatch(c string) bool {
	cfg := s.ClusterConfig(c)
	if cfg == nil {
		return false
	}
	switch cfg.TLSMode {
	case envoyadmin.TLSModeIstioMutual:
		return len(noSidecarEndpoints(s, c)) > 0
	case envoyadmin.TLSModePlaintext, envoyadmin.TLSModeSimple:
		return s.plaintextRefused(cfg)
	}
	return false
}

// isWrongVersion matches a TLS handshake answered in plaintext; the MTLSRule reports those.
func isWrongVersion(e *envoyadmin.AccessLogEntry) bool {
	return strings.Contains(strings.ToUpper(e.TransportFailure+" "+e.Details), "WRONG_VERSION_NUMBER")
}
