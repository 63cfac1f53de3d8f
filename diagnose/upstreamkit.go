package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds what the upstream rules (timeouts, connect failures, circuit breakers,
// resets, health, retries, routes) share: when a counter is worth a finding, which clusters are
// the application's, and the commands their fixes print.

// Thresholds that keep the upstream rules from reporting noise.
const (
	// minWindowEvents: with two samples, any increase over the window means it happens now.
	minWindowEvents = 1
	// minCumulativeEvents: with one sample, fewer failures since the proxy started are noise
	// (a rollout, a restart of the upstream) and are not reported.
	minCumulativeEvents = 5
	// sporadicRate: a cumulative count averaging less than one event per 10 minutes of uptime
	// is reported one severity lower: it may have stopped long ago.
	sporadicRate = 1.0 / 600
	// fewCumulativeEvents: with the uptime unknown, fewer cumulative events than this are
	// reported one severity lower, for the same reason.
	fewCumulativeEvents = 10
	// minLogEntries: one access-log line with the flag is concrete evidence of a failure.
	minLogEntries = 1
	// fewLogEntries: fewer access-log lines than this, without stats, lower the severity.
	fewLogEntries = 3
	// maxListedHosts bounds the hosts named in evidence.
	maxListedHosts = 5
)

// signal joins a counter of a cluster and the access-log lines that show the same failure.
type signal struct {
	m    Measure
	ok   bool // the counter is present
	logs []envoyadmin.AccessLogEntry
	// small: a cumulative count under minCumulativeEvents that is still worth a finding, as
	// it is all or a large share of a small total, or stands in an excerpt that holds no total
	// (a grepped /stats: what the user picked out). total is that total, when known.
	small bool
	total Measure
	// excerpt: the stats hold no total to judge the count against (a grepped excerpt).
	excerpt bool
}

// smallShare is the share of a small total that failures must reach to be reported under
// minCumulativeEvents.
const smallShare = 0.2

// counted reports whether the counter alone is worth a finding.
func (g signal) counted() bool {
	if !g.ok {
		return false
	}
	if g.m.Interval {
		return g.m.Value >= minWindowEvents
	}
	return g.m.Value >= minCumulativeEvents || g.small
}

// fires reports whether the counter or the log lines are worth a finding.
func (g signal) fires() bool { return g.counted() || len(g.logs) >= minLogEntries }

// impact is the affected request rate: the counter's rate, or the log lines' rate over the
// span the log covers, whichever is larger.
func (g signal) impact(s *Snapshot) float64 {
	r := 0.0
	if g.counted() {
		r = g.m.Rate
	}
	return max(r, s.logRate(len(g.logs)))
}

// severity lowers a catalog severity when the evidence shows the failure only sporadically or
// at no known time: a cumulative counter averaging under sporadicRate, a counter with no time
// base (per-host /clusters counters, since the host was added), or a few log lines and no
// counter.
func (g signal) severity(base Severity) Severity {
	strong := false
	if g.counted() {
		switch {
		case g.m.Interval:
			strong = true
		case g.m.Since != "":
			// Counted since some time other than the proxy's start, with no time base: however
			// many, they may all be old.
			strong = false
		case g.m.Span > 0:
			strong = g.m.Rate >= sporadicRate
		default:
			strong = g.m.Value >= fewCumulativeEvents
		}
	}
	if len(g.logs) >= fewLogEntries {
		strong = true
	}
	if !strong {
		if (g.small || g.excerpt) && g.counted() && base != SeverityInfo {
			// Few events, but all or most of what the evidence shows: worth a warning.
			return SeverityWarning
		}
		return lowerSeverity(base)
	}
	return base
}

// lowerSeverity returns the severity one step below (info stays info).
func lowerSeverity(s Severity) Severity {
	switch s {
	case SeverityError:
		return SeverityWarning
	case SeverityWarning:
		return SeverityInfo
	}
	return s
}

// evidence returns the counter's evidence line (when present) and the log count line (when
// there are matching lines).
func (g signal) evidence(s *Snapshot, counterLabel, logLabel string) []Evidence {
	var ev []Evidence
	if g.ok && g.m.Value > 0 {
		ev = append(ev, g.m.Evidence(counterLabel))
	}
	if g.small && g.counted() {
		if g.total.Value > 0 {
			ev = append(ev, g.total.Evidence(fmt.Sprintf("small numbers, against this total since the proxy started (%s)", g.total.Source)))
		} else {
			ev = append(ev, Evidence{Label: "small numbers: the stats hold no request or connection total for this upstream (an excerpt), so the count is all there is", Value: g.m.Value, Unit: UnitCount, Source: g.m.Source})
		}
	}
	if len(g.logs) > 0 {
		ev = append(ev, s.logEvidence(logLabel, len(g.logs)))
	}
	return ev
}

// clusterSignal reads a cluster counter and the log lines of that cluster that match.
func (s *Snapshot) clusterSignal(cluster, stat string, match func(e *envoyadmin.AccessLogEntry) bool) signal {
	g := signal{}
	g.m, g.ok = s.ClusterCounter(cluster, stat)
	g.small, g.total = s.smallCount(cluster, g.m, g.ok)
	g.excerpt = g.ok && !g.m.Interval && !s.hasClusterTotal(cluster)
	if match != nil {
		g.logs = s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool {
			return e.UpstreamCluster == cluster && match(e)
		})
	}
	return g
}

// clusterSignalOrHosts is clusterSignal, falling back on the per-host counter of /clusters
// (summed over the hosts) when the stats do not have the cluster's counter. Those counters run
// since each host was added: no time base, so no rate and no strong severity.
func (s *Snapshot) clusterSignalOrHosts(cluster, stat, hostStat string, match func(e *envoyadmin.AccessLogEntry) bool) signal {
	g := s.clusterSignal(cluster, stat, match)
	u := s.Upstream(cluster)
	if g.ok || u == nil {
		return g
	}
	var sum, total float64
	for _, h := range u.Hosts {
		sum += float64(h.Stats[hostStat])
		total += float64(h.Stats["rq_total"])
	}
	if sum == 0 {
		return g
	}
	file := orDefault(s.UpstreamsFile, "clusters")
	g.m, g.ok = Measure{Value: sum, Since: hostAddedSince, Source: file + " " + hostStat + " summed over hosts"}, true
	switch {
	case sum >= minCumulativeEvents:
	case total == 0:
		g.small, g.excerpt = true, true
	case sum/total >= smallShare:
		g.small, g.total = true, Measure{Value: total, Since: hostAddedSince, Source: file + " rq_total summed over hosts"}
	}
	return g
}

// smallCount says whether a cumulative count under minCumulativeEvents is still worth a
// finding: all or smallShare of the cluster's requests (or connections), or a count in an
// excerpt that holds neither total.
func (s *Snapshot) smallCount(cluster string, m Measure, ok bool) (bool, Measure) {
	if !ok || m.Interval || m.Value < 1 || m.Value >= minCumulativeEvents {
		return false, Measure{}
	}
	// The failures the upstream's requests met: a count that explains most of them is their
	// cause, however many requests succeeded beside them.
	if fails, ok := s.ClusterCounter(cluster, "upstream_rq_5xx"); ok && fails.Value > 0 && m.Value/fails.Value >= 0.5 {
		return true, fails
	}
	for _, stat := range []string{"upstream_rq_total", "upstream_cx_total"} {
		if tot, ok := s.ClusterCounter(cluster, stat); ok {
			return tot.Value > 0 && m.Value/tot.Value >= smallShare, tot
		}
	}
	return true, Measure{}
}

// hasClusterTotal reports whether the stats hold a request or connection total for a cluster:
// Envoy writes both for every cluster it keeps stats of, so an excerpt is what lacks them.
func (s *Snapshot) hasClusterTotal(cluster string) bool {
	for _, stat := range []string{"upstream_rq_total", "upstream_cx_total"} {
		if _, ok := s.ClusterCounter(cluster, stat); ok {
			return true
		}
	}
	return false
}

// logEvidence is an evidence line counting access-log lines.
func (s *Snapshot) logEvidence(label string, n int) Evidence {
	return Evidence{Label: label, Value: float64(n), Unit: UnitCount, Source: fmt.Sprintf("access.log (%d lines)", len(s.AccessLog))}
}

// logSpan is the time between the first and the last timestamped access-log line.
func (s *Snapshot) logSpan() time.Duration {
	var first, last time.Time
	for _, e := range s.AccessLog {
		if e.Timestamp.IsZero() {
			continue
		}
		if first.IsZero() || e.Timestamp.Before(first) {
			first = e.Timestamp
		}
		if e.Timestamp.After(last) {
			last = e.Timestamp
		}
	}
	return last.Sub(first)
}

// Bounds of an access-log span that a rate can be taken over.
const (
	// minLogSpan: a rate over a burst under a second says nothing about the load.
	minLogSpan = time.Second
	// maxLogSpan: one capture's log covers minutes or hours. A longer span means lines of
	// several captures, restarts or years were pasted together, and lines per second of it
	// would be a meaningless near-zero figure.
	maxLogSpan = 24 * time.Hour
)

// logRate is n log lines per second of the log's span. When the span is unknown (no
// timestamps), under minLogSpan or over maxLogSpan, there is no rate: it returns 0, so a finding
// that rests on log lines alone has impact 0 and ranks by severity and code (see
// Finding.Impact).
func (s *Snapshot) logRate(n int) float64 {
	span := s.logSpan()
	if n == 0 || span < minLogSpan || span > maxLogSpan {
		return 0
	}
	return float64(n) / span.Seconds()
}

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

// logHosts lists the distinct upstream hosts of log lines, most frequent first.
func logHosts(entries []envoyadmin.AccessLogEntry) []string {
	n := map[string]int{}
	for _, e := range entries {
		if e.UpstreamHost != "" && e.UpstreamHost != "-" {
			n[e.UpstreamHost]++
		}
	}
	hosts := sortedKeys(n)
	sort.SliceStable(hosts, func(i, j int) bool { return n[hosts[i]] > n[hosts[j]] })
	return hosts
}

// podRef returns the namespace and name of the diagnosed pod, or placeholders.
func (s *Snapshot) podRef() (ns, pod string) {
	ns, pod = s.Meta.Namespace, s.Meta.Pod
	if s.Config != nil {
		ns = orDefault(ns, s.Config.Proxy.Namespace)
		pod = orDefault(pod, s.Config.Proxy.PodName)
	}
	if s.Pod != nil {
		ns = orDefault(ns, s.Pod.Namespace)
		pod = orDefault(pod, s.Pod.Name)
	}
	return orDefault(ns, "<namespace>"), orDefault(pod, "<pod>")
}

// proxyCommand is a command run in the pod's istio-proxy container.
func (s *Snapshot) proxyCommand(cmd string) string {
	ns, pod := s.podRef()
	return fmt.Sprintf("kubectl exec -n %s %s -c istio-proxy -- %s", ns, pod, cmd)
}

// proxyLogGrep is a command that shows the proxy's access-log lines with a pattern.
func (s *Snapshot) proxyLogGrep(pattern string) string {
	ns, pod := s.podRef()
	return fmt.Sprintf("kubectl logs -n %s %s -c istio-proxy | grep -E '%s'", ns, pod, pattern)
}

// serviceHost returns the Kubernetes service host of an Istio cluster, "" for other clusters.
func serviceHost(cluster string) string {
	return envoyadmin.ParseClusterName(cluster).Host
}

// destinationRuleFix renders a DestinationRule for the cluster's service, or "" when the
// cluster is not an Istio service cluster (a DestinationRule could not select it).
func destinationRuleFix(cluster, trafficPolicy string) string {
	host := serviceHost(cluster)
	if host == "" {
		return ""
	}
	return "# If a DestinationRule for " + host + " exists, merge this into it: applying this one replaces a rule of the same name.\n" +
		DestinationRuleYAML(host, trafficPolicy)
}

// endpointsCommand lists a service's endpoints, with the pods behind them.
func endpointsCommand(cluster string) string {
	host := serviceHost(cluster)
	if host == "" {
		return ""
	}
	name, ns := hostNameNamespace(host)
	if ns == "" {
		return ""
	}
	return fmt.Sprintf("kubectl get endpointslices -n %s -l kubernetes.io/service-name=%s -o wide", ns, name)
}

// podByIPCommand finds the pods behind host addresses ("10.0.0.7:8080").
func podByIPCommand(addrs []string) string {
	var parts []string
	for i, a := range addrs {
		if i == maxListedHosts {
			break
		}
		ip := a
		if i := strings.LastIndexByte(a, ':'); i > 0 {
			ip = strings.Trim(a[:i], "[]")
		}
		parts = append(parts, fmt.Sprintf("kubectl get pods -A -o wide --field-selector status.podIP=%s", ip))
	}
	return strings.Join(parts, "\n")
}

// durationText writes a duration the way Istio's YAML does: "4s", "90s", "250ms", "1h".
func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	}
	return d.String()
}

// millis is a duration in milliseconds, for evidence.
func millis(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 1) }

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
