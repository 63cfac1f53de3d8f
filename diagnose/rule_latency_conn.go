package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds the LatencyRule's checks of time lost before the upstream works on a request:
// in the proxy, in TCP connects, and waiting for a pooled connection.

// Thresholds of those checks.
const (
	// overheadMinMillis and overheadMinShare: the proxy's share of a request's median time is
	// reported when it exceeds both 10 ms and 20% of the whole.
	overheadMinMillis = 10.0
	overheadMinShare  = 0.20
	// overheadMinLogEntries: medians of fewer access-log lines are noise.
	overheadMinLogEntries = 20
	// overheadMaxBodyBytes: larger responses spend time streaming to the caller, which is not
	// the proxy's overhead, so their lines are left out.
	overheadMaxBodyBytes = 64 << 10
	// slowConnectP99Millis: a TCP connect inside a cluster takes about a millisecond.
	slowConnectP99Millis = 100.0
	// slowConnectMinConnects: quantiles of fewer connects are noise.
	slowConnectMinConnects = 10
	// pendingMinShare and pendingMinRequests: requests that had to wait for a connection, as a
	// share of all requests to the cluster, and the fewest worth speaking of.
	pendingMinShare    = 0.5
	pendingMinRequests = 50
)

// proxyOverhead compares each HTTP connection manager's downstream_rq_time with the
// upstream_rq_time of the clusters behind it, and falls back on the access log.
func proxyOverhead(s *Snapshot) []Finding {
	ss := s.latestStats()
	var out []Finding
	if ss != nil {
		for _, k := range sortedKeys(ss.Histograms) {
			if f, ok := connectionManagerOverhead(s, k); ok {
				out = append(out, f)
			}
		}
	}
	if len(out) == 0 {
		out = append(out, logOverhead(s, "inbound")...)
		out = append(out, logOverhead(s, "outbound")...)
	}
	return out
}

func connectionManagerOverhead(s *Snapshot, key string) (Finding, bool) {
	prefix, ok := strings.CutSuffix(key, "_downstream_rq_time")
	scope, ok2 := strings.CutPrefix(prefix, "http_")
	if !ok || !ok2 {
		return Finding{}, false
	}
	dir := ""
	for _, d := range []string{"inbound", "outbound"} {
		if strings.HasPrefix(scope, d+"_") {
			dir = d
		}
	}
	port, err := strconv.Atoi(scope[strings.LastIndexByte(scope, '_')+1:])
	if dir == "" || err != nil {
		return Finding{}, false
	}
	down, dInterval, dSrc := s.Histogram(key)
	var ups []*envoyadmin.Histogram
	var clusters []string
	uInterval := dInterval
	for _, c := range statsClusterNames(s) {
		n := envoyadmin.ParseClusterName(c)
		if !strings.HasPrefix(n.Direction, dir) || n.Port != port {
			continue
		}
		if h, in, _ := s.ClusterHistogram(c, "upstream_rq_time"); h != nil {
			ups, clusters, uInterval = append(ups, h), append(clusters, c), in
		}
	}
	if down == nil || len(ups) == 0 || uInterval != dInterval {
		return Finding{}, false
	}
	up := mergeHistograms(ups)
	dn := down.Count
	if dn == 0 {
		dn = s.latestStats().Stats[prefix+"_downstream_rq_total"]
	}
	if up == nil || dn < latencyMinRequests {
		return Finding{}, false
	}
	d50, u50 := down.Quantile(0.5), up.Quantile(0.5)
	over := d50 - u50
	if math.IsNaN(d50) || math.IsNaN(u50) || over <= max(overheadMinMillis, overheadMinShare*d50) {
		return Finding{}, false
	}
	addr := listenerAddress(strings.TrimPrefix(scope, dir+"_"))
	f := NewFinding(CodeProxyOverhead, Subject{Kind: SubjectListener, Name: dir + " " + addr})
	f.Title = fmt.Sprintf("Requests through %s %s spend %s of their median %s in the proxy", dir, addr, msText(over), msText(d50))
	basis := "since proxy start"
	if dInterval {
		basis = "over " + roundWindow(s.Window).String()
	}
	f.Evidence = []Evidence{
		{Label: "median request time seen by the caller " + basis, Value: round(d50, 1), Unit: UnitMillis, Source: dSrc},
		{Label: "median upstream time " + basis, Value: round(u50, 1), Unit: UnitMillis, Source: fmt.Sprintf("upstream_rq_time of %s", strings.Join(clusters, ", "))},
		{Label: "difference: time in the proxy", Value: round(over, 1), Unit: UnitMillis, Source: "computed"},
		{Label: "share of the request time", Value: round(over/d50*100, 1), Unit: UnitPercent, Source: "computed"},
	}
	var retries, pending float64
	for _, c := range clusters {
		if m, ok := s.ClusterCounter(c, "upstream_rq_retry"); ok && m.Value > 0 {
			retries += m.Value
			f.Evidence = append(f.Evidence, m.Evidence("retries to "+c))
		}
		if m, ok := s.ClusterCounter(c, "upstream_rq_pending_total"); ok {
			pending += m.Value
		}
	}
	f.Explanation = "downstream_rq_time is the whole request as the caller's side of this proxy sees it; upstream_rq_time is one attempt at the upstream. The difference is spent in the proxy: in its filters (Wasm, Lua, ext_authz calls), in retries and their back-off, in waiting for a pooled connection, or in a CPU-starved proxy (a CPU limit throttles it)."
	if retries > 0 {
		f.Explanation += " Retries happened in the same period, and each adds an attempt and a back-off to the caller's time."
	}
	if pending > 0 {
		f.Explanation += " Some requests also waited for a connection (upstream_rq_pending_total)."
	}
	f.Fix = overheadFix(s, port)
	if span := s.observationSpan(dInterval); span > 0 {
		f.Impact = round(dn/span.Seconds(), 3) // the requests through the listener, all of which pay the overhead
	}
	return f, true
}

func overheadFix(s *Snapshot, port int) Fix {
	ns, pod := s.podRef()
	return Fix{
		Summary: "Check whether the proxy is CPU-throttled, then which filters run on that port.",
		Command: fmt.Sprintf("%s    # nr_throttled and throttled_usec rising: raise or remove the CPU limit\nistioctl proxy-config listener %s -n %s --port %d -o json | grep -E 'envoy.filters.http|wasm|lua|ext_authz'",
			s.proxyCommand("cat /sys/fs/cgroup/cpu.stat"), pod, ns, port),
	}
}

// observationSpan is the time a measure covers: the window, or the uptime (0 when unknown).
func (s *Snapshot) observationSpan(interval bool) time.Duration {
	if interval {
		return s.Window
	}
	return s.Uptime()
}

// overheadMeasurable reports whether an access-log line measures the proxy's own time: a request
// the upstream answered in one attempt, with its x-envoy-upstream-service-time and a small body.
// A line with a response flag (URX, UF, UT, UC, UO, UH, NR, NC, DC, ...) or a 5xx may have been
// retried or failed: its DURATION covers every attempt and back-off (or a timeout) while the
// header covers the last attempt only, so the difference is not time spent in the proxy.
func overheadMeasurable(e *envoyadmin.AccessLogEntry) bool {
	return e.Code > 0 && e.Code < 500 && len(e.Flags) == 0 && e.Duration >= 0 && e.UpstreamServiceTime >= 0 &&
		e.BytesSent <= overheadMaxBodyBytes && e.UpstreamCluster != "" && e.UpstreamCluster != "-"
}

// logOverhead compares the access log's DURATION with x-envoy-upstream-service-time.
func logOverhead(s *Snapshot, dir string) []Finding {
	var total, upstream, over []float64
	clusters := map[string]bool{}
	for _, e := range s.AccessLog {
		if !overheadMeasurable(&e) || strings.HasPrefix(e.UpstreamCluster, "inbound") != (dir == "inbound") {
			continue
		}
		d, u := millis(e.Duration), millis(e.UpstreamServiceTime)
		total, upstream, over = append(total, d), append(upstream, u), append(over, d-u)
		clusters[e.UpstreamCluster] = true
	}
	if len(over) < overheadMinLogEntries {
		return nil
	}
	mt, mu, mo := median(total), median(upstream), median(over)
	if mo <= max(overheadMinMillis, overheadMinShare*mt) {
		return nil
	}
	src := fmt.Sprintf("access.log %%DURATION%% and x-envoy-upstream-service-time (%d lines without a response flag, under 500 and up to %d KiB)", len(over), overheadMaxBodyBytes>>10)
	f := NewFinding(CodeProxyOverhead, Subject{Kind: SubjectProxy, Name: proxyName(s) + " " + dir})
	f.Title = fmt.Sprintf("%s requests spend %s of their median %s outside the upstream", strings.ToUpper(dir[:1])+dir[1:], msText(mo), msText(mt))
	f.Evidence = []Evidence{
		{Label: "median DURATION", Value: mt, Unit: UnitMillis, Source: src},
		{Label: "median x-envoy-upstream-service-time", Value: mu, Unit: UnitMillis, Source: src},
		{Label: "median difference", Value: mo, Unit: UnitMillis, Source: src},
		{Label: "lines compared", Value: float64(len(over)), Unit: UnitCount, Source: src},
	}
	f.Explanation = "DURATION is the whole request in this proxy; x-envoy-upstream-service-time is the upstream's time until its response headers. The difference is spent in the proxy (filters, waiting for a connection, CPU throttling) or in reading the request body from the caller. Only lines that show a single successful attempt are compared: lines with a response flag (retries, failures, timeouts) or a 5xx were left out, since their DURATION covers every attempt and back-off while the header covers the last attempt only, and so were large responses, so that streaming them does not count."
	// A request that succeeded on a retry logs no flag, so retries that succeeded in the same
	// period can still be in the lines compared.
	var retried []string
	for _, c := range sortedKeys(clusters) {
		if m, ok := s.ClusterCounter(c, "upstream_rq_retry_success"); ok && m.Value > 0 {
			f.Evidence = append(f.Evidence, m.Evidence("requests to "+c+" that succeeded on a retry"))
			retried = append(retried, ServiceHost(c))
		}
	}
	if len(retried) > 0 {
		f.Explanation += " Some requests to " + strings.Join(retried, ", ") + " succeeded on a retry (upstream_rq_retry_success); their lines carry no flag, so their failed attempts and back-off count here too: look at those retries first."
	}
	f.Fix = overheadFix(s, 0)
	f.Fix.Command = strings.Replace(f.Fix.Command, " --port 0", "", 1)
	f.Impact = round(s.logRate(len(over)), 3)
	return []Finding{f}
}

func median(v []float64) float64 {
	c := append([]float64(nil), v...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func slowConnects(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range latencyClusters(s) {
		h, interval, src := s.ClusterHistogram(c, "upstream_cx_connect_ms")
		if h == nil {
			continue
		}
		n, rate := s.observations(c, h, interval, "upstream_cx_total")
		p50, _, p99, ok := latencyQuantiles(h)
		if !ok || n < slowConnectMinConnects || p99 <= slowConnectP99Millis {
			continue
		}
		basis := "since proxy start"
		if interval {
			basis = "over " + roundWindow(s.Window).String()
		}
		f := NewFinding(CodeSlowConnect, ClusterSubject(c))
		f.Evidence = []Evidence{
			{Label: "p50 TCP connect time " + basis, Value: round(p50, 1), Unit: UnitMillis, Source: src},
			{Label: "p99 TCP connect time " + basis, Value: round(p99, 1), Unit: UnitMillis, Source: src},
			{Label: "connects measured", Value: n, Unit: UnitCount, Source: src},
		}
		if classifyCluster(c) == kindInbound {
			f.Title = fmt.Sprintf("Connects to the application in this pod take %s at p99", msText(p99))
			f.Explanation = "The sidecar connects to its application over localhost, which takes well under a millisecond. Slow connects there mean the application's listen backlog is full: it does not accept connections as fast as they come (too few accept threads, or it is CPU-starved)."
			ns, pod := s.podRef()
			f.Fix = Fix{Summary: "Let the application accept faster: more workers or CPU, or fewer new connections (keep-alive from the sidecar is on by default).", Command: fmt.Sprintf("kubectl top pod %s -n %s --containers", pod, ns)}
		} else {
			f.Title = fmt.Sprintf("TCP connects to %s take %s at p99", ServiceHost(c), msText(p99))
			f.Explanation = "A TCP connect inside a cluster takes about a millisecond. Slow connects point at the network path or the nodes: dropped SYNs that are retried after a second (a full conntrack table, a NetworkPolicy or firewall that drops, an overloaded node), or a peer in a distant zone."
			if p99 >= 1000 {
				f.Explanation += " A p99 of a second or more is the mark of a lost SYN and its retransmission."
			}
			f.Fix = Fix{Summary: "Check the conntrack table and the load of the nodes on both ends.", Command: conntrackCommand(s)}
		}
		f.Impact = round(rate, 3) // each new connection delays the requests waiting for it
		out = append(out, f)
	}
	return out
}

func conntrackCommand(s *Snapshot) string {
	node := "<node>"
	if s.Pod != nil && s.Pod.Spec.NodeName != "" {
		node = s.Pod.Spec.NodeName
	}
	return fmt.Sprintf("kubectl debug node/%s -it --image=busybox -- sh -c 'cat /proc/sys/net/netfilter/nf_conntrack_count /proc/sys/net/netfilter/nf_conntrack_max'\nkubectl top nodes", node)
}

func pendingQueues(s *Snapshot) []Finding {
	var out []Finding
	for _, c := range latencyClusters(s) {
		g1, g2 := pendingGauge(s.Stats, c), pendingGauge(s.Stats2, c)
		sustained := s.Stats2 != nil && g1 > 0 && g2 > 0
		pend, pok := s.ClusterCounter(c, "upstream_rq_pending_total")
		tot, tok := s.ClusterCounter(c, "upstream_rq_total")
		share := 0.0
		if pok && tok && tot.Value > 0 {
			share = pend.Value / tot.Value
		}
		if !sustained && !(pend.Value >= pendingMinRequests && share >= pendingMinShare) {
			continue
		}
		f := NewFinding(CodePendingQueue, ClusterSubject(c))
		f.Title = "Requests to " + ServiceHost(c) + " wait for a connection"
		if _, gsrc, ok := s.ClusterGauge(c, "upstream_rq_pending_active"); ok {
			if s.Stats2 != nil {
				f.Evidence = append(f.Evidence, Evidence{Label: "requests waiting at the first sample", Value: g1, Unit: UnitCount, Source: gsrc})
			}
			f.Evidence = append(f.Evidence, Evidence{Label: "requests waiting at the last sample", Value: lastGauge(s, g1, g2), Unit: UnitCount, Source: gsrc})
		}
		if pok {
			f.Evidence = append(f.Evidence, pend.Evidence("requests that waited for a connection"))
		}
		if tok {
			f.Evidence = append(f.Evidence, tot.Evidence("requests"))
		}
		if share > 0 {
			f.Evidence = append(f.Evidence, Evidence{Label: "share of requests that waited", Value: round(share*100, 1), Unit: UnitPercent, Source: "computed"})
		}
		f.Explanation, f.Fix = pendingCause(s, c, tot)
		f.Impact = pend.Rate
		out = append(out, f)
	}
	return out
}

// lastGauge is the gauge of the later sample.
func lastGauge(s *Snapshot, g1, g2 float64) float64 {
	if s.Stats2 != nil {
		return g2
	}
	return g1
}

func pendingGauge(ss *envoyadmin.StatsSample, cluster string) float64 {
	if ss == nil || ss.Clusters[cluster] == nil {
		return 0
	}
	return ss.Clusters[cluster].Values["upstream_rq_pending_active"]
}

// pendingCause tells why requests wait for a connection, from the cluster's settings and its
// connection counters, and the fix that follows.
func pendingCause(s *Snapshot, c string, rq Measure) (string, Fix) {
	base := "A request that finds no free connection in the pool waits (upstream_rq_pending_active) until one is set up or freed, and that wait is added to its latency."
	cfg := s.ClusterConfig(c)
	if cfg != nil && cfg.MaxRequestsPerConnection == 1 {
		return base + " This cluster allows one request per connection (maxRequestsPerConnection: 1), so every request waits for a new connection.",
			Fix{Summary: "Let connections carry many requests.", YAML: destinationRuleFix(c, "    connectionPool:\n      http:\n        maxRequestsPerConnection: 0\n")}
	}
	if cfg != nil {
		if cb := defaultPriority(cfg.CircuitBreakers); cb.MaxConnections != nil && *cb.MaxConnections != istioUnlimited {
			limit := *cb.MaxConnections
			return base + fmt.Sprintf(" The pool may hold at most %d connections (connectionPool.tcp.maxConnections), so requests queue once all are busy.", limit),
				Fix{Summary: "Raise the connection limit, or scale the upstream out so each connection is freed sooner.", YAML: destinationRuleFix(c, fmt.Sprintf("    connectionPool:\n      tcp:\n        maxConnections: %d\n", 2*uint64(limit)))}
		}
	}
	if cx, ok := s.ClusterCounter(c, "upstream_cx_total"); ok && rq.Value > 0 && cx.Value/rq.Value >= pendingMinShare {
		return base + fmt.Sprintf(" %.0f connections were opened for %.0f requests, so connections are not reused: the upstream closes them after a request or two (Connection: close, a short keep-alive timeout).", cx.Value, rq.Value),
			Fix{Summary: "Turn on HTTP keep-alive in the upstream application (and make its idle timeout longer than the DestinationRule's connectionPool.http.idleTimeout).", Command: s.proxyCommand("pilot-agent request GET 'stats?filter=cluster." + c + ".upstream_cx_(total|destroy_remote)'")}
	}
	return base + " No limit in this proxy's configuration explains it: new connections are slow to set up (see the connect time), or an HTTP/2 upstream caps concurrent streams per connection.",
		Fix{Summary: "Check the upstream's connect time and, for HTTP/2, its max concurrent streams.", Command: s.proxyCommand("pilot-agent request GET 'stats?filter=cluster." + c + ".upstream_(cx|rq_pending)'")}
}
