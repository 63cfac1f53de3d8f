package envoyadmin

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Envoy's counters and gauges are 64-bit integers and its histograms count observations under
// ascending, non-negative bounds. A value outside that did not come from Envoy: NaN or an
// infinity, a count over 2^64, a negative counter, a histogram whose bounds are negative or not
// ascending or whose cumulative counts fall. checkNumbers takes each such value out of the
// sample, counts it in Skipped and quotes the first few in Warnings, so the rest of the
// diagnosis goes on and no report carries a value JSON cannot encode.

// maxStatValue is above any 64-bit counter (2^64).
const maxStatValue = 18446744073709551616.0

func statValueOK(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < maxStatValue
}

// checkNumbers removes the values no Envoy writes; see above.
func (s *StatsSample) checkNumbers() {
	drop := func(what string, v float64) {
		s.Skipped++
		if s.Skipped <= maxSkipWarnings {
			s.Warnings = append(s.Warnings, fmt.Sprintf("%s: value %v is not one Envoy writes (a 64-bit count), left out", clipForError(what, 160), v))
		}
	}
	dropHist := func(what, why string) {
		s.Skipped++
		if s.Skipped <= maxSkipWarnings {
			s.Warnings = append(s.Warnings, fmt.Sprintf("histogram %s: %s, left out", clipForError(what, 160), why))
		}
	}
	for _, k := range sortedMapKeys(s.Stats) {
		if v := s.Stats[k]; !statValueOK(v) {
			drop(k, v)
			delete(s.Stats, k)
		}
	}
	for _, k := range sortedMapKeys(s.Histograms) {
		if why := histogramBroken(s.Histograms[k]); why != "" {
			dropHist(k, why)
			delete(s.Histograms, k)
		}
	}
	for _, c := range sortedMapKeys(s.Clusters) {
		cs := s.Clusters[c]
		for _, k := range sortedMapKeys(cs.Values) {
			if v := cs.Values[k]; !statValueOK(v) {
				drop(c+" "+k, v)
				delete(cs.Values, k)
			}
		}
		for _, k := range sortedMapKeys(cs.Histograms) {
			if why := histogramBroken(cs.Histograms[k]); why != "" {
				dropHist(c+" "+k, why)
				delete(cs.Histograms, k)
			}
		}
	}
	kept := s.Istio[:0]
	for _, is := range s.Istio {
		switch {
		case !statValueOK(is.Value):
			drop(is.Metric, is.Value)
		case is.Histogram != nil && histogramBroken(is.Histogram) != "":
			dropHist(is.Metric, histogramBroken(is.Histogram))
		default:
			kept = append(kept, is)
		}
	}
	s.Istio = kept
}

// histogramBroken says why a histogram cannot be Envoy's, "" when it can.
func histogramBroken(h *Histogram) string {
	if h == nil {
		return ""
	}
	if !statValueOK(h.Count) || h.Count < 0 || !statValueOK(h.Sum) {
		return fmt.Sprintf("count %v or sum %v is not a number Envoy writes", h.Count, h.Sum)
	}
	prev := Bucket{UpperBound: math.Inf(-1)}
	for i, b := range h.Buckets {
		switch {
		case math.IsNaN(b.UpperBound) || b.UpperBound < 0:
			return fmt.Sprintf("bound %v is negative or not a number", b.UpperBound)
		case i > 0 && b.UpperBound <= prev.UpperBound:
			return fmt.Sprintf("bounds %v and %v do not ascend", prev.UpperBound, b.UpperBound)
		case !statValueOK(b.Count) || b.Count < 0:
			return fmt.Sprintf("count %v under bound %v is not a count", b.Count, b.UpperBound)
		case i > 0 && b.Count < prev.Count:
			return fmt.Sprintf("cumulative counts fall from %v to %v at bound %v", prev.Count, b.Count, b.UpperBound)
		}
		prev = b
	}
	return ""
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maxStatLine bounds one line of /stats or /stats/prometheus: Envoy's longest stat lines (long
// cluster names, many Istio labels) are a few kilobytes. A longer line is skipped before it is
// parsed, so that one 200 MB label costs its reading and nothing more.
const maxStatLine = 64 << 10

// dropLongLines removes the lines over maxStatLine, counting each as skipped.
func dropLongLines(text string, b *sampleBuilder) string {
	if len(text) <= maxStatLine {
		return text
	}
	var out strings.Builder
	n := 0
	for rest := text; rest != ""; {
		line := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = ""
		}
		n++
		if len(line) > maxStatLine {
			b.skip("line", n, fmt.Sprintf("%d bytes, longer than any stat (%d KiB)", len(line), maxStatLine>>10))
			out.WriteString("\n") // keep the line numbers of what follows
			continue
		}
		out.WriteString(line)
	}
	return out.String()
}
