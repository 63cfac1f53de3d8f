package envoyadmin

import (
	"strconv"
	"strings"
)

// ParseClusterName splits an upstream cluster name by Istio's convention
// direction|port|subset|host (the third field of inbound names is a port name) ("outbound|9080|v2|reviews.default.svc.cluster.local",
// "inbound|8080||", "inbound-vip|9080|http|details.bookinfo.svc.cluster.local"). It also reads
// the form Istio uses as a cluster's alt_stat_name, where each '|' is written "_."
// ("outbound_.8000_._.httpbin.default.svc.cluster.local"), so stats keyed that way still say
// which service they are about. Any other name ("xds-grpc", "PassthroughCluster", Kuma's and
// Consul's names) keeps only Raw.
func ParseClusterName(s string) ClusterName {
	n := ClusterName{Raw: s}
	var parts []string
	switch {
	case strings.Count(s, "|") == 3:
		parts = strings.SplitN(s, "|", 4)
	case strings.Contains(s, "_."):
		// "outbound_.8000_._.host" splits into outbound, 8000, "" and host.
		parts = strings.SplitN(s, "_.", 4)
	}
	if len(parts) != 4 || !isIstioDirection(parts[0]) {
		return n
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil || port < 0 || port > 65535 {
		return n
	}
	n.Direction, n.Port, n.Host = parts[0], port, parts[3]
	if strings.HasPrefix(n.Direction, "inbound") {
		n.PortName = parts[2] // inbound|9080|http|details...: a port name, never a subset
	} else {
		n.Subset = parts[2]
	}
	return n
}

// isIstioDirection accepts the directions Istio writes ("outbound", "inbound", "inbound-vip")
// and any future lower-case, dash-separated word, but nothing that could be a host name.
func isIstioDirection(d string) bool {
	if d == "" {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return strings.HasPrefix(d, "inbound") || strings.HasPrefix(d, "outbound")
}

// ServiceHostParts splits a Kubernetes service host ("reviews.default.svc.cluster.local") into
// the Service's name and namespace; ok is false for a host that is not a service's (an
// external name, a short name), whose first labels say nothing of a namespace.
func ServiceHostParts(host string) (name, namespace string, ok bool) {
	parts := strings.SplitN(host, ".", 4)
	if len(parts) < 3 || parts[2] != "svc" || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}
