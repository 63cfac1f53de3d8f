package diagnose

import (
	"fmt"
	"math"
	"sort"
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
	return s.measure(s.interval().IstioWhere(metric, match), fmt.Sprintf("%s %s", orDefault(s.StatsFile, "stats"), metric))
}

// ServiceHost returns the Kubernetes service host of an Istio cluster name
// ("reviews.default.svc.cluster.local"), or the raw name for other clusters.
func ServiceHost(cluster string) string { return orDefault(serviceHost(cluster), cluster) }

// DestinationRuleYAML renders a DestinationRule for a service host with the given trafficPolicy
// body (YAML indented by four spaces, under trafficPolicy:), as a fix a user can apply.
func DestinationRuleYAML(host, trafficPolicy string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  host: %s\n  trafficPolicy:\n%s", yamlHost(host), strings.TrimRight(trafficPolicy, "\n"))
	return b.String()
}

// VirtualServiceYAML renders a VirtualService for a service host whose single HTTP route has the
// given body (YAML indented by four spaces, under the route's "- " item). Its catch-all route
// would replace every route of an existing VirtualService of the same name, so it opens with a
// comment that says to merge the fields into the existing routes instead.
func VirtualServiceYAML(host, httpRoute string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	host = yamlHost(host)
	fmt.Fprintf(&b, "# If a VirtualService for %s exists, merge these fields into its http routes instead: applying this one replaces a VirtualService of the same name, every route included, and conflicts with one of another name.\n", host)
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  hosts:\n  - %s\n  http:\n  - route:\n    - destination:\n        host: %s\n%s", host, host, strings.TrimRight(httpRoute, "\n"))
	return b.String()
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

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// UnitHours is the unit of evidence given in hours (certificate lifetimes).
const UnitHours = "h"

// latestStats returns the later stats sample, or the only one; nil without stats.
func (s *Snapshot) latestStats() *envoyadmin.StatsSample {
	if s.Stats2 != nil {
		return s.Stats2
	}
	return s.Stats
}

// significant reports whether a counter shows enough events to speak of: any increase over a
// window between two samples, or at least minCumulative since the proxy started.
func significant(m Measure, minCumulative float64) bool {
	if m.Interval {
		return m.Value > 0
	}
	return m.Value >= minCumulative
}

// latencyQuantiles returns a histogram's p50, p90 and p99; ok is false when it has no values.
func latencyQuantiles(h *envoyadmin.Histogram) (p50, p90, p99 float64, ok bool) {
	if h == nil || h.NoValues {
		return 0, 0, 0, false
	}
	p50, p90, p99 = h.Quantile(0.5), h.Quantile(0.9), h.Quantile(0.99)
	if math.IsNaN(p50) || math.IsNaN(p99) || math.IsInf(p99, 0) {
		return 0, 0, 0, false
	}
	return p50, p90, p99, true
}

// mergeHistograms adds histograms with buckets into one (the series of one Istio metric, or the
// clusters behind one listener). It returns nil when any of them has no buckets, since Envoy's
// computed quantiles cannot be added.
func mergeHistograms(hs []*envoyadmin.Histogram) *envoyadmin.Histogram {
	if len(hs) == 1 {
		return hs[0]
	}
	counts := map[float64]float64{}
	out := &envoyadmin.Histogram{}
	for _, h := range hs {
		if h == nil {
			continue
		}
		if len(h.Buckets) == 0 {
			return nil
		}
		for _, b := range h.Buckets {
			counts[b.UpperBound] += b.Count
		}
		out.Count += h.Count
		out.Sum += h.Sum
	}
	if len(counts) == 0 {
		return nil
	}
	for bound, n := range counts {
		out.Buckets = append(out.Buckets, envoyadmin.Bucket{UpperBound: bound, Count: n})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].UpperBound < out.Buckets[j].UpperBound })
	return out
}

// istioHistogram sums an Istio histogram metric over the series whose labels match: the
// interval histogram when two samples with buckets exist, else the latest cumulative one.
func (s *Snapshot) istioHistogram(metric string, match func(labels map[string]string) bool) (h *envoyadmin.Histogram, interval bool) {
	sum := func(ss *envoyadmin.StatsSample) *envoyadmin.Histogram {
		if ss == nil {
			return nil
		}
		var hs []*envoyadmin.Histogram
		for _, series := range ss.Istio {
			if series.Metric == metric && series.Histogram != nil && match(series.Labels) {
				hs = append(hs, series.Histogram)
			}
		}
		if len(hs) == 0 {
			return nil
		}
		return mergeHistograms(hs)
	}
	first, second := sum(s.Stats), sum(s.Stats2)
	if first != nil && second != nil && s.Window > 0 {
		return second.Sub(first), true
	}
	if second != nil {
		return second, false
	}
	return first, false
}

// clip shortens text for evidence, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// workloadRef names the controller of the diagnosed pod as kubectl accepts it
// ("deployment/reviews-v2"), from the pod's owner and its pod-template-hash label; a placeholder
// when unknown.
func (s *Snapshot) workloadRef() string {
	if s.Pod != nil {
		for _, o := range s.Pod.OwnerReferences {
			switch o.Kind {
			case "ReplicaSet":
				if h := s.Pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(o.Name, "-"+h) {
					return "deployment/" + strings.TrimSuffix(o.Name, "-"+h)
				}
			case "StatefulSet", "DaemonSet":
				return strings.ToLower(o.Kind) + "/" + o.Name
			}
		}
	}
	return "deployment/<name>"
}

// podTemplateAnnotationsYAML is a patch setting annotations on a controller's pod template,
// for `kubectl patch --patch-file`. Values may span lines.
func podTemplateAnnotationsYAML(annotations map[string]string) string {
	var b strings.Builder
	b.WriteString("spec:\n  template:\n    metadata:\n      annotations:\n")
	for _, k := range sortedKeys(annotations) {
		v := annotations[k]
		if strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "        %s: |\n", k)
			for _, line := range strings.Split(strings.TrimRight(v, "\n"), "\n") {
				fmt.Fprintf(&b, "          %s\n", line)
			}
			continue
		}
		fmt.Fprintf(&b, "        %s: %q\n", k, v)
	}
	return b.String()
}

// appContainer names the pod's application container (the first that is not istio-proxy), or a
// placeholder.
func (s *Snapshot) appContainer() string {
	if s.Pod != nil {
		if c := s.Pod.Annotations["kubectl.kubernetes.io/default-container"]; c != "" && c != "istio-proxy" {
			return c
		}
		for _, c := range s.Pod.Spec.Containers {
			if c.Name != "istio-proxy" {
				return c.Name
			}
		}
	}
	return "<app-container>"
}

// shellQuote quotes a word for a POSIX shell: names that came from evidence (cluster names,
// pod names) go into printed commands only this way.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/|@%+=,") == "" && !strings.ContainsAny(s, "|") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
