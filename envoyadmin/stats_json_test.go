package envoyadmin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// envoyJSONFromText rewrites a /stats text dump as Envoy's /stats?format=json would render the
// same stats (no JSON capture exists): numbers and strings as {"name","value"} entries, and the
// quantile summaries, "No recorded values" as all-null, in one trailing histograms block.
func envoyJSONFromText(t testing.TB, text string) []byte {
	t.Helper()
	type qv struct {
		Interval   *float64 `json:"interval"`
		Cumulative *float64 `json:"cumulative"`
	}
	type cq struct {
		Name   string `json:"name"`
		Values []qv   `json:"values"`
	}
	var supported []float64
	var stats []any
	var hists []cq
	num := func(s string) *float64 {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("bad number %q", s)
		}
		if math.IsNaN(f) {
			return nil
		}
		return &f
	}
	var pendingEmpty []string // histograms never recorded, filled once supported is known
	for _, line := range strings.Split(text, "\n") {
		name, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(val, `"`):
			stats = append(stats, map[string]any{"name": name, "value": strings.Trim(val, `"`)})
		case val == "No recorded values":
			pendingEmpty = append(pendingEmpty, name)
		case strings.HasPrefix(val, "P"):
			h := cq{Name: name}
			var qs []float64
			for _, tok := range strings.Fields(val) {
				label, pair, _ := strings.Cut(tok[1:], "(")
				a, b, _ := strings.Cut(strings.TrimSuffix(pair, ")"), ",")
				qs = append(qs, *num(label))
				h.Values = append(h.Values, qv{Interval: num(a), Cumulative: num(b)})
			}
			supported = qs
			hists = append(hists, h)
		default:
			f, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			stats = append(stats, map[string]any{"name": name, "value": f})
		}
	}
	for _, name := range pendingEmpty {
		hists = append(hists, cq{Name: name, Values: make([]qv, len(supported))})
	}
	if len(hists) > 0 {
		stats = append(stats, map[string]any{"histograms": map[string]any{
			"supported_quantiles": supported, "computed_quantiles": hists,
		}})
	}
	out, err := json.Marshal(map[string]any{"stats": stats})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestParseStatsJSONMatchesText parses every text capture both as text and converted to JSON,
// and requires the same sample.
func TestParseStatsJSONMatchesText(t *testing.T) {
	for _, path := range captures.Files(t, "stats_text") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			text := captures.Read(t, filepath.Join("stats_text", filepath.Base(path)))
			want, err := ParseStatsText(bytes.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStatsJSON(bytes.NewReader(envoyJSONFromText(t, string(text))))
			if err != nil {
				t.Fatal(err)
			}
			if got.Format != StatsJSON || got.Skipped != 0 {
				t.Errorf("Format %q, Skipped %d (%v)", got.Format, got.Skipped, got.Warnings)
			}
			if a, b := sampleDigest(got), sampleDigest(want); a != b {
				t.Errorf("JSON and text samples differ:\n json: %.600s\n text: %.600s", a, b)
			}
		})
	}
}

// sampleDigest renders a sample's stats deterministically, NaN included, for comparison.
func sampleDigest(s *StatsSample) string {
	var b strings.Builder
	for _, k := range sortedMapKeys(s.Stats) {
		fmt.Fprintf(&b, "S %s=%v\n", k, s.Stats[k])
	}
	for _, k := range sortedMapKeys(s.Strings) {
		fmt.Fprintf(&b, "T %s=%q\n", k, s.Strings[k])
	}
	for _, k := range sortedMapKeys(s.Histograms) {
		fmt.Fprintf(&b, "H %s=%+v\n", k, *s.Histograms[k])
	}
	for _, c := range sortedMapKeys(s.Clusters) {
		cs := s.Clusters[c]
		fmt.Fprintf(&b, "C %+v\n", cs.Name)
		for _, k := range sortedMapKeys(cs.Values) {
			fmt.Fprintf(&b, "  %s=%v\n", k, cs.Values[k])
		}
		for _, k := range sortedMapKeys(cs.Histograms) {
			fmt.Fprintf(&b, "  H %s=%+v\n", k, *cs.Histograms[k])
		}
	}
	return b.String()
}

// envoyDocJSON follows the shape of the example in Envoy's admin documentation.
const envoyDocJSON = `{"stats":[
 {"name":"cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_pending_overflow","value":21},
 {"name":"cluster.outbound|9080||reviews.default.svc.cluster.local.circuit_breakers.default.rq_pending_open","value":1},
 {"name":"cluster_manager.cds.version_text","value":"2024-05-01T10:00:00Z/42"},
 {"name":"server.uptime","value":3600},
 {"name":"bogus"},
 {"histograms":{"supported_quantiles":[0,25,50,75,90,95,99,99.5,99.9,100],
  "computed_quantiles":[
   {"name":"cluster.external_auth_cluster.upstream_cx_length_ms","values":[
    {"interval":0,"cumulative":0},{"interval":0,"cumulative":0},{"interval":1.0435787,"cumulative":1.0435787},
    {"interval":1.0941565,"cumulative":1.0941565},{"interval":2.0860023,"cumulative":2.0860023},
    {"interval":3.0665233,"cumulative":3.0665233},{"interval":6.046609,"cumulative":6.046609},
    {"interval":null,"cumulative":100},{"interval":229.57333,"cumulative":229.57333},{"interval":260,"cumulative":260}]},
   {"name":"http.admin.downstream_rq_time","values":[
    {"interval":null,"cumulative":null},{"interval":null,"cumulative":null},{"interval":null,"cumulative":null},
    {"interval":null,"cumulative":null},{"interval":null,"cumulative":null},{"interval":null,"cumulative":null},
    {"interval":null,"cumulative":null},{"interval":null,"cumulative":null},{"interval":null,"cumulative":null},
    {"interval":null,"cumulative":null}]}]}}]}`

func TestParseStatsJSONDocShape(t *testing.T) {
	s, err := ParseStatsJSON(strings.NewReader(envoyDocJSON))
	if err != nil {
		t.Fatal(err)
	}
	reviews := "outbound|9080||reviews.default.svc.cluster.local"
	wantClusterValues(t, s, reviews, map[string]float64{
		"upstream_rq_pending_overflow": 21, "circuit_breakers_default_rq_pending_open": 1,
	})
	wantStats(t, s, map[string]float64{"server_uptime": 3600})
	if s.Strings["cluster_manager_cds_version_text"] != "2024-05-01T10:00:00Z/42" {
		t.Errorf("Strings = %v", s.Strings)
	}
	h := s.Clusters["external_auth_cluster"].Histograms["upstream_cx_length_ms"]
	if h == nil || len(h.Quantiles) != 10 || h.Quantiles[9].Q != 1 || h.Quantiles[7].Q != 0.995 ||
		!math.IsNaN(h.Quantiles[7].Interval) || h.Quantiles[7].Cumulative != 100 {
		t.Fatalf("upstream_cx_length_ms = %+v", h)
	}
	// Halfway between P90 (2.0860023) and P95 (3.0665233).
	if got, want := h.Quantile(0.925), (2.0860023+3.0665233)/2; math.Abs(got-want) > 1e-12 {
		t.Errorf("Quantile(0.925) = %v, want %v", got, want)
	}
	if h := s.Histograms["http_admin_downstream_rq_time"]; h == nil || !h.NoValues || !math.IsNaN(h.Quantile(0.5)) {
		t.Errorf("all-null histogram = %+v, want NoValues", h)
	}
	if s.Skipped != 1 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "stats entry 5") {
		t.Errorf("Skipped %d, Warnings %q; want entry 5 skipped", s.Skipped, s.Warnings)
	}
}

func TestParseStatsJSONBuckets(t *testing.T) {
	// histogram_buckets=cumulative, =disjoint and =detailed, as Envoy's docs and renderer show.
	in := `{"stats":[{"name":"a.b","value":1},{"histograms":[
	  {"name":"cluster.xds-grpc.upstream_rq_time","buckets":[
	    {"upper_bound":1,"interval":0,"cumulative":0},{"upper_bound":2,"interval":0,"cumulative":1},
	    {"upper_bound":3,"interval":1,"cumulative":3},{"upper_bound":4,"interval":1,"cumulative":3}]},
	  {"name":"cluster.xds-grpc.upstream_cx_connect_ms","buckets":[
	    {"upper_bound":1,"interval":0,"cumulative":0},{"upper_bound":2,"interval":0,"cumulative":1},
	    {"upper_bound":3,"interval":1,"cumulative":2},{"upper_bound":4,"interval":0,"cumulative":0}]}]}]}`
	s, err := ParseStatsJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	cum := s.Clusters["xds-grpc"].Histograms["upstream_rq_time"]
	if cum == nil || cum.Count != 3 || cum.Buckets[2].Count != 3 {
		t.Errorf("cumulative = %+v", cum)
	}
	dis := s.Clusters["xds-grpc"].Histograms["upstream_cx_connect_ms"]
	if dis == nil || dis.Count != 3 || dis.Buckets[2].Count != 3 || dis.Buckets[3].Count != 3 {
		t.Errorf("disjoint not made cumulative: %+v", dis)
	}
	// 2 of 3 observations lie at or below 2.5 by interpolation in (2,3].
	if got := cum.Quantile(0.5); got != 2.25 {
		t.Errorf("Quantile(0.5) = %v, want 2.25", got)
	}

	detailed := `{"stats":[{"histograms":{"supported_percentiles":[0,25,50,75,90,95,99,99.5,99.9,100],
	  "details":[{"name":"cluster.xds-grpc.upstream_rq_time",
	    "totals":[{"lower_bound":200,"width":10,"count":1},{"lower_bound":100,"width":10,"count":3}],
	    "intervals":[{"lower_bound":200,"width":10,"count":1}],
	    "percentiles":[{"cumulative":100,"interval":200},{"cumulative":102.5,"interval":200},
	      {"cumulative":105,"interval":200},{"cumulative":107.5,"interval":200},{"cumulative":205,"interval":205},
	      {"cumulative":207,"interval":207},{"cumulative":209,"interval":209},{"cumulative":209.5,"interval":209.5},
	      {"cumulative":209.9,"interval":209.9},{"cumulative":210,"interval":210}]}]}}]}`
	s, err = ParseStatsJSON(strings.NewReader(detailed))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Clusters["xds-grpc"].Histograms["upstream_rq_time"]
	want := []Bucket{{100, 0}, {110, 3}, {200, 3}, {210, 4}, {math.Inf(1), 4}}
	if h == nil || h.Count != 4 || fmt.Sprint(h.Buckets) != fmt.Sprint(want) || len(h.Quantiles) != 10 {
		t.Fatalf("detailed = %+v, want buckets %v", h, want)
	}
	if got := h.Quantile(0.5); got != 100+10*(2.0/3) {
		t.Errorf("Quantile(0.5) = %v", got)
	}
}

func TestParseStatsJSONErrors(t *testing.T) {
	for _, in := range []string{`{"stats":`, `[1,2]`, `{"other":[]}`, "stats: 1\n"} {
		if _, err := ParseStatsJSON(strings.NewReader(in)); !errors.Is(err, ErrNoStats) {
			t.Errorf("ParseStatsJSON(%q) error = %v, want ErrNoStats", in, err)
		}
	}
	for _, in := range []string{"", `{"stats":[]}`} {
		if s, err := ParseStatsJSON(strings.NewReader(in)); err != nil || len(s.Stats) != 0 {
			t.Errorf("ParseStatsJSON(%q) = %v, %v; want an empty sample", in, s, err)
		}
	}
}
