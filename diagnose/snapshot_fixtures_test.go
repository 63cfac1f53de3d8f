package diagnose

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// Fixtures shared by the tests of the mTLS, certificate, config, latency, stats, sidecar and
// application-error rules and of Explain. Names start with fx so they do not collide with the
// other rules' test helpers.

// fxNow is the capture time of the synthetic snapshots.
var fxNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

// fxIstioBounds are Istio's and Envoy's default Prometheus histogram bounds, in ms.
var fxIstioBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// fxHist builds a cumulative bucket histogram holding the values.
func fxHist(values ...float64) *envoyadmin.Histogram {
	h := &envoyadmin.Histogram{}
	for _, b := range fxIstioBounds {
		n := 0.0
		for _, v := range values {
			if v <= b {
				n++
			}
		}
		h.Buckets = append(h.Buckets, envoyadmin.Bucket{UpperBound: b, Count: n})
	}
	for _, v := range values {
		h.Count++
		h.Sum += v
	}
	return h
}

// fxRepeat returns v n times.
func fxRepeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// fxValues is a latency sample: n values, the last tail of them at slow ms, the rest at fast ms.
func fxValues(n, tail int, fast, slow float64) []float64 {
	return append(fxRepeat(fast, n-tail), fxRepeat(slow, tail)...)
}

// fxCluster is one cluster's stats.
type fxCluster struct {
	values map[string]float64
	hists  map[string]*envoyadmin.Histogram
}

// fxSample builds a Prometheus-format stats sample.
func fxSample(stats map[string]float64, clusters map[string]fxCluster) *envoyadmin.StatsSample {
	ss := &envoyadmin.StatsSample{Format: envoyadmin.StatsPrometheus, Stats: stats, Clusters: map[string]*envoyadmin.ClusterStats{}, Histograms: map[string]*envoyadmin.Histogram{}}
	if ss.Stats == nil {
		ss.Stats = map[string]float64{}
	}
	for name, c := range clusters {
		ss.Clusters[name] = &envoyadmin.ClusterStats{Name: envoyadmin.ParseClusterName(name), Values: c.values, Histograms: c.hists}
	}
	return ss
}

// fxIstio is one istio_* series.
func fxIstio(metric string, value float64, labels ...string) envoyadmin.IstioSeries {
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	return envoyadmin.IstioSeries{Metric: metric, Labels: l, Value: value}
}

// fxOne is a snapshot with one stats sample taken an hour after the proxy started.
func fxOne(ss *envoyadmin.StatsSample) *Snapshot {
	return &Snapshot{Stats: ss, StatsFile: "stats.prom", Now: fxNow, ServerInfo: &envoyadmin.ServerInfo{Uptime: time.Hour}}
}

// fxTwo is a snapshot with two samples taken 30s apart.
func fxTwo(a, b *envoyadmin.StatsSample) *Snapshot {
	return &Snapshot{Stats: a, Stats2: b, StatsFile: "stats.prom", Stats2File: "stats-2.prom", Window: 30 * time.Second, Now: fxNow, ServerInfo: &envoyadmin.ServerInfo{Uptime: time.Hour}}
}

// fxLog parses access-log lines.
func fxLog(t *testing.T, lines ...string) []envoyadmin.AccessLogEntry {
	t.Helper()
	entries, errs, err := envoyadmin.ParseAccessLog(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil || len(errs) > 0 {
		t.Fatalf("access log fixture: %v %v", err, errs)
	}
	return entries
}

// fxIstioLine is an Istio 1.9+ access-log line.
func fxIstioLine(code int, flags, details, tf, cluster, host string, durMs, upstreamMs int) string {
	ust := "-"
	if upstreamMs >= 0 {
		ust = strconv.Itoa(upstreamMs)
	}
	return `[2026-01-15T11:59:00.000Z] "GET /api/items HTTP/1.1" ` + strconv.Itoa(code) + " " + flags + " " + details + ` - "` + tf + `" 0 120 ` + strconv.Itoa(durMs) + " " + ust +
		` "-" "curl/8" "id-1" "svc" "` + host + `" ` + cluster + " 10.0.0.1:40000 10.0.0.2:8080 10.0.0.3:50000 - default"
}

// fxCodes lists the codes of findings, sorted.
func fxCodes(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code)
	}
	sort.Strings(out)
	return out
}

// fxCheck enforces the quality bar on a rule's finding: a one-line title, evidence with
// sources, an explanation, and a fix with a command or YAML.
func fxCheck(t *testing.T, f Finding, wantCommandOrYAML bool) {
	t.Helper()
	if f.Title == "" || strings.Contains(f.Title, "\n") {
		t.Errorf("%s: title %q is not one line", f.Code, f.Title)
	}
	if len(f.Evidence) == 0 {
		t.Errorf("%s: no evidence", f.Code)
	}
	for _, e := range f.Evidence {
		if e.Source == "" || e.Label == "" {
			t.Errorf("%s: evidence %+v lacks a label or source", f.Code, e)
		}
	}
	if f.Explanation == "" || f.Fix.Summary == "" {
		t.Errorf("%s: no explanation or fix summary", f.Code)
	}
	if wantCommandOrYAML && f.Fix.Command == "" && f.Fix.YAML == "" {
		t.Errorf("%s: fix has neither command nor YAML", f.Code)
	}
	if _, ok := catalogByCode[Code(f.Code)]; !ok {
		t.Errorf("code %s is not in the catalog", f.Code)
	}
}

// fxRun runs a rule the way Diagnose does and checks every finding.
func fxRun(t *testing.T, r Rule, s *Snapshot) []Finding {
	t.Helper()
	rep := Diagnose(s, []Rule{r})
	if len(rep.Warnings) > len(s.Warnings) {
		t.Fatalf("rule failed: %v", rep.Warnings)
	}
	for _, f := range rep.Findings {
		fxCheck(t, f, true)
	}
	return rep.Findings
}

// fxCaptureStats parses a captured stats file.
func fxCaptureStats(t *testing.T, rel string) *envoyadmin.StatsSample {
	t.Helper()
	b := captures.Read(t, rel)
	var ss *envoyadmin.StatsSample
	var err error
	switch {
	case strings.HasSuffix(rel, ".prom"):
		ss, err = envoyadmin.ParseStatsPrometheus(bytes.NewReader(b))
	default:
		ss, err = envoyadmin.ParseStatsText(bytes.NewReader(b))
	}
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return ss
}
