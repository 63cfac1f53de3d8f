package envoyadmin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// ParseStatsJSON reads the output of GET /stats?format=json:
//
//	{"stats": [{"name": "...", "value": 12}, {"name": "..._version_text", "value": "v13"},
//	           {"histograms": ...}]}
//
// where histograms take whichever shape the request asked for: computed quantiles by default
// ({"supported_quantiles": [0, 25, ...], "computed_quantiles": [{"name", "values":
// [{"interval", "cumulative"}]}]}, null for "no value"), buckets with ?histogram_buckets=
// cumulative or disjoint ([{"name", "buckets": [{"upper_bound", "interval", "cumulative"}]}]),
// or Envoy's fine-grained buckets with =detailed ({"supported_percentiles", "details": [{"name",
// "totals": [{"lower_bound", "width", "count"}], "intervals", "percentiles"}]}).
//
// The document must be valid JSON with a "stats" array; entries that fit none of these shapes
// are counted in Skipped. A histogram whose values are all null (never recorded) has NoValues.
func ParseStatsJSON(r io.Reader, opts ...StatsOption) (*StatsSample, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading stats: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return newSampleBuilder(StatsJSON, opts).finish(), nil
	}
	var doc struct {
		Stats *[]jsonStat `json:"stats"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: not JSON stats: %v", ErrNoStats, err)
	}
	if doc.Stats == nil {
		return nil, fmt.Errorf(`%w: JSON without a "stats" array`, ErrNoStats)
	}
	b := newSampleBuilder(StatsJSON, opts)
	for i, st := range *doc.Stats {
		if !b.addJSONStat(st) {
			raw, _ := json.Marshal(st)
			b.skip("stats entry", i+1, string(raw))
		}
	}
	return b.finish(), nil
}

// jsonStat is one entry of the "stats" array: a named value or the histograms block.
type jsonStat struct {
	Name       *string         `json:"name"`
	Value      json.RawMessage `json:"value"`
	Histograms json.RawMessage `json:"histograms"`
}

// jsonQuantile is a pair of computed quantiles; null means Envoy had no value.
type jsonQuantile struct {
	Interval   *float64 `json:"interval"`
	Cumulative *float64 `json:"cumulative"`
}

// jsonHistograms is the object form of the histograms block (quantiles or detailed).
type jsonHistograms struct {
	SupportedQuantiles []float64 `json:"supported_quantiles"`
	ComputedQuantiles  []struct {
		Name   string         `json:"name"`
		Values []jsonQuantile `json:"values"`
	} `json:"computed_quantiles"`
	SupportedPercentiles []float64 `json:"supported_percentiles"`
	Details              []struct {
		Name   string `json:"name"`
		Totals []struct {
			LowerBound float64 `json:"lower_bound"`
			Width      float64 `json:"width"`
			Count      float64 `json:"count"`
		} `json:"totals"`
		Percentiles []jsonQuantile `json:"percentiles"`
	} `json:"details"`
}

// jsonBucketHistogram is one entry of the array form (histogram_buckets=cumulative|disjoint).
type jsonBucketHistogram struct {
	Name    string `json:"name"`
	Buckets []struct {
		UpperBound *float64 `json:"upper_bound"`
		Cumulative *float64 `json:"cumulative"`
	} `json:"buckets"`
}

// addJSONStat adds one entry of the stats array, reporting whether it was understood.
func (b *sampleBuilder) addJSONStat(st jsonStat) bool {
	if len(st.Histograms) > 0 && !bytes.Equal(st.Histograms, []byte("null")) {
		return b.addJSONHistograms(st.Histograms)
	}
	if st.Name == nil || *st.Name == "" || len(st.Value) == 0 {
		return false
	}
	switch st.Value[0] {
	case '"':
		var s string
		if json.Unmarshal(st.Value, &s) != nil {
			return false
		}
		b.add(*st.Name, statValue{kind: statText, text: s})
	default:
		f, err := strconv.ParseFloat(string(st.Value), 64)
		if err != nil {
			return false
		}
		b.add(*st.Name, statValue{kind: statNumber, num: f})
	}
	return true
}

// addJSONHistograms adds every histogram of the histograms block, in any of its shapes.
func (b *sampleBuilder) addJSONHistograms(raw json.RawMessage) bool {
	if raw = bytes.TrimSpace(raw); len(raw) > 0 && raw[0] == '[' {
		var hs []jsonBucketHistogram
		if json.Unmarshal(raw, &hs) != nil {
			return false
		}
		for _, jh := range hs {
			h := &Histogram{}
			for _, bk := range jh.Buckets {
				if bk.UpperBound == nil || bk.Cumulative == nil || *bk.Cumulative < 0 {
					return false
				}
				h.Buckets = append(h.Buckets, Bucket{UpperBound: *bk.UpperBound, Count: *bk.Cumulative})
			}
			if jh.Name == "" || !sortedBounds(h.Buckets) {
				return false
			}
			if len(h.Buckets) > 0 {
				h.Buckets = cumulativeBuckets(h.Buckets)
				h.Count = h.Buckets[len(h.Buckets)-1].Count
			}
			b.add(jh.Name, statValue{kind: statHistogram, hist: h})
		}
		return true
	}
	var hs jsonHistograms
	if json.Unmarshal(raw, &hs) != nil {
		return false
	}
	for _, cq := range hs.ComputedQuantiles {
		if cq.Name == "" {
			return false
		}
		b.add(cq.Name, statValue{kind: statHistogram, hist: histogramFromJSONQuantiles(hs.SupportedQuantiles, cq.Values)})
	}
	for _, d := range hs.Details {
		if d.Name == "" {
			return false
		}
		details := make([]envoyDetailBucket, 0, len(d.Totals))
		for _, t := range d.Totals {
			if t.Count < 0 {
				return false
			}
			details = append(details, envoyDetailBucket{lower: t.LowerBound, width: t.Width, count: t.Count})
		}
		h := histogramFromDetail(details)
		h.Quantiles = histogramFromJSONQuantiles(hs.SupportedPercentiles, d.Percentiles).Quantiles
		h.NoValues = h.Count == 0 && len(h.Quantiles) == 0
		b.add(d.Name, statValue{kind: statHistogram, hist: h})
	}
	return true
}

// histogramFromJSONQuantiles pairs computed quantiles with the supported quantiles (in percent).
// A histogram with no value at all, as Envoy reports one never recorded into, has NoValues.
func histogramFromJSONQuantiles(supported []float64, values []jsonQuantile) *Histogram {
	h := &Histogram{NoValues: true}
	for i, v := range values {
		if i >= len(supported) {
			break
		}
		q := Quantile{Q: supported[i] / 100, Interval: jsonFloat(v.Interval), Cumulative: jsonFloat(v.Cumulative)}
		if !math.IsNaN(q.Interval) || !math.IsNaN(q.Cumulative) {
			h.NoValues = false
		}
		h.Quantiles = append(h.Quantiles, q)
	}
	if h.NoValues {
		h.Quantiles = nil
	}
	return h
}

func jsonFloat(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

func sortedBounds(bs []Bucket) bool {
	for i := 1; i < len(bs); i++ {
		if bs[i].UpperBound <= bs[i-1].UpperBound {
			return false
		}
	}
	return true
}
