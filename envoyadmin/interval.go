package envoyadmin

import "time"

// StatsInterval answers questions about one proxy's stats over a capture window: what a counter
// did per second between two samples, what a gauge reads now, and the latency distribution of
// the window alone. With a single sample it still answers, with readings marked Cumulative
// (since the proxy started), so rules can say which they are quoting.
type StatsInterval struct {
	// Prev is the earlier sample (nil with one sample); Cur the later one.
	Prev, Cur *StatsSample
	// Window is the time between the two samples.
	Window time.Duration
	// Restarted is true when the proxy restarted (or its counters were reset) between the
	// samples: server_uptime went down or a counter went backwards. Readings of the counters
	// that went backwards are then their count since the restart, flagged Reset, never negative.
	Restarted bool
}

// StatReading is one counter or gauge as a rule should quote it.
type StatReading struct {
	// Found is false when the latest sample does not have the stat.
	Found bool
	// Gauge is true for gauges, whose Value is the current value.
	Gauge bool
	// Value is, for a counter, its increase over the window, or its total since the proxy
	// started when Cumulative; for a gauge, its value in the latest sample.
	Value float64
	// Rate is the counter's increase per second over the window; 0 for gauges and cumulative
	// readings.
	Rate float64
	// Cumulative is true when Value is a total since the proxy started (one sample, no window).
	Cumulative bool
	// Reset is true when the counter went backwards: Value is its count since the restart.
	Reset bool
}

// HistogramReading is a histogram over the window when two samples with buckets allow it,
// otherwise the latest cumulative one. A nil Histogram means the stat is absent; Quantile is
// safe to call on it (NaN).
type HistogramReading struct {
	*Histogram
	// Cumulative is true when the histogram covers the time since the proxy started rather
	// than the window (one sample, no buckets to subtract, or a reset).
	Cumulative bool
	// Reset is true when the histogram went backwards between the samples.
	Reset bool
}

// NewStatsInterval pairs two samples of one proxy taken window apart. prev may be nil (one
// sample), and so may cur, in which case prev is the only sample. A window <= 0 also means
// there is no interval: readings are cumulative.
func NewStatsInterval(prev, cur *StatsSample, window time.Duration) *StatsInterval {
	if cur == nil {
		prev, cur = nil, prev
	}
	if window <= 0 {
		prev = nil
	}
	iv := &StatsInterval{Prev: prev, Cur: cur, Window: window}
	if prev == nil || cur == nil {
		iv.Window = 0
		return iv
	}
	if up, ok := cur.Stats["server_uptime"]; ok {
		if before, ok := prev.Stats["server_uptime"]; ok && up < before {
			iv.Restarted = true
		}
	}
	iv.Restarted = iv.Restarted || countersWentBack(prev.Stats, cur.Stats, cur) ||
		clustersWentBack(prev, cur)
	return iv
}

func countersWentBack(prev, cur map[string]float64, s *StatsSample) bool {
	for name, v := range cur {
		if before, ok := prev[name]; ok && v < before && !s.IsGauge(name) {
			return true
		}
	}
	return false
}

func clustersWentBack(prev, cur *StatsSample) bool {
	for name, cs := range cur.Clusters {
		if before := prev.Clusters[name]; before != nil && countersWentBack(before.Values, cs.Values, cur) {
			return true
		}
	}
	return false
}

// Interval reports whether readings span the window between two samples.
func (iv *StatsInterval) Interval() bool { return iv.Prev != nil && iv.Window > 0 }

// Stat reads a stat not scoped to a cluster, by canonical name ("server_uptime",
// "cluster_manager_cds_update_rejected").
func (iv *StatsInterval) Stat(name string) StatReading {
	return iv.read(name, func(s *StatsSample) map[string]float64 { return s.Stats })
}

// Cluster reads a cluster's stat by canonical suffix ("upstream_rq_pending_overflow",
// "circuit_breakers_default_rq_pending_open").
func (iv *StatsInterval) Cluster(cluster, stat string) StatReading {
	return iv.read(stat, func(s *StatsSample) map[string]float64 {
		if cs := s.Clusters[cluster]; cs != nil {
			return cs.Values
		}
		return nil
	})
}

func (iv *StatsInterval) read(name string, values func(*StatsSample) map[string]float64) StatReading {
	if iv == nil || iv.Cur == nil {
		return StatReading{}
	}
	v, ok := values(iv.Cur)[name]
	r := StatReading{Found: ok, Gauge: iv.Cur.IsGauge(name), Value: v}
	if !ok || r.Gauge {
		return r
	}
	if !iv.Interval() {
		r.Cumulative = true
		return r
	}
	// A counter absent from the earlier sample was created during the window: Envoy makes
	// some (upstream_rq_503) on first use, and usedonly leaves out zeros.
	before := values(iv.Prev)[name]
	if v < before {
		r.Reset = true // Value stays v: its count since the restart, as Prometheus' rate() does
	} else {
		r.Value = v - before
	}
	r.Rate = r.Value / iv.Window.Seconds()
	return r
}

// Histogram reads a histogram not scoped to a cluster, by canonical name.
func (iv *StatsInterval) Histogram(name string) HistogramReading {
	return iv.readHistogram(func(s *StatsSample) *Histogram { return s.Histograms[name] })
}

// ClusterHistogram reads a cluster's histogram by canonical suffix ("upstream_rq_time").
func (iv *StatsInterval) ClusterHistogram(cluster, stat string) HistogramReading {
	return iv.readHistogram(func(s *StatsSample) *Histogram {
		if cs := s.Clusters[cluster]; cs != nil {
			return cs.Histograms[stat]
		}
		return nil
	})
}

func (iv *StatsInterval) readHistogram(get func(*StatsSample) *Histogram) HistogramReading {
	if iv == nil || iv.Cur == nil {
		return HistogramReading{}
	}
	cur := get(iv.Cur)
	if cur == nil || !iv.Interval() || len(cur.Buckets) == 0 {
		return HistogramReading{Histogram: cur, Cumulative: true}
	}
	prev := get(iv.Prev)
	if prev == nil || len(prev.Buckets) == 0 {
		// Absent before: created during the window, so all of it is new. Present without
		// buckets: nothing to subtract, so it stays cumulative.
		return HistogramReading{Histogram: cur, Cumulative: prev != nil}
	}
	d := cur.Sub(prev)
	if d == cur {
		return HistogramReading{Histogram: cur, Cumulative: true, Reset: true}
	}
	return HistogramReading{Histogram: d}
}

// Istio sums the series of an Istio metric ("istio_requests_total") whose labels include every
// pair in match (nil matches all), as a counter over the window. For histograms
// (istio_request_duration_milliseconds) it counts observations.
func (iv *StatsInterval) Istio(metric string, match map[string]string) StatReading {
	return iv.IstioWhere(metric, func(labels map[string]string) bool { return labelsMatch(labels, match) })
}

// IstioWhere is Istio with any test of a series' labels: the sum of the series of metric whose
// labels match, over the window (or cumulative with one sample). A series absent before the
// window started at zero; a sum that went down means the proxy restarted (Reset).
func (iv *StatsInterval) IstioWhere(metric string, match func(labels map[string]string) bool) StatReading {
	if iv == nil || iv.Cur == nil {
		return StatReading{}
	}
	sum := func(s *StatsSample) (total float64, found bool) {
		if s == nil {
			return 0, false
		}
		for _, series := range s.Istio {
			if series.Metric == metric && match(series.Labels) {
				total += series.Value
				found = true
			}
		}
		return total, found
	}
	v, ok := sum(iv.Cur)
	r := StatReading{Found: ok, Value: v}
	if !ok {
		return r
	}
	if !iv.Interval() {
		r.Cumulative = true
		return r
	}
	before, _ := sum(iv.Prev)
	if v < before {
		r.Reset = true
	} else {
		r.Value = v - before
	}
	r.Rate = r.Value / iv.Window.Seconds()
	return r
}

func labelsMatch(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// IstioHistogram merges the histograms of an Istio metric's series whose labels include every
// pair in match ("istio_request_duration_milliseconds" with reporter=destination) and returns
// the observations of the window: the latest sample's minus the previous one's (the latest's
// alone without a window). Nil when no series matches.
func (iv *StatsInterval) IstioHistogram(metric string, match map[string]string) *Histogram {
	if iv == nil || iv.Cur == nil {
		return nil
	}
	merge := func(s *StatsSample) *Histogram {
		var sum *Histogram
		if s == nil {
			return nil
		}
		for _, series := range s.Istio {
			if series.Metric == metric && series.Histogram != nil && labelsMatch(series.Labels, match) {
				sum = MergeHistograms(sum, series.Histogram)
			}
		}
		return sum
	}
	cur := merge(iv.Cur)
	if cur == nil || !iv.Interval() {
		return cur
	}
	prev := merge(iv.Prev)
	if prev != nil && (len(cur.Buckets) == 0 || len(prev.Buckets) == 0) && cur.Count >= prev.Count {
		// Without buckets (a _count and _sum only) the window still has a count and a sum.
		return &Histogram{Count: cur.Count - prev.Count, Sum: cur.Sum - prev.Sum}
	}
	return cur.Sub(prev)
}
