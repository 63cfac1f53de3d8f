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
}

// Basis says in words what the measure covers: "over 10s" or "since proxy start (3h0m0s)".
func (m Measure) Basis() string {
	if m.Interval {
		return "over " + m.Span.String()
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
	get := func(ss *envoyadmin.StatsSample) (float64, bool) {
		if ss == nil {
			return 0, false
		}
		cs := ss.Clusters[cluster]
		if cs == nil {
			return 0, false
		}
		v, ok := cs.Values[stat]
		return v, ok
	}
	return s.counter(get, statSource(s.StatsFile, s.Stats, cluster, stat))
}

// Counter reads a counter that is not scoped to a cluster, by canonical name.
func (s *Snapshot) Counter(stat string) (Measure, bool) {
	get := func(ss *envoyadmin.StatsSample) (float64, bool) {
		if ss == nil {
			return 0, false
		}
		v, ok := ss.Stats[stat]
		return v, ok
	}
	return s.counter(get, statSource(s.StatsFile, s.Stats, "", stat))
}

func (s *Snapshot) counter(get func(*envoyadmin.StatsSample) (float64, bool), source string) (Measure, bool) {
	first, ok := get(s.Stats)
	if !ok {
		return Measure{}, false
	}
	if second, ok2 := get(s.Stats2); ok2 && s.Window > 0 && second >= first {
		d := second - first
		return Measure{Value: d, Rate: d / s.Window.Seconds(), Interval: true, Span: s.Window, Source: source + " (2 samples)"}, true
	}
	m := Measure{Value: first, Source: source}
	if s.Stats2 != nil {
		// Prefer the later sample for a cumulative reading; a counter that went down means the
		// proxy restarted between samples, and the later value covers the new run only.
		if second, ok2 := get(s.Stats2); ok2 {
			m.Value = second
		}
	}
	if up := s.Uptime(); up > 0 {
		m.Span = up
		m.Rate = m.Value / up.Seconds()
	}
	return m, true
}

// ClusterGauge reads the current value of a cluster gauge (from the later sample).
func (s *Snapshot) ClusterGauge(cluster, stat string) (value float64, source string, ok bool) {
	for _, ss := range []*envoyadmin.StatsSample{s.Stats2, s.Stats} {
		if ss == nil || ss.Clusters[cluster] == nil {
			continue
		}
		if v, ok := ss.Clusters[cluster].Values[stat]; ok {
			return v, statSource(s.StatsFile, ss, cluster, stat), true
		}
	}
	return 0, "", false
}

// ClusterHistogram returns a cluster's histogram ("upstream_rq_time"). With two samples that have
// buckets it is the interval histogram (bucket differences); otherwise the latest cumulative one.
func (s *Snapshot) ClusterHistogram(cluster, stat string) (h *envoyadmin.Histogram, interval bool, source string) {
	get := func(ss *envoyadmin.StatsSample) *envoyadmin.Histogram {
		if ss == nil || ss.Clusters[cluster] == nil {
			return nil
		}
		return ss.Clusters[cluster].Histograms[stat]
	}
	return s.histogram(get, statSource(s.StatsFile, s.Stats, cluster, stat))
}

// Histogram returns a histogram not scoped to a cluster, like ClusterHistogram.
func (s *Snapshot) Histogram(stat string) (h *envoyadmin.Histogram, interval bool, source string) {
	get := func(ss *envoyadmin.StatsSample) *envoyadmin.Histogram {
		if ss == nil {
			return nil
		}
		return ss.Histograms[stat]
	}
	return s.histogram(get, statSource(s.StatsFile, s.Stats, "", stat))
}

func (s *Snapshot) histogram(get func(*envoyadmin.StatsSample) *envoyadmin.Histogram, source string) (*envoyadmin.Histogram, bool, string) {
	first, second := get(s.Stats), get(s.Stats2)
	if first != nil && second != nil && len(second.Buckets) > 0 && s.Window > 0 {
		return second.Sub(first), true, source + " (difference of 2 samples)"
	}
	if second != nil {
		return second, false, source
	}
	return first, false, source
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
