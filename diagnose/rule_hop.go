package diagnose

import (
	"fmt"
	"math"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Thresholds of the latency attribution rule.
const (
	// hopMinMeanMillis and hopMinP99Millis: below both, the upstream is fast enough that
	// splitting its time says nothing useful.
	hopMinMeanMillis = 50.0
	hopMinP99Millis  = 250.0
	// hopDominantShare: the part of the client's mean time that makes one place "most" of it.
	hopDominantShare = 0.5
	// hopMinBetweenMillis: time between the pods below this is not worth chasing, whatever
	// its share.
	hopMinBetweenMillis = 20.0
)

// LatencyAttributionRule splits the time this proxy waits on its worst upstream into the
// upstream application's own time (the inbound upstream_rq_time of its sidecars), the time in
// its sidecar (inbound downstream_rq_time minus that), and what is left: the network, the
// nodes, and queueing between the two proxies. Means are compared, because sums add up and
// percentiles do not.
type LatencyAttributionRule struct{}

// Meta describes the rule.
func (LatencyAttributionRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "LatencyAttributionRule",
		Description: "Follows the hop to the worst upstream: compares this proxy's time to it with the application and sidecar time measured at the upstream's pods, and says where the time goes.",
		Codes:       []Code{CodeLatencyBetweenPods, CodeLatencyInUpstreamApp, CodeLatencyInUpstreamProxy},
		Needs:       []Input{InputStatsInterval, InputHop},
	}
}

// hopTimes are the means (and a p99) of one side of the hop, in milliseconds.
type hopTimes struct {
	count, mean, p99 float64
}

func timesOf(h *envoyadmin.Histogram) (hopTimes, bool) {
	if h == nil || h.Count <= 0 {
		return hopTimes{}, false
	}
	return hopTimes{count: h.Count, mean: h.Sum / h.Count, p99: h.Quantile(0.99)}, true
}

// Check runs the rule.
func (LatencyAttributionRule) Check(s *Snapshot) []Finding {
	h := s.Hop
	ch, interval, clientSrc := s.ClusterHistogram(h.Upstream, "upstream_rq_time")
	client, ok := timesOf(ch)
	if !interval || !ok || client.count < latencyMinRequests {
		return nil
	}
	if client.mean < hopMinMeanMillis && !(client.p99 >= hopMinP99Millis) {
		return nil
	}
	app, server, pods := serverSide(h)
	if app.count < latencyMinRequests {
		return nil
	}
	// The server's sidecar holds the request from its arrival to its answer; without that
	// histogram, its time counts as between the pods.
	atServer := app.mean
	if server.count > 0 && server.mean >= app.mean {
		atServer = server.mean
	}
	between := math.Max(0, client.mean-atServer)
	inSidecar := math.Max(0, atServer-app.mean)
	hopSrc := fmt.Sprintf("%s of %s (%s), %v apart", h.InboundCluster(), plural(len(pods), "pod"), strings.Join(pods, ", "), roundWindow(h.Window))
	ev := []Evidence{
		{Label: "mean time at this proxy", Value: round1(client.mean), Unit: UnitMillis, Source: clientSrc},
		{Label: "p99 at this proxy", Value: round1(client.p99), Unit: UnitMillis, Source: clientSrc},
		{Label: "mean application time at the upstream", Value: round1(app.mean), Unit: UnitMillis, Source: "upstream_rq_time of " + hopSrc},
	}
	if server.count > 0 {
		ev = append(ev, Evidence{Label: "mean time in the upstream's sidecar", Value: round1(inSidecar), Unit: UnitMillis,
			Source: "downstream_rq_time minus upstream_rq_time of " + hopSrc})
	}
	ev = append(ev, Evidence{Label: "mean time between the pods", Value: round1(between), Unit: UnitMillis,
		Source: "mean at this proxy minus mean at the upstream's sidecar"})
	subject := Subject{Kind: SubjectCluster, Name: h.Upstream}
	svc := h.ServiceName + "." + h.ServiceNamespace
	var f Finding
	switch {
	case between >= hopMinBetweenMillis && between >= hopDominantShare*client.mean:
		f = NewFinding(CodeLatencyBetweenPods, subject)
		f.Title = fmt.Sprintf("%.0f of the %.0f ms this proxy waits on %s on average are spent between the pods; its application takes %.0f ms",
			between, client.mean, svc, app.mean)
		f.Explanation = "The upstream's own sidecar measured how long its application took and how long it held each request; what this proxy waited beyond that was spent on the way: queued for a connection in this proxy, in the network and nodes between the two pods, or in a throttled or starved proxy on either side. Means are compared because they add up; the upstream's figures cover all its callers, this proxy's only its own requests."
		f.Fix = Fix{Summary: "Look between the pods: this proxy's pending requests and connection pool, CPU steal or conntrack on both nodes, throttled sidecars, and cross-zone placement.",
			Command: fmt.Sprintf("kubectl get pods -n %s -o wide -l %s  # compare the nodes and zones of the caller and the upstream's pods", h.ServiceNamespace, "app="+h.ServiceName)}
	case app.mean >= hopDominantShare*client.mean:
		f = NewFinding(CodeLatencyInUpstreamApp, subject)
		f.Title = fmt.Sprintf("%s's application takes %.0f of the %.0f ms this proxy waits on it on average", svc, app.mean, client.mean)
		f.Explanation = "The upstream's sidecars measured its application's time (inbound upstream_rq_time) close to what this proxy waits in total: the mesh and the network add little. Making this call faster means making the upstream's application faster, or calling it less."
		f.Fix = Fix{Summary: "Profile the upstream's application on the pods named in the evidence; the mesh is not where the time goes.",
			Command: fmt.Sprintf("kubectl mesh why-slow -n %s -l app=%s", h.ServiceNamespace, h.ServiceName)}
	case server.count > 0 && inSidecar >= hopMinBetweenMillis && inSidecar >= hopDominantShare*client.mean:
		f = NewFinding(CodeLatencyInUpstreamProxy, subject)
		f.Title = fmt.Sprintf("%.0f of the %.0f ms this proxy waits on %s on average are spent in the upstream's sidecars; its application takes %.0f ms",
			inSidecar, client.mean, svc, app.mean)
		f.Explanation = "The upstream's sidecars held each request much longer than their application took to answer it (inbound downstream_rq_time against the inbound cluster's upstream_rq_time): the time goes in the upstream's proxies. The usual causes are a CPU-throttled or starved istio-proxy (a low CPU limit, a busy node), filters that work on every request (Lua, Wasm, ext_authz, rate limits), or requests queued for a connection to the local application (the inbound cluster's connection pool)."
		f.Fix = Fix{Summary: "Diagnose the upstream's pods: their sidecars' CPU throttling, limits and inbound filters.",
			Command: fmt.Sprintf("kubectl mesh why-slow -n %s -l app=%s", h.ServiceNamespace, h.ServiceName)}
	default:
		return nil
	}
	f.Evidence = ev
	f.Impact = client.count / s.Window.Seconds()
	return []Finding{f}
}

// serverSide merges the inbound side of the upstream's pods: the application time (the
// inbound cluster's upstream_rq_time) and the time the sidecar held each request (the inbound
// HTTP connection manager's downstream_rq_time for the port).
func serverSide(h *Hop) (app, server hopTimes, pods []string) {
	var appSum, appN, srvSum, srvN float64
	var p99s []float64
	suffix := fmt.Sprintf("_%d_downstream_rq_time", h.Port)
	for _, p := range h.Pods {
		r := p.Interval.ClusterHistogram(h.InboundCluster(), "upstream_rq_time")
		if r.Histogram == nil || r.Cumulative || r.Count <= 0 {
			continue
		}
		pods = append(pods, p.Namespace+"/"+p.Pod)
		appSum, appN = appSum+r.Sum, appN+r.Count
		p99s = append(p99s, r.Quantile(0.99))
		for name := range p.Interval.Cur.Histograms {
			if strings.HasPrefix(name, "http_inbound") && strings.HasSuffix(name, suffix) {
				if d := p.Interval.Histogram(name); d.Histogram != nil && !d.Cumulative {
					srvSum, srvN = srvSum+d.Sum, srvN+d.Count
				}
			}
		}
	}
	if appN > 0 {
		app = hopTimes{count: appN, mean: appSum / appN}
		for _, v := range p99s {
			app.p99 = math.Max(app.p99, v)
		}
	}
	if srvN > 0 {
		server = hopTimes{count: srvN, mean: srvSum / srvN}
	}
	return app, server, pods
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
