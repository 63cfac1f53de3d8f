package envoyadmin

import (
	"math"
	"testing"
)

var inf = math.Inf(+1)

// TestHistogramQuantile checks Quantile against results worked out by hand with Prometheus'
// histogram_quantile rules.
func TestHistogramQuantile(t *testing.T) {
	prom := []Bucket{{1, 1}, {2, 3}, {4, 3}, {inf, 4}} // 4 observations
	tests := []struct {
		name    string
		buckets []Bucket
		qs      []Quantile
		q, want float64
	}{
		{"lowest bucket starts at 0", prom, nil, 0.25, 1}, // rank 1 of (0,1]
		{"interpolated", prom, nil, 0.5, 1.5},             // rank 2: 1 into (1,2] holding 2
		{"bucket top", prom, nil, 0.75, 2},                // rank 3: all of (1,2]
		{"+Inf bucket gives the largest bound", prom, nil, 0.9, 4},
		{"q=1", prom, nil, 1, 4},
		{"q=0", prom, nil, 0, 0},
		{"q<0", prom, nil, -0.1, math.Inf(-1)},
		{"q>1", prom, nil, 1.1, inf},
		{"q=NaN", prom, nil, math.NaN(), math.NaN()},
		{"no observations", []Bucket{{1, 0}, {inf, 0}}, nil, 0.5, math.NaN()},
		{"only +Inf", []Bucket{{inf, 5}}, nil, 0.5, math.NaN()},
		{"bound <= 0 returned as is", []Bucket{{0, 2}, {10, 4}, {inf, 4}}, nil, 0.25, 0},
		{"above a zero bucket", []Bucket{{0, 2}, {10, 4}, {inf, 4}}, nil, 0.75, 5},
		{"unsorted, duplicate bounds merged", []Bucket{{2, 3}, {1, 1}, {inf, 4}, {1, 0}}, nil, 0.5, 1.5},
		{"decreasing counts made monotonic", []Bucket{{1, 2}, {2, 1}, {inf, 4}}, nil, 0.5, 1},
		{"q=0 with an empty first bucket is NaN, as in Prometheus", []Bucket{{1, 0}, {2, 2}, {inf, 2}}, nil, 0, math.NaN()},
		{"Envoy buckets without +Inf", []Bucket{{1, 1}, {2, 3}, {4, 3}}, nil, 0.5, 1.25},
		{"Envoy buckets without +Inf, q=1", []Bucket{{1, 1}, {2, 3}, {4, 3}}, nil, 1, 2},
		{"Envoy quantiles, between P0 and P50", nil, envoyQs(1, 2, 4), 0.25, 1.5},
		{"Envoy quantiles, between P50 and P100", nil, envoyQs(1, 2, 4), 0.75, 3},
		{"Envoy quantiles, exact", nil, envoyQs(1, 2, 4), 0.5, 2},
		{"Envoy quantiles, q=0", nil, envoyQs(1, 2, 4), 0, 1},
		{"Envoy quantiles, NaN skipped", nil, envoyQs(1, math.NaN(), 4), 0.5, 2.5},
		{"Envoy quantiles all NaN", nil, envoyQs(math.NaN(), math.NaN(), math.NaN()), 0.5, math.NaN()},
		{"empty histogram", nil, nil, 0.5, math.NaN()},
	}
	for _, tt := range tests {
		h := &Histogram{Buckets: tt.buckets, Quantiles: tt.qs}
		before := append([]Bucket(nil), tt.buckets...)
		got := h.Quantile(tt.q)
		if !(got == tt.want || math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("%s: Quantile(%v) = %v, want %v", tt.name, tt.q, got, tt.want)
		}
		for i := range before {
			if before[i] != h.Buckets[i] {
				t.Errorf("%s: Quantile modified the buckets", tt.name)
			}
		}
	}
	var nilH *Histogram
	if !math.IsNaN(nilH.Quantile(0.5)) {
		t.Error("nil histogram: want NaN")
	}
}

func envoyQs(p0, p50, p100 float64) []Quantile {
	return []Quantile{{0, math.NaN(), p0}, {0.5, math.NaN(), p50}, {1, math.NaN(), p100}}
}

func TestHistogramSub(t *testing.T) {
	prev := &Histogram{Buckets: []Bucket{{1, 1}, {2, 3}, {inf, 4}}, Count: 4, Sum: 10}
	cur := &Histogram{Buckets: []Bucket{{1, 3}, {2, 6}, {inf, 9}}, Count: 9, Sum: 25, Quantiles: envoyQs(1, 2, 3)}
	d := cur.Sub(prev)
	want := []Bucket{{1, 2}, {2, 3}, {inf, 5}}
	if d == cur || d.Count != 5 || d.Sum != 15 || len(d.Quantiles) != 0 || !equalBuckets(d.Buckets, want) {
		t.Errorf("Sub = %+v, want buckets %v count 5 sum 15", d, want)
	}
	// Over the window: rank 2.5 of 5 lies half-way into (1,2], which gained 1 observation.
	if got := d.Quantile(0.5); got != 1.5 {
		t.Errorf("interval p50 = %v, want 1.5", got)
	}
	reset := &Histogram{Buckets: []Bucket{{1, 0}, {2, 1}, {inf, 5}}, Count: 5}
	for name, tc := range map[string]struct{ h, prev *Histogram }{
		"bucket went down":  {reset, prev},
		"count went down":   {&Histogram{Buckets: []Bucket{{1, 1}, {2, 3}, {inf, 4}}, Count: 3}, prev},
		"no earlier sample": {cur, nil},
		"no buckets":        {&Histogram{Quantiles: envoyQs(1, 2, 3)}, prev},
		"earlier without":   {cur, &Histogram{Quantiles: envoyQs(1, 2, 3)}},
	} {
		if got := tc.h.Sub(tc.prev); got != tc.h {
			t.Errorf("%s: Sub = %+v, want the later histogram itself", name, got)
		}
	}
	// Envoy's detailed buckets: a bucket only in the later sample held nothing before.
	dp := &Histogram{Buckets: []Bucket{{100, 0}, {110, 3}, {inf, 3}}, Count: 3}
	dc := &Histogram{Buckets: []Bucket{{100, 0}, {110, 3}, {200, 3}, {210, 4}, {inf, 4}}, Count: 4}
	if got, want := dc.Sub(dp), []Bucket{{100, 0}, {110, 0}, {200, 0}, {210, 1}, {inf, 1}}; !equalBuckets(got.Buckets, want) || got.Count != 1 {
		t.Errorf("detailed Sub = %+v, want %v", got, want)
	}
	var nilH *Histogram
	if nilH.Sub(prev) != nil {
		t.Error("nil.Sub: want nil")
	}
}

func equalBuckets(a, b []Bucket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
