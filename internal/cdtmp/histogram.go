package envoyadmin

import (
	"math"
	"sort"
)

// Quantile returns the q-quantile (0 <= q <= 1) of the histogram's observations.
//
// With buckets it computes exactly what Prometheus' histogram_quantile does for a classic
// histogram: buckets sorted and merged by bound, counts made monotonic, the rank q*count located
// by binary search, and the value interpolated linearly inside its bucket. The lowest bucket
// starts at 0 unless its bound is <= 0 (then the bound itself is returned), a rank in the +Inf
// bucket returns the largest finite bound, and an empty histogram gives NaN; q < 0 gives -Inf and
// q > 1 +Inf. Envoy's own admin bucket forms (/stats?histogram_buckets=...) stop at the largest
// bound without a +Inf bucket; they are read as if nothing lay beyond it, where Prometheus would
// answer NaN.
//
// Without buckets it interpolates linearly between Envoy's computed quantiles (the cumulative
// ones: P0, P25, ..., P100), NaN when Envoy had none.
func (h *Histogram) Quantile(q float64) float64 {
	switch {
	case h == nil || math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(+1)
	case len(h.Buckets) > 0:
		return bucketQuantile(q, h.Buckets)
	}
	return envoyQuantile(q, h.Quantiles)
}

// smallDeltaTolerance is the relative difference between neighbouring bucket counts that
// Prometheus treats as floating-point noise rather than a real change.
const smallDeltaTolerance = 1e-12

func bucketQuantile(q float64, in []Bucket) float64 {
	buckets := make([]Bucket, len(in), len(in)+1)
	copy(buckets, in)
	sort.SliceStable(buckets, func(i, j int) bool { return buckets[i].UpperBound < buckets[j].UpperBound })
	if last := buckets[len(buckets)-1]; !math.IsInf(last.UpperBound, +1) {
		buckets = append(buckets, Bucket{UpperBound: math.Inf(+1), Count: last.Count})
	}
	buckets = coalesceBuckets(buckets)
	ensureMonotonicBuckets(buckets)
	if len(buckets) < 2 {
		return math.NaN()
	}
	observations := buckets[len(buckets)-1].Count
	if observations == 0 {
		return math.NaN()
	}
	rank := q * observations
	b := sort.Search(len(buckets)-1, func(i int) bool { return buckets[i].Count >= rank })
	if b == len(buckets)-1 {
		return buckets[len(buckets)-2].UpperBound
	}
	if b == 0 && buckets[0].UpperBound <= 0 {
		return buckets[0].UpperBound
	}
	start, end, count := 0.0, buckets[b].UpperBound, buckets[b].Count
	if b > 0 {
		start = buckets[b-1].UpperBound
		count -= buckets[b-1].Count
		rank -= buckets[b-1].Count
	}
	return start + (end-start)*(rank/count)
}

// coalesceBuckets merges sorted buckets that share an upper bound, adding their counts.
func coalesceBuckets(buckets []Bucket) []Bucket {
	out := buckets[:1]
	for _, b := range buckets[1:] {
		if last := &out[len(out)-1]; b.UpperBound == last.UpperBound {
			last.Count += b.Count
			continue
		}
		out = append(out, b)
	}
	return out
}

// ensureMonotonicBuckets removes decreases between neighbouring cumulative counts, ignoring (and
// smoothing) differences small enough to be floating-point noise, as Prometheus does.
func ensureMonotonicBuckets(buckets []Bucket) {
	prev := buckets[0].Count
	for i := 1; i < len(buckets); i++ {
		cur := buckets[i].Count
		switch {
		case cur == prev:
		case promAlmostEqual(prev, cur, smallDeltaTolerance), cur < prev:
			buckets[i].Count = prev
		default:
			prev = cur
		}
	}
}

// promAlmostEqual reports whether a and b differ by less than epsilon relative to their size.
func promAlmostEqual(a, b, epsilon float64) bool {
	const minNormal = 2.2250738585072014e-308 // smallest positive normal float64
	if a == b {
		return true
	}
	absSum := math.Abs(a) + math.Abs(b)
	diff := math.Abs(a - b)
	if a == 0 || b == 0 || absSum < minNormal {
		return diff < epsilon*minNormal
	}
	return diff/math.Min(absSum, math.MaxFloat64) < epsilon
}

// envoyQuantile interpolates linearly between Envoy's computed cumulative quantiles.
func envoyQuantile(q float64, qs []Quantile) float64 {
	pts := make([]Quantile, 0, len(qs))
	for _, p := range qs {
		if !math.IsNaN(p.Cumulative) && !math.IsNaN(p.Q) {
			pts = append(pts, p)
		}
	}
	if len(pts) == 0 {
		return math.NaN()
	}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Q < pts[j].Q })
	if q <= pts[0].Q {
		return pts[0].Cumulative
	}
	for i := 1; i < len(pts); i++ {
		lo, hi := pts[i-1], pts[i]
		if q <= hi.Q {
			if hi.Q == lo.Q {
				return hi.Cumulative
			}
			return lo.Cumulative + (hi.Cumulative-lo.Cumulative)*(q-lo.Q)/(hi.Q-lo.Q)
		}
	}
	return pts[len(pts)-1].Cumulative
}

// Sub returns the observations h gained since prev, an earlier reading of the same histogram:
// bucket by bucket differences, and of Count and Sum. It is how an interval's latency
// distribution is had from two cumulative samples.
//
// If a bucket or the count went down, the proxy restarted (or its stats were reset) between the
// readings, and h, which then holds only observations since the restart, is returned as it is.
// h is also returned unchanged when prev is nil or either histogram has no buckets, since
// Envoy's computed quantiles cannot be subtracted. The result carries no Quantiles.
func (h *Histogram) Sub(prev *Histogram) *Histogram {
	if h == nil || prev == nil || len(h.Buckets) == 0 || len(prev.Buckets) == 0 || h.Count < prev.Count {
		return h
	}
	out := &Histogram{Buckets: make([]Bucket, len(h.Buckets)), Count: h.Count - prev.Count, Sum: h.Sum - prev.Sum}
	// prev's cumulative count at a bound is that of its last bucket not above it, which is exact
	// when both have the same bounds and for Envoy's detailed buckets, where an absent bucket
	// held nothing.
	j, before := 0, 0.0
	for i, b := range h.Buckets {
		for j < len(prev.Buckets) && prev.Buckets[j].UpperBound <= b.UpperBound {
			before = prev.Buckets[j].Count
			j++
		}
		d := b.Count - before
		if d < 0 {
			if !promAlmostEqual(b.Count, before, smallDeltaTolerance) {
				return h
			}
			d = 0
		}
		out.Buckets[i] = Bucket{UpperBound: b.UpperBound, Count: d}
	}
	return out
}

// cumulativeBuckets turns per-bucket counts into cumulative ones when they are not already:
// Envoy's "disjoint" bucket forms look the same as its "cumulative" ones, and a count that goes
// down from one bound to the next can only be disjoint.
func cumulativeBuckets(buckets []Bucket) []Bucket {
	disjoint := false
	for i := 1; i < len(buckets); i++ {
		if buckets[i].Count < buckets[i-1].Count {
			disjoint = true
			break
		}
	}
	if disjoint {
		sum := 0.0
		for i := range buckets {
			sum += buckets[i].Count
			buckets[i].Count = sum
		}
	}
	return buckets
}

// envoyDetailBucket is one of Envoy's fine-grained detailed buckets: count observations in
// [lower, lower+width).
type envoyDetailBucket struct{ lower, width, count float64 }

// histogramFromDetail builds cumulative buckets, ending in +Inf, from Envoy's detailed totals
// (/stats?histogram_buckets=detailed). They cover every observation, so Count is exact. Where a
// bucket does not start at the previous one's end, a bucket at its lower bound marks the empty
// gap, so that interpolation stays inside the bucket that holds the observations.
func histogramFromDetail(details []envoyDetailBucket) *Histogram {
	sort.SliceStable(details, func(i, j int) bool { return details[i].lower < details[j].lower })
	h := &Histogram{Buckets: make([]Bucket, 0, 2*len(details)+1)}
	end := 0.0
	for _, d := range details {
		if d.lower > end {
			h.Buckets = append(h.Buckets, Bucket{UpperBound: d.lower, Count: h.Count})
		}
		h.Count += d.count
		end = d.lower + d.width
		h.Buckets = append(h.Buckets, Bucket{UpperBound: end, Count: h.Count})
	}
	h.Buckets = append(h.Buckets, Bucket{UpperBound: math.Inf(+1), Count: h.Count})
	return h
}
