package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// ClusterSubject is the subject of a finding about an upstream cluster.
func ClusterSubject(name string) Subject { return Subject{Kind: SubjectCluster, Name: name} }

// LogCount counts the access-log entries that match and returns them with an evidence line
// naming the file, so rules that work from logs report like rules that work from stats.
func (s *Snapshot) LogCount(label string, match func(e *envoyadmin.AccessLogEntry) bool) (int, Evidence) {
	n := len(s.LogEntries(match))
	return n, Evidence{Label: label, Value: float64(n), Unit: UnitCount, Source: fmt.Sprintf("access.log (%d lines)", len(s.AccessLog))}
}

// IstioCount sums an Istio counter (istio_requests_total) over the series whose labels match,
// as an increase over the window when two samples exist, else cumulative.
func (s *Snapshot) IstioCount(metric string, match func(labels map[string]string) bool) (Measure, bool) {
	sum := func(ss *envoyadmin.StatsSample) (float64, bool) {
		if ss == nil {
			return 0, false
		}
		var v float64
		found := false
		for _, series := range ss.Istio {
			if series.Metric == metric && match(series.Labels) {
				v += series.Value
				found = true
			}
		}
		return v, found
	}
	return s.counter(sum, fmt.Sprintf("%s %s", orDefault(s.StatsFile, "stats"), metric))
}

// ServiceHost returns the Kubernetes service host of an Istio cluster name
// ("reviews.default.svc.cluster.local"), or the raw name for other clusters.
func ServiceHost(cluster string) string {
	n := envoyadmin.ParseClusterName(cluster)
	if n.Host != "" {
		return n.Host
	}
	return cluster
}

// DestinationRuleYAML renders a DestinationRule for a service host with the given trafficPolicy
// body (YAML indented by four spaces, under trafficPolicy:), as a fix a user can apply.
func DestinationRuleYAML(host, trafficPolicy string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  host: %s\n  trafficPolicy:\n%s", host, strings.TrimRight(trafficPolicy, "\n"))
	return b.String()
}

// VirtualServiceYAML renders a VirtualService for a service host whose single HTTP route has the
// given body (YAML indented by four spaces, under the route's "- " item).
func VirtualServiceYAML(host, httpRoute string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  hosts:\n  - %s\n  http:\n  - route:\n    - destination:\n        host: %s\n%s", host, host, strings.TrimRight(httpRoute, "\n"))
	return b.String()
}

// hostNameNamespace splits "reviews.default.svc.cluster.local" into ("reviews", "default").
func hostNameNamespace(host string) (name, namespace string) {
	parts := strings.Split(host, ".")
	if len(parts) >= 3 && parts[2] == "svc" {
		return parts[0], parts[1]
	}
	return strings.ReplaceAll(parts[0], "*", "wildcard"), ""
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
