package envoyadmin

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxPromRetries bounds how many unparsable lines ParseStatsPrometheus drops and re-parses around
// before it settles for what it has.
const maxPromRetries = 32

// ParseStatsPrometheus reads the output of GET /stats/prometheus with Prometheus' own text
// parser (expfmt) and maps it onto the sample:
//
//   - envoy_cluster_<x>{cluster_name="C"} (Istio's tag) or {envoy_cluster_name="C"} (Envoy's,
//     as Kuma and plain Envoy emit) become Clusters[C].Values[x] or .Histograms[x];
//   - the response code tags go back into the name, as in the text format:
//     envoy_cluster_upstream_rq{envoy_response_code="503"} is "upstream_rq_503", and
//     envoy_cluster_upstream_rq_xx{envoy_response_code_class="5"} (or Istio 1.5's
//     upstream_rq{response_code_class="5xx"}) is "upstream_rq_5xx";
//   - an HTTP connection manager's metrics keep its stat prefix in the name, as the text format
//     has it: envoy_http_downstream_rq_time{http_conn_manager_prefix="inbound_0.0.0.0_9080"} is
//     "http_inbound_0_0_0_0_9080_downstream_rq_time", so rules can tell the inbound side of a
//     port from the outbound one;
//   - other envoy_* metrics go to Stats and Histograms without the "envoy_" prefix; their series
//     are summed over every other label (listener...), as are a cluster's;
//   - istio_* metrics are kept series by series, with all their labels, in Istio;
//   - text readouts (?text_readouts, a text_value label) go to Strings.
//
// Metrics without an envoy_ or istio_ prefix (an application's metrics merged in by Istio's
// metrics merging, or copies made by an OpenTelemetry pipeline such as the scoped_envoy_* ones of
// Kuma's test data) are ignored, and so are series that carry otel_scope_* labels, so that such
// copies are never counted twice. TYPE lines are recorded in Gauges.
//
// A line the parser rejects is dropped and the rest parsed again, up to a bound; dropped lines
// are counted in Skipped. The error wraps ErrNoStats when nothing could be read.
func ParseStatsPrometheus(r io.Reader, opts ...StatsOption) (*StatsSample, error) {
	text, err := readAllString(r)
	if err != nil {
		return nil, fmt.Errorf("reading stats: %w", err)
	}
	b := newSampleBuilder(StatsPrometheus, opts)
	b.s.Gauges = map[string]bool{}
	text = dropLongLines(text, b)
	if b.opts.families != nil {
		text = keepFamilies(text, b.opts.families)
	}
	families := parsePromLenient(text, b)
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	ignored := 0
	for _, name := range names {
		mf := families[name]
		switch {
		case strings.HasPrefix(name, "istio_"):
			b.addIstioFamily(mf)
		case strings.HasPrefix(name, "envoy_"):
			b.addEnvoyFamily(mf)
		default:
			ignored++
		}
	}
	if b.parsed == 0 && ignored == 0 && strings.TrimSpace(text) != "" {
		return nil, fmt.Errorf("%w: no Prometheus metrics in the input (%s)", ErrNoStats, strings.Join(b.s.Warnings, "; "))
	}
	return b.finish(), nil
}

// keepFamilies keeps the lines of the exposition text that belong to the named metric families:
// their samples (a histogram's _bucket, _sum and _count lines too) and their HELP and TYPE
// comments.
func keepFamilies(text string, names map[string]bool) string {
	var out strings.Builder
	for len(text) > 0 {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		name := line
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) < 3 || f[1] != "HELP" && f[1] != "TYPE" {
				continue
			}
			name = f[2]
		} else if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name = line[:i]
		}
		if !names[name] {
			// A histogram's or summary's samples carry its name with a suffix.
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
					name = base
					break
				}
			}
		}
		if names[name] {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// parsePromLenient parses the exposition text, dropping each line the parser rejects and
// starting again, so that one bad line does not lose the whole sample.
func parsePromLenient(text string, b *sampleBuilder) map[string]*dto.MetricFamily {
	if !strings.HasSuffix(text, "\n") {
		text += "\n" // the parser wants every line ended
	}
	lines := strings.SplitAfter(text, "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	number := make([]int, len(lines))
	for i := range number {
		number[i] = i + 1
	}
	for attempt := 0; ; attempt++ {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(strings.Join(lines, "")))
		if err == nil {
			return families
		}
		var pe expfmt.ParseError
		if !errors.As(err, &pe) || pe.Line < 1 || pe.Line > len(lines) || attempt == maxPromRetries {
			b.s.Warnings = append(b.s.Warnings, "stopped reading Prometheus text: "+err.Error())
			return families
		}
		b.skip("line", number[pe.Line-1], strings.TrimSuffix(lines[pe.Line-1], "\n"))
		lines = append(lines[:pe.Line-1], lines[pe.Line:]...)
		number = append(number[:pe.Line-1], number[pe.Line:]...)
	}
}

// promSeries is one series with its labels as a map (le excluded) and the value it carries.
type promSeries struct {
	labels map[string]string
	value  float64
	hist   *Histogram
}

// seriesOf returns the usable series of a family, dropping OpenTelemetry-scoped copies.
func seriesOf(mf *dto.MetricFamily) []promSeries {
	out := make([]promSeries, 0, len(mf.GetMetric()))
metrics:
	for _, m := range mf.GetMetric() {
		s := promSeries{labels: make(map[string]string, len(m.GetLabel()))}
		for _, lp := range m.GetLabel() {
			if strings.HasPrefix(lp.GetName(), "otel_scope_") {
				continue metrics
			}
			s.labels[lp.GetName()] = lp.GetValue()
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			s.value = m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			s.value = m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			s.hist = histogramFromProm(m.GetHistogram())
			s.value = s.hist.Count
		case dto.MetricType_SUMMARY: // Envoy's histogram_emit_mode SUMMARY
			s.hist = histogramFromSummary(m.GetSummary())
			s.value = s.hist.Count
		default:
			s.value = m.GetUntyped().GetValue()
		}
		out = append(out, s)
	}
	return out
}

func histogramFromProm(ph *dto.Histogram) *Histogram {
	h := &Histogram{Count: float64(ph.GetSampleCount()), Sum: ph.GetSampleSum()}
	if ph.SampleCountFloat != nil {
		h.Count = ph.GetSampleCountFloat()
	}
	for _, bk := range ph.GetBucket() {
		c := float64(bk.GetCumulativeCount())
		if bk.CumulativeCountFloat != nil {
			c = bk.GetCumulativeCountFloat()
		}
		h.Buckets = append(h.Buckets, Bucket{UpperBound: bk.GetUpperBound(), Count: c})
	}
	sort.SliceStable(h.Buckets, func(i, j int) bool { return h.Buckets[i].UpperBound < h.Buckets[j].UpperBound })
	return h
}

func histogramFromSummary(ps *dto.Summary) *Histogram {
	h := &Histogram{Count: float64(ps.GetSampleCount()), Sum: ps.GetSampleSum()}
	for _, q := range ps.GetQuantile() {
		h.Quantiles = append(h.Quantiles, Quantile{Q: q.GetQuantile(), Interval: math.NaN(), Cumulative: q.GetValue()})
	}
	sort.SliceStable(h.Quantiles, func(i, j int) bool { return h.Quantiles[i].Q < h.Quantiles[j].Q })
	return h
}

// The labels that name a cluster: Istio's tag, then Envoy's.
var promClusterLabels = [...]string{"cluster_name", "envoy_cluster_name"}

// addEnvoyFamily adds an envoy_* metric family, summing series over labels other than the
// cluster and the response code.
func (b *sampleBuilder) addEnvoyFamily(mf *dto.MetricFamily) {
	base := strings.TrimPrefix(mf.GetName(), "envoy_")
	typed, gauge := promType(mf.GetType())
	for _, s := range seriesOf(mf) {
		b.parsed++
		name := withConnectionManager(withResponseCode(base, s.labels), s.labels)
		if text, ok := s.labels["text_value"]; ok {
			b.s.Strings[name] = text
			continue
		}
		cluster := ""
		for _, l := range promClusterLabels {
			if c, ok := s.labels[l]; ok && c != "" {
				cluster = c
				break
			}
		}
		if rest, ok := strings.CutPrefix(name, "cluster_"); ok && cluster != "" && rest != "" {
			cs := b.cluster(cluster)
			if s.hist != nil {
				cs.Histograms[rest] = MergeHistograms(cs.Histograms[rest], s.hist)
			} else {
				cs.Values[rest] += s.value
			}
			if typed {
				b.s.Gauges[rest] = gauge
			}
			continue
		}
		if s.hist != nil {
			b.s.Histograms[name] = MergeHistograms(b.s.Histograms[name], s.hist)
		} else {
			b.s.Stats[name] += s.value
		}
		if typed {
			b.s.Gauges[name] = gauge
		}
	}
}

// promType says whether the TYPE settles counter versus gauge, and which.
func promType(t dto.MetricType) (typed, gauge bool) {
	switch t {
	case dto.MetricType_COUNTER:
		return true, false
	case dto.MetricType_GAUGE:
		return true, true
	}
	return false, false
}

// withResponseCode puts the response code tags back into the stat name, as the text format has
// it: upstream_rq + code 503 -> upstream_rq_503; upstream_rq_xx + class 5 (Envoy) or upstream_rq
// + class 5xx (Istio 1.5) -> upstream_rq_5xx.
func withResponseCode(name string, labels map[string]string) string {
	if code := firstLabel(labels, "envoy_response_code", "response_code"); code != "" {
		return name + "_" + code
	}
	if class := firstLabel(labels, "envoy_response_code_class", "response_code_class"); class != "" {
		if !strings.HasSuffix(class, "xx") {
			class += "xx"
		}
		return strings.TrimSuffix(name, "_xx") + "_" + class
	}
	return name
}

// withConnectionManager puts an HTTP connection manager's stat prefix back into the name of its
// stats: http_downstream_rq_time + prefix inbound_0.0.0.0_9080 ->
// http_inbound_0_0_0_0_9080_downstream_rq_time (the text format's
// http.inbound_0.0.0.0_9080.downstream_rq_time, canonical).
func withConnectionManager(name string, labels map[string]string) string {
	prefix := firstLabel(labels, "http_conn_manager_prefix", "envoy_http_conn_manager_prefix")
	rest, ok := strings.CutPrefix(name, "http_")
	if prefix == "" || !ok {
		return name
	}
	return "http_" + canonicalStatName(prefix) + "_" + rest
}

func firstLabel(labels map[string]string, names ...string) string {
	for _, n := range names {
		if v := labels[n]; v != "" {
			return v
		}
	}
	return ""
}

// MergeHistograms adds h to sum (nil for the first series): count, sum and, at every bound
// either has, the cumulative counts of both there.
func MergeHistograms(sum, h *Histogram) *Histogram {
	if sum == nil {
		return h
	}
	out := &Histogram{Count: sum.Count + h.Count, Sum: sum.Sum + h.Sum}
	i, j := 0, 0
	var ci, cj float64 // cumulative counts of sum and h at the current bound
	for i < len(sum.Buckets) || j < len(h.Buckets) {
		bound := math.Inf(+1)
		if i < len(sum.Buckets) {
			bound = sum.Buckets[i].UpperBound
		}
		if j < len(h.Buckets) && h.Buckets[j].UpperBound < bound {
			bound = h.Buckets[j].UpperBound
		}
		if math.IsNaN(bound) {
			break // not from a parser; never loop on it
		}
		for ; i < len(sum.Buckets) && sum.Buckets[i].UpperBound == bound; i++ {
			ci = sum.Buckets[i].Count
		}
		for ; j < len(h.Buckets) && h.Buckets[j].UpperBound == bound; j++ {
			cj = h.Buckets[j].Count
		}
		out.Buckets = append(out.Buckets, Bucket{UpperBound: bound, Count: ci + cj})
	}
	return out
}

// addIstioFamily keeps every series of an istio_* metric with all its labels.
func (b *sampleBuilder) addIstioFamily(mf *dto.MetricFamily) {
	for _, s := range seriesOf(mf) {
		b.parsed++
		b.s.Istio = append(b.s.Istio, IstioSeries{Metric: mf.GetName(), Labels: s.labels, Value: s.value, Histogram: s.hist})
	}
}
