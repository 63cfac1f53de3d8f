package envoyadmin

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// fuzzSeedLimit keeps seeds from the multi-megabyte captures small, cut at line ends: the fuzzer
// mutates and minimises small inputs far faster.
const fuzzSeedLimit = 4 << 10

// seedsFrom returns a capture as one seed, or a big one's head and tail (Envoy lists histograms
// last, so the tail holds them).
func seedsFrom(data []byte) [][]byte {
	if len(data) <= fuzzSeedLimit {
		return [][]byte{data}
	}
	head := data[:fuzzSeedLimit]
	if i := bytes.LastIndexByte(head, '\n'); i > 0 {
		head = head[:i+1]
	}
	tail := data[len(data)-fuzzSeedLimit:]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	return [][]byte{head, tail}
}

func addCaptureSeeds(f *testing.F, endpoint string) [][]byte {
	var seeds [][]byte
	for _, path := range captures.Files(f, endpoint) {
		for _, seed := range seedsFrom(captures.Read(f, filepath.Join(endpoint, filepath.Base(path)))) {
			captures.Seed(f, seed)
			seeds = append(seeds, seed)
		}
	}
	return seeds
}

// exercise uses every histogram of a parsed sample the way rules do; none may panic.
func exercise(t *testing.T, s *StatsSample, err error) {
	if err != nil {
		if s != nil {
			t.Fatalf("sample and error both returned: %v", err)
		}
		return
	}
	if s == nil {
		t.Fatal("nil sample without error")
	}
	use := func(h *Histogram) {
		for _, q := range []float64{0, 0.5, 0.99, 1} {
			h.Quantile(q)
		}
		h.Sub(h).Quantile(0.9)
	}
	for _, h := range s.Histograms {
		use(h)
	}
	for name, c := range s.Clusters {
		if c == nil || c.Name.Raw != name {
			t.Fatalf("cluster %q keyed wrongly: %+v", name, c)
		}
		for _, h := range c.Histograms {
			use(h)
		}
	}
	for _, is := range s.Istio {
		use(is.Histogram)
	}
	NewStatsInterval(s, s, 1).Cluster("x", "upstream_rq_total")
}

func FuzzParseStatsText(f *testing.F) {
	addCaptureSeeds(f, "stats_text")
	f.Add([]byte("cluster.a.upstream_rq_time:\n  totals=1,0.5:2, 3,1:1\n  summary=P0(1,1) P100(2,2)\nx: B1(0,1) B2(1,0)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStatsText(bytes.NewReader(data))
		exercise(t, s, err)
	})
}

func FuzzParseStatsJSON(f *testing.F) {
	for _, seed := range addCaptureSeeds(f, "stats_text") {
		f.Add(envoyJSONFromText(f, string(seed)))
	}
	f.Add([]byte(envoyDocJSON))
	f.Add([]byte(`{"stats":[{"histograms":[{"name":"h","buckets":[{"upper_bound":1,"interval":0,"cumulative":1}]}]},` +
		`{"histograms":{"supported_percentiles":[0,100],"details":[{"name":"d","totals":[{"lower_bound":1,"width":1,"count":2}],"percentiles":[{"cumulative":1,"interval":null}]}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStatsJSON(bytes.NewReader(data))
		exercise(t, s, err)
	})
}

func FuzzParseStatsPrometheus(f *testing.F) {
	addCaptureSeeds(f, "stats_prometheus")
	f.Add([]byte(promSample))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStatsPrometheus(bytes.NewReader(data))
		exercise(t, s, err)
		// The families a capture and the configure commands pick out: what they keep parses too.
		some, err := ParseStatsPrometheus(bytes.NewReader(data), WithPrometheusFamilies("istio_requests_total", "istio_request_duration_milliseconds", "envoy_cluster_upstream_rq_total"))
		exercise(t, some, err)
		iv := NewStatsInterval(some, some, time.Second)
		if h := iv.IstioHistogram("istio_request_duration_milliseconds", nil); h != nil && h.Count != 0 {
			t.Errorf("a sample against itself has %v observations", h.Count)
		}
	})
}

func FuzzRedactTokens(f *testing.F) {
	addCaptureSeeds(f, "access_log")
	f.Add([]byte(`"GET / HTTP/1.1" 200 - "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln" "-"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := RedactTokens(data)
		if jwt.Match(out) {
			t.Errorf("a token is left in %q", out)
		}
		if json.Valid(data) && !json.Valid(out) {
			t.Errorf("JSON stopped being JSON: %q", out)
		}
	})
}
