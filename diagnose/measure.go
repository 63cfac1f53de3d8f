package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Measure is a counter read from the stats: its increase over the capture window when two
// samples exist, otherwise its total since the proxy started.
type Measure struct {
	// Value is the increase over the window, or the cumulative total.
	Value float64
	// Rate is Value per second of Span; 0 when Span is unknown.
	Rate float64
	// Interval is true when Value is an increase between two samples.
	Interval bool
	// Span is the window, or the proxy's uptime for cumulative values (0 when unknown).
	Span time.Duration
	// Source names the file and stat the value came from.
	Source string
	// Since, for a cumulative value that does not count from the proxy's start, says from when
	// it counts ("the host was added", for /clusters per-host counters). Such a value has no
	// time base: Span and Rate stay 0.
	Since string
}

// Basis says in words what the measure covers: "over 10s", "since proxy start (3h0m0s ago)"
// or "since the host was added".
func (m Measure) Basis() string {
	if m.Interval {
		return "over " + roundWindow(m.Span).String()
	}
	if m.Since != "" {
		return "since " + m.Since
	}
	if m.Span > 0 {
		return "since proxy start (" + m.Span.Round(time.Second).String() + " ago)"
	}
	return "since proxy start"
}

// Evidence turns the measure into an evidence line: a rate when it has one, else a count.
func (m Measure) Evidence(label string) Evidence {
	if m.Rate > 0 {
		return Evidence{Label: label + " " + m.Basis(), Value: round(m.Rate, 3), Unit: UnitPerSecond, Source: m.Source}
	}
	return Evidence{Label: label + " " + m.Basis(), Value: m.Value, Unit: UnitCount, Source: m.Source}
}

// ClusterCounter reads a counter of an upstream cluster by canonical suffix
// ("upstream_rq_timeout"). ok is false when the stat is absent from the samples.
func (s *Snapshot) ClusterCounter(cluster, stat string) (m Measure, ok bool) {
	return s.measure(s.interval().Cluster(cluster, stat), statSource(s.StatsFile, s.Stats, cluster, stat))
}

// Counter reads a counter that is not scoped to a cluster, by canonical name.
func (s *Snapshot) Counter(stat string) (Measure, bool) {
	return s.measure(s.interval().Stat(stat), statSource(s.StatsFile, s.Stats, "", stat))
}

// interval pairs the two samples once; the pairing scans every counter for a restart.
func (s *Snapshot) interval() *envoyadmin.StatsInterval {
	if s.iv == nil || s.iv.Prev != s.Stats && s.iv.Cur != s.Stats {
		s.iv = envoyadmin.NewStatsInterval(s.Stats, s.Stats2, s.Window)
	}
	return s.iv
}

// measure turns a reading into a Measure, giving cumulative counters a rate over the uptime.
func (s *Snapshot) measure(r envoyadmin.StatReading, source string) (Measure, bool) {
	if !r.Found {
		return Measure{}, false
	}
	iv := s.interval()
	if !r.Cumulative && !r.Gauge && iv.Interval() {
		if r.Reset {
			source += " (counter reset: the proxy restarted during the window)"
		}
		return Measure{Value: r.Value, Rate: r.Rate, Interval: true, Span: iv.Window, Source: source + " (2 samples)"}, true
	}
	m := Measure{Value: r.Value, Source: source}
	if up := s.Uptime(); up > 0 && !r.Gauge {
		m.Span = up
		m.Rate = m.Value / up.Seconds()
	}
	return m, true
}

// ClusterGauge reads the current value of a cluster gauge (from the later sample).
func (s *Snapshot) ClusterGauge(cluster, stat string) (value float64, source string, ok bool) {
	r := s.interval().Cluster(cluster, stat)
	return r.Value, statSource(s.StatsFile, s.Stats, cluster, stat), r.Found
}

// ClusterHistogram returns a cluster's histogram ("upstream_rq_time"). With two samples that have
// buckets it is the interval histogram (bucket differences); otherwise the latest cumulative one.
func (s *Snapshot) ClusterHistogram(cluster, stat string) (h *envoyadmin.Histogram, interval bool, source string) {
	return histogramOf(s.interval().ClusterHistogram(cluster, stat), statSource(s.StatsFile, s.Stats, cluster, stat))
}

// Histogram returns a histogram not scoped to a cluster, like ClusterHistogram.
func (s *Snapshot) Histogram(stat string) (h *envoyadmin.Histogram, interval bool, source string) {
	return histogramOf(s.interval().Histogram(stat), statSource(s.StatsFile, s.Stats, "", stat))
}

func histogramOf(r envoyadmin.HistogramReading, source string) (*envoyadmin.Histogram, bool, string) {
	if r.Histogram == nil {
		return nil, false, source
	}
	if !r.Cumulative {
		return r.Histogram, true, source + " (difference of 2 samples)"
	}
	return r.Histogram, false, source
}

// ClusterNames returns every cluster name that any evidence mentions, each once, in the order
// first seen: config, stats, /clusters, access log.
func (s *Snapshot) ClusterNames() []string {
	seen := map[string]bool{}
	var out []string
	add := func(n string) {
		if n != "" && n != "-" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if s.Config != nil {
		for _, c := range s.Config.Clusters {
			add(c.Name.Raw)
		}
	}
	for _, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss == nil {
			continue
		}
		for _, n := range sortedKeys(ss.Clusters) {
			add(n)
		}
	}
	if s.Upstreams != nil {
		for _, c := range s.Upstreams.Clusters {
			add(c.Name.Raw)
		}
	}
	for _, e := range s.AccessLog {
		add(e.UpstreamCluster)
	}
	return out
}

// statSource names a stat the way its file spells it, so a user can grep for it.
func statSource(file string, ss *envoyadmin.StatsSample, cluster, stat string) string {
	if file == "" {
		file = "stats"
	}
	if ss != nil && ss.Format == envoyadmin.StatsPrometheus {
		if cluster == "" {
			return fmt.Sprintf("%s envoy_%s", file, stat)
		}
		return fmt.Sprintf("%s envoy_cluster_%s{cluster_name=%q}", file, stat, cluster)
	}
	name := dottedSuffix(stat)
	if cluster == "" {
		return file + " " + name
	}
	return file + " cluster." + cluster + "." + name
}

// dottedSuffix restores the dots of the scoped stat suffixes that rules read.
func dottedSuffix(stat string) string {
	for _, scope := range []string{"circuit_breakers_default_", "circuit_breakers_high_", "outlier_detection_", "ssl_"} {
		if strings.HasPrefix(stat, scope) {
			dotted := strings.ReplaceAll(strings.TrimSuffix(scope, "_"), "_default", ".default")
			dotted = strings.ReplaceAll(dotted, "_high", ".high")
			return dotted + "." + stat[len(scope):]
		}
	}
	return stat
}
