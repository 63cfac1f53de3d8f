package diagnose

import (
	"fmt"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Deciding when a counter is worth a finding: the thresholds that keep the upstream rules from
// reporting noise, and a signal (a cluster counter with the access-log lines that show the same
// failure) whose count, severity and impact follow from them.

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

// significant reports whether a counter shows enough events to speak of: any increase over a
// window between two samples, or at least minCumulative since the proxy started.
func significant(m Measure, minCumulative float64) bool {
	if m.Interval {
		return m.Value > 0
	}
	return m.Value >= minCumulative
}
