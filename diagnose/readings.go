package diagnose

import (
	"fmt"
	"math"
	"sort"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Reading the samples: the latest one, Istio metrics summed over matching series, latency
// quantiles of merged histograms.

// IstioCount sums an Istio counter (istio_requests_total) over the series whose labels match,
// as an increase over the window when two samples exist, else cumulative.
func (s *Snapshot) IstioCount(metric string, match func(labels map[string]string) bool) (Measure, bool) {
	return s.measure(s.interval().IstioWhere(metric, match), fmt.Sprintf("%s %s", orDefault(s.StatsFile, "stats"), metric))
}

// latestStats returns the later stats sample, or the only one; nil without stats.
func (s *Snapshot) latestStats() *envoyadmin.StatsSample {
	if s.Stats2 != nil {
		return s.Stats2
	}
	return s.Stats
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
