package diagnose

import (
	"fmt"
	"math"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Thresholds of the latency rule. The timeout rule reports requests that hit a timeout; this
// rule reports slowness on its own terms, so it stays independent of the configured timeouts.
const (
	// highLatencyP99Millis: a p99 from one second on is slow for a request inside a cluster.
	highLatencyP99Millis = 1000.0
	// latencyMinRequests: quantiles of fewer requests say nothing about a service.
	latencyMinRequests = 20
	// longTailRatio: a p99 this many times the p50 means a minority of requests is slow.
	longTailRatio = 10.0
	// dependencyShare: when a service this pod calls has a p99 of at least this share of the
	// pod's own, the pod's slowness is reported as waiting on it, as a note.
	dependencyShare = 0.5
)

// LatencyRule finds slow upstreams, time lost in the proxy itself, slow TCP connects and
// requests queued for a connection.
type LatencyRule struct{}

// Meta describes the rule.
func (LatencyRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "LatencyRule",
		Description: "Finds upstreams with a p99 of a second or more, time spent in the proxy itself (downstream minus upstream time), slow TCP connects and requests queued for a connection.",
		Codes:       []Code{CodeHighUpstreamLatency, CodeProxyOverhead, CodeSlowConnect, CodePendingQueue},
		AnyOf:       []Input{InputStats, InputAccessLog},
	}
}

// Check runs the rule.
func (LatencyRule) Check(s *Snapshot) []Finding {
	var out []Finding
	out = append(out, upstreamLatency(s)...)
	out = append(out, proxyOverhead(s)...)
	out = append(out, slowConnects(s)...)
	out = append(out, pendingQueues(s)...)
	return out
}

// latencyClusters lists the clusters with stats that carry application traffic.
func latencyClusters(s *Snapshot) []string {
	var out []string
	for _, c := range statsClusterNames(s) {
		switch classifyCluster(c) {
		case kindService, kindInbound, kindPassthrough:
			out = append(out, c)
		}
	}
	return out
}

// latestClusterValue is a cluster counter's cumulative value in the later sample.
func (s *Snapshot) latestClusterValue(cluster, stat string) float64 {
	if ss := s.latestStats(); ss != nil && ss.Clusters[cluster] != nil {
		return ss.Clusters[cluster].Values[stat]
	}
	return 0
}

// observations returns how many values a histogram holds and at what rate they came: from the
// histogram's count, else from the counter that counts the same events (text histograms carry
// no count).
func (s *Snapshot) observations(cluster string, h *envoyadmin.Histogram, interval bool, counter string) (n, rate float64) {
	if interval {
		return h.Count, h.Count / s.Window.Seconds()
	}
	n = h.Count
	if n == 0 {
		n = s.latestClusterValue(cluster, counter)
	}
	if m, ok := s.ClusterCounter(cluster, counter); ok && m.Rate > 0 {
		return n, m.Rate
	}
	if up := s.Uptime(); up > 0 {
		rate = n / up.Seconds()
	}
	return n, rate
}

// latencySample is one latency distribution worth a finding.
type latencySample struct {
	subject       Subject
	host          string // the service, "" for this pod's application
	p50, p90, p99 float64
	n, rate       float64
	interval      bool
	quantilesOnly bool // Envoy's computed cumulative quantiles, not buckets
	source        string
}

func upstreamLatency(s *Snapshot) []Finding {
	samples := clusterLatencies(s)
	if samples == nil {
		samples = istioLatencies(s)
	}
	// The slowest dependency: the outbound sample with the highest p99, slow or not.
	var dep *latencySample
	for i := range samples {
		if samples[i].host != "" && samples[i].n >= latencyMinRequests && (dep == nil || samples[i].p99 > dep.p99) {
			dep = &samples[i]
		}
	}
	var out []Finding
	for _, l := range samples {
		if l.n < latencyMinRequests || l.p99 < highLatencyP99Millis {
			continue
		}
		f := latencyFinding(s, l)
		if l.host == "" && dep != nil && dep.p99 >= dependencyShare*l.p99 {
			f.Severity = SeverityInfo
			f.Explanation += fmt.Sprintf(" Its slowest dependency, %s, takes %s at p99 itself: the application mostly waits on it, so look at that finding first.", dep.host, msText(dep.p99))
		}
		out = append(out, f)
	}
	return out
}

// clusterLatencies reads upstream_rq_time of every application cluster; nil when no cluster has
// it (Istio's default stats).
func clusterLatencies(s *Snapshot) []latencySample {
	var out []latencySample
	found := false
	for _, c := range latencyClusters(s) {
		h, interval, src := s.ClusterHistogram(c, "upstream_rq_time")
		if h == nil {
			continue
		}
		found = true
		n, rate := s.observations(c, h, interval, "upstream_rq_total")
		p50, p90, p99, ok := latencyQuantiles(h)
		if !ok {
			continue
		}
		host := ServiceHost(c)
		if classifyCluster(c) == kindInbound {
			host = ""
		}
		out = append(out, latencySample{
			subject: ClusterSubject(c), host: host, p50: p50, p90: p90, p99: p99, n: n, rate: rate,
			interval: interval, quantilesOnly: len(h.Buckets) == 0, source: src,
		})
	}
	if !found {
		return nil
	}
	return out
}

// istioLatencies reads istio_request_duration_milliseconds when the proxy records no per-cluster
// latency (Istio's default): per destination service as the caller saw it (reporter=source),
// and for this pod's application (reporter=destination).
func istioLatencies(s *Snapshot) []latencySample {
	const metric = "istio_request_duration_milliseconds"
	ss := s.latestStats()
	if ss == nil {
		return nil
	}
	keys := map[[2]string]bool{}
	for _, series := range ss.Istio {
		if series.Metric == metric && series.Histogram != nil {
			keys[[2]string{series.Labels["reporter"], series.Labels["destination_service"]}] = true
		}
	}
	var out []latencySample
	for _, k := range sortedPairs(keys) {
		reporter, service := k[0], k[1]
		h, interval := s.istioHistogram(metric, func(l map[string]string) bool {
			return l["reporter"] == reporter && l["destination_service"] == service
		})
		if h == nil {
			continue
		}
		n, rate := h.Count, 0.0
		switch {
		case interval:
			rate = n / s.Window.Seconds()
		case s.Uptime() > 0:
			rate = n / s.Uptime().Seconds()
		}
		p50, p90, p99, ok := latencyQuantiles(h)
		if !ok {
			continue
		}
		sample := latencySample{
			p50: p50, p90: p90, p99: p99, n: n, rate: rate, interval: interval,
			source: fmt.Sprintf("%s %s{reporter=%q,destination_service=%q}", orDefault(s.StatsFile, "stats"), metric, reporter, service),
		}
		switch reporter {
		case "source":
			sample.subject, sample.host = Subject{Kind: SubjectCluster, Name: service}, service
		case "destination":
			sample.subject = Subject{Kind: SubjectPod, Name: proxyName(s)}
		default:
			continue
		}
		out = append(out, sample)
	}
	return out
}

func sortedPairs(m map[[2]string]bool) [][2]string {
	flat := map[string][2]string{}
	for k := range m {
		flat[k[0]+"\x00"+k[1]] = k
	}
	out := make([][2]string, 0, len(m))
	for _, k := range sortedKeys(flat) {
		out = append(out, flat[k])
	}
	return out
}

func latencyFinding(s *Snapshot, l latencySample) Finding {
	f := NewFinding(CodeHighUpstreamLatency, l.subject)
	if l.host == "" {
		f.Title = fmt.Sprintf("The application in this pod answers in %s at p99", msText(l.p99))
	} else {
		f.Title = fmt.Sprintf("Requests to %s take %s at p99", l.host, msText(l.p99))
	}
	basis := "since proxy start"
	if l.interval {
		basis = "over " + roundWindow(s.Window).String()
	}
	if l.quantilesOnly {
		basis += " (Envoy's cumulative quantile)"
	}
	for _, q := range []struct {
		name string
		v    float64
	}{{"p50", l.p50}, {"p90", l.p90}, {"p99", l.p99}} {
		f.Evidence = append(f.Evidence, Evidence{Label: q.name + " latency " + basis, Value: round(q.v, 1), Unit: UnitMillis, Source: l.source})
	}
	f.Evidence = append(f.Evidence, Evidence{Label: "requests measured", Value: l.n, Unit: UnitCount, Source: l.source})
	if l.rate > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "request rate", Value: round(l.rate, 3), Unit: UnitPerSecond, Source: l.source})
	}
	shape := fmt.Sprintf("The p50 is %s, so most requests are slow: the service as a whole is saturated or waits on its own dependencies.", msText(l.p50))
	if l.p99 >= longTailRatio*l.p50 {
		shape = fmt.Sprintf("The p50 is only %s, so most requests are fast and a minority is slow: one slow pod, one slow kind of request, pauses (garbage collection, CPU throttling) or a dependency some requests wait on.", msText(l.p50))
	}
	ns, pod := s.podRef()
	if l.host == "" {
		f.Explanation = "This pod's sidecar measured its own application, over localhost: the mesh adds next to nothing on that hop, so the time is the application's (or that of what it calls). " + shape
		f.Fix = Fix{
			Summary: "Look inside the application: its CPU, its logs, and the services it calls (their findings appear beside this one).",
			Command: fmt.Sprintf("kubectl top pod %s -n %s --containers\nkubectl logs -n %s %s -c %s --tail=200", pod, ns, ns, pod, s.appContainer()),
		}
	} else {
		f.Explanation = "This proxy measures upstream time from sending the request to " + l.host + " until the end of its response: the network and the upstream's sidecar are in it, but nearly all of it is the upstream application's own work. " + shape
		name, uns := hostNameNamespace(l.host)
		cmd := fmt.Sprintf("kubectl exec -n %s <%s-pod> -c istio-proxy -- pilot-agent request GET 'stats?usedonly&filter=upstream_rq_time'    # the upstream's own inbound and outbound times", orDefault(uns, "<namespace>"), name)
		if uns != "" {
			cmd = fmt.Sprintf("kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s -o wide\n%s", uns, name, cmd)
		}
		f.Fix = Fix{Summary: "Diagnose the upstream itself: its own proxy shows whether its application or its dependencies are slow.", Command: cmd}
		if s.Hop != nil && s.Hop.Upstream == l.subject.Name && len(s.Hop.Pods) > 0 {
			// The upstream's side was measured: say so rather than presume the time is its
			// application's.
			f.Explanation = "This proxy measures upstream time from sending the request to " + l.host + " until the end of its response: the network, both sidecars and the upstream application are in it. The hop was followed to the upstream's pods, and the finding on where the time goes (MESH1105 or MESH1106) says which of them it is. " + shape
			f.Fix = Fix{Summary: "Act on the finding that splits this time between the pods and the upstream's application."}
		}
	}
	// Impact is the request rate to the slow upstream (or into the slow application): every one
	// of those requests is exposed to its latency.
	f.Impact = round(l.rate, 3)
	return f
}

// msText writes milliseconds for a title: "850 ms", "2.4 s".
func msText(ms float64) string {
	if math.Abs(ms) >= 1000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}
