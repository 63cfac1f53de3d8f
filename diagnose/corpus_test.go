package diagnose

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// The corpus tests run the whole engine (LoadDir, every rule, ranking) on evidence folders built
// from the real admin outputs in ../shared/captures, and check facts read off those files by
// hand. Each folder holds a capture under the name LoadDir expects for its endpoint.

// corpusFolder writes captures into a new folder: evidence file name -> capture path relative to
// the captures folder.
func corpusFolder(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, rel := range files {
		if err := os.WriteFile(filepath.Join(dir, name), captures.Read(t, rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// corpusDiagnose loads a folder at a fixed time and runs every rule. A load warning, or a rule
// that panicked on the evidence (the engine turns the panic into a report warning), fails.
func corpusDiagnose(t *testing.T, files map[string]string, now time.Time) (*Snapshot, *Report) {
	t.Helper()
	s, err := LoadDir(corpusFolder(t, files), now)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	for _, w := range s.Warnings {
		t.Errorf("load warning: %s", w)
	}
	r := Diagnose(s, Rules())
	for _, w := range r.Warnings[len(s.Warnings):] {
		t.Errorf("report warning (a rule failed on real evidence): %s", w)
	}
	return s, r
}

var corpusNow = time.Date(2023, 5, 15, 12, 0, 0, 0, time.UTC)

// findingFor returns the first finding with the code about the subject, or fails.
func findingFor(t *testing.T, r *Report, code Code, subject string) Finding {
	t.Helper()
	for _, f := range r.Findings {
		if f.Code == string(code) && f.Subject.Name == subject {
			return f
		}
	}
	t.Fatalf("no %s finding about %q; findings:\n%s", code, subject, findingList(r))
	return Finding{}
}

// evidenceWith returns the evidence whose source contains the text, or fails.
func evidenceWith(t *testing.T, f Finding, source string) Evidence {
	t.Helper()
	for _, e := range f.Evidence {
		if strings.Contains(e.Source, source) {
			return e
		}
	}
	t.Fatalf("%s about %s has no evidence from %q: %+v", f.Code, f.Subject.Name, source, f.Evidence)
	return Evidence{}
}

func noErrorFinding(t *testing.T, r *Report) {
	t.Helper()
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			t.Errorf("unexpected error finding %s %s: %s", f.Code, f.Subject, f.Title)
		}
	}
}

// istio.io's circuit-breaking task: `pilot-agent request GET stats | grep pending` after fortio
// overloaded httpbin with http1MaxPendingRequests 1.
func TestCorpusIstioIOPendingOverflow(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileStatsText: "stats_text/istio-io-circuit-breaking-pending-overflow.txt"}, corpusNow)
	const c = "outbound|8000||httpbin.default.svc.cluster.local"
	if got := s.Stats.Clusters[c].Values["upstream_rq_pending_total"]; got != 29 {
		t.Errorf("upstream_rq_pending_total = %v, want 29", got)
	}
	f := findingFor(t, r, CodePendingOverflow, c)
	if f.Category != CategoryCircuitBreaker || f.Severity != SeverityError {
		t.Errorf("finding %s is %s/%s, want circuit-breaker/error", f.Code, f.Category, f.Severity)
	}
	if e := evidenceWith(t, f, "upstream_rq_pending_overflow"); e.Value != 21 || e.Unit != UnitCount {
		t.Errorf("overflow evidence = %v %s, want 21 count (one sample, uptime unknown)", e.Value, e.Unit)
	}
	if r.Findings[0].Code != string(CodePendingOverflow) {
		t.Errorf("top finding = %s, want %s", r.Findings[0].Code, CodePendingOverflow)
	}
}

// envoyproxy/examples' locality load-balancing sandbox: `grep health_flags` of /clusters with
// four of seven backends failing active health checks.
func TestCorpusClustersTextHealthFlags(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileClustersTxt: "clusters_text/envoy-examples-locality-lb-health_flags.txt"}, corpusNow)
	u := s.Upstream("backend")
	if u == nil || len(u.Hosts) != 7 {
		t.Fatalf("backend hosts = %+v, want 7", u)
	}
	failing := 0
	for _, h := range u.Hosts {
		if len(h.HealthFlags) == 1 && h.HealthFlags[0] == "failed_active_hc" {
			failing++
		}
	}
	if failing != 4 {
		t.Errorf("hosts with failed_active_hc = %d, want 4", failing)
	}
	f := findingFor(t, r, CodeHostsFailingHealth, "backend")
	if !strings.Contains(f.Title, "4 of 7") {
		t.Errorf("title %q does not say 4 of 7", f.Title)
	}
	var total, healthy float64 = -1, -1
	for _, e := range f.Evidence {
		switch e.Label {
		case "hosts now":
			total = e.Value
		case "healthy hosts now":
			healthy = e.Value
		}
	}
	if total != 7 || healthy != 3 {
		t.Errorf("evidence hosts now = %v, healthy = %v; want 7 and 3", total, healthy)
	}
	for _, h := range []string{"172.28.0.4:8080", "172.28.0.2:8080", "172.28.0.5:8080", "172.28.0.6:8080"} {
		if !strings.Contains(evidenceTexts(f), h) {
			t.Errorf("evidence does not name failing host %s", h)
		}
	}
}

func evidenceTexts(f Finding) string {
	var b strings.Builder
	for _, e := range f.Evidence {
		b.WriteString(e.Text + " ")
	}
	return b.String()
}

// istio/istio's echo test fixture (2020): a large sidecar dump with v2 resources inside v3
// wrappers.
func TestCorpusEcho2020ConfigDump(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileConfigDump: "config_dump/istio-echo-sidecar-2020-v3-mixed.json"}, corpusNow)
	if got := len(s.Config.Clusters); got != 87 {
		t.Errorf("clusters = %d, want 87", got)
	}
	if got := len(s.Config.Listeners); got != 53 {
		t.Errorf("listeners = %d, want 53", got)
	}
	if s.Config.Proxy.IstioVersion != "1.0-dev" || s.Config.Proxy.PodName != "a-6bb6dbdcc5-z58cx" {
		t.Errorf("proxy = %+v, want ISTIO_VERSION 1.0-dev, POD_NAME a-6bb6dbdcc5-z58cx", s.Config.Proxy)
	}
	// Its bootstrap has Istio's old default inclusions only, so per-upstream stats are off.
	f := findingFor(t, r, CodeClusterStatsDisabled, "apps-1-99281/a-6bb6dbdcc5-z58cx")
	if f.Severity != SeverityInfo {
		t.Errorf("%s severity = %s, want info", f.Code, f.Severity)
	}
	noErrorFinding(t, r)
}

// Lines users pasted in istio/istio#45802, #29109 and envoyproxy/envoy#9242: one 503 UC
// connection_termination to health-api, the rest 500 and TCP passthrough and a custom format.
func TestCorpusGitHubIssuesAccessLog(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileAccessLog: "access_log/github-issues-istio-error-flag-lines.log"}, corpusNow)
	if got := len(s.AccessLog); got != 5 {
		t.Errorf("access-log entries = %d, want 5", got)
	}
	const c = "outbound|80||health-api.production.svc.cluster.local"
	f := findingFor(t, r, CodeKeepAliveRace, c)
	if f.Category != CategoryUpstreamReset {
		t.Errorf("category = %s, want upstream-reset", f.Category)
	}
	if e := evidenceWith(t, f, "access.log"); e.Value != 1 {
		t.Errorf("UC lines = %v, want 1", e.Value)
	}
}

// kiali's ambient waypoint log: 16 requests, every one 200 via_upstream with no flag.
func TestCorpusKialiWaypointLogHealthy(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileAccessLog: "access_log/kiali-istio-waypoint-access.log"}, corpusNow)
	if got := len(s.AccessLog); got != 16 {
		t.Errorf("access-log entries = %d, want 16", got)
	}
	for _, e := range s.AccessLog {
		if e.Code != 200 || len(e.Flags) != 0 || e.Details != "via_upstream" {
			t.Errorf("line %d: %d %v %q, want 200, no flag, via_upstream", e.Line, e.Code, e.Flags, e.Details)
		}
	}
	noErrorFinding(t, r)
}

// Every real config dump loads whole: no section skipped and no rule failing on it.
func TestCorpusConfigDumpsLoad(t *testing.T) {
	want := map[string]int{ // clusters in each dump
		"consul-k8s-connect-sidecar.json":           5,
		"istio-1.21-sidecar-full-with-eds-sds.json": 3,
		"istio-echo-sidecar-2020-v3-mixed.json":     87,
		"istio-endpoints-config-dump.json":          0,
		"kuma-envoy-1.19-dataplane.json":            5,
		"osm-envoy-1.19-httpbin-sidecar.json":       3,
	}
	files := captures.Files(t, "config_dump")
	if len(files) != len(want) {
		t.Errorf("%d config dumps in the captures, %d expected: update this table", len(files), len(want))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			s, _ := corpusDiagnose(t, map[string]string{FileConfigDump: "config_dump/" + name}, corpusNow)
			if s.Config == nil {
				t.Fatal("no config read")
			}
			if n, ok := want[name]; ok && len(s.Config.Clusters) != n {
				t.Errorf("clusters = %d, want %d", len(s.Config.Clusters), n)
			}
		})
	}
	// The endpoints-only dump is all EDS: 37 cluster load assignments.
	s, _ := corpusDiagnose(t, map[string]string{FileConfigDump: "config_dump/istio-endpoints-config-dump.json"}, corpusNow)
	if got := len(s.Config.Endpoints); got != 37 {
		t.Errorf("istio-endpoints-config-dump.json endpoints = %d, want 37", got)
	}
}

// istioctl's Istio 1.21 dump, a waypoint's, in a folder without meta.json and read years after
// it was taken: its routes to encap and to an inbound-vip cluster the trimmed dump leaves out are
// not missing clusters, and its certificate is judged, and worded, against the current time.
func TestCorpusIstio121WaypointDumpWithoutCaptureTime(t *testing.T) {
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	s, r := corpusDiagnose(t, map[string]string{FileConfigDump: "config_dump/istio-1.21-sidecar-full-with-eds-sds.json"}, now)
	if s.NowSource != NowFromClock {
		t.Errorf("NowSource = %q", s.NowSource)
	}
	if len(r.Findings) != 1 || r.Findings[0].Code != string(CodeCertExpired) {
		t.Fatalf("findings:\n%s\nwant only %s", findingList(r), CodeCertExpired)
	}
	f := r.Findings[0]
	if !strings.Contains(f.Title, "has expired (judged against the current time; the capture time is unknown)") {
		t.Errorf("title %q", f.Title)
	}
	for _, e := range f.Evidence {
		if strings.Contains(e.Label, "before the capture") {
			t.Errorf("evidence %+v speaks of a capture time the folder does not have", e)
		}
	}
}

// The Istio SDS secrets (a waypoint's workload certificate, valid 2023-05-15T01:30:52Z to
// 2023-05-16T01:32:52Z, and the cluster.local root), from certs/ as /certs input and from the
// 1.21 config dump, judged at three capture times.
func TestCorpusCerts(t *testing.T) {
	const san = "spiffe://cluster.local/ns/ambient/sa/namespace-istio-waypoint"
	notAfter := time.Date(2023, 5, 16, 1, 32, 52, 0, time.UTC)
	sources := map[string]map[string]string{
		"certs.json":       {FileCerts: "certs/istio-secrets-config-dump-sds.json"},
		"config_dump.json": {FileConfigDump: "config_dump/istio-1.21-sidecar-full-with-eds-sds.json"},
	}
	for name, files := range sources {
		t.Run(name, func(t *testing.T) {
			s, r := corpusDiagnose(t, files, corpusNow)
			if len(s.Certs) != 3 {
				t.Fatalf("certs = %d, want 3 (the leaf and root of secret default, root of ROOTCA): %+v", len(s.Certs), s.Certs)
			}
			var leaf *envoyadmin.Cert
			for i, c := range s.Certs {
				if !c.CA && len(c.SubjectAltNames) == 1 && c.SubjectAltNames[0] == san {
					leaf = &s.Certs[i]
				}
			}
			if leaf == nil || leaf.Secret != "default" || !leaf.NotAfter.Equal(notAfter) || leaf.SerialNumber != "6fbee254c22900615cb1f74e3d2f1713" {
				t.Fatalf("workload certificate = %+v, want secret default, %s, NotAfter %s, serial 6fbee254...", leaf, san, notAfter)
			}
			for _, f := range r.Findings {
				if f.Category == CategoryCertExpiry {
					t.Errorf("at %s, 13.5h before expiry: %s %s %s", corpusNow, f.Code, f.Subject, f.Title)
				}
			}
			cases := []struct {
				at   time.Time
				code Code
			}{
				{notAfter.Add(-90 * time.Minute), CodeCertExpiringSoon}, // 6% of 24h left
				{notAfter.Add(3 * time.Hour), CodeCertExpired},
			}
			for _, tc := range cases {
				_, r := corpusDiagnose(t, files, tc.at)
				f := findingFor(t, r, tc.code, "default ("+san+")")
				if f.Category != CategoryCertExpiry {
					t.Errorf("at %s: category %s", tc.at, f.Category)
				}
			}
		})
	}
}

// Emissary's /stats (36k lines): histograms with and without values, text stats, and 17 LDS
// updates rejected.
func TestCorpusEmissaryStats(t *testing.T) {
	s, r := corpusDiagnose(t, map[string]string{FileStatsText: "stats_text/emissary-envoy-stats-with-histograms.txt"}, corpusNow)
	ss := s.Stats
	if ss.Skipped != 0 {
		t.Errorf("%d lines skipped: %v", ss.Skipped, ss.Warnings)
	}
	if got := ss.Stats["server_uptime"]; got != 21116 {
		t.Errorf("server_uptime = %v, want 21116", got)
	}
	if got := ss.Strings["cluster_manager_cds_version_text"]; got != "v13" {
		t.Errorf("cds version_text = %q, want v13", got)
	}
	const c = "cluster_127_0_0_1_8500_ambassador"
	cs := ss.Clusters[c]
	if cs == nil {
		t.Fatalf("no cluster %s", c)
	}
	if cs.Values["upstream_rq_total"] != 14 || cs.Values["upstream_cx_idle_timeout"] != 6 {
		t.Errorf("%s upstream_rq_total = %v, upstream_cx_idle_timeout = %v; want 14 and 6", c, cs.Values["upstream_rq_total"], cs.Values["upstream_cx_idle_timeout"])
	}
	h := cs.Histograms["upstream_rq_time"]
	if h == nil || len(h.Quantiles) != 10 {
		t.Fatalf("%s upstream_rq_time = %+v, want 10 quantiles", c, h)
	}
	p99 := h.Quantiles[6]
	if p99.Q != 0.99 || p99.Cumulative != 2.086 || !math.IsNaN(p99.Interval) {
		t.Errorf("P99 = %+v, want q 0.99, cumulative 2.086, interval NaN", p99)
	}
	noValues := 0
	for _, h := range ss.Histograms {
		if h.NoValues {
			noValues++
		}
	}
	for _, cs := range ss.Clusters {
		for _, h := range cs.Histograms {
			if h.NoValues {
				noValues++
			}
		}
	}
	if noValues != 667 {
		t.Errorf("histograms with no recorded values = %d, want 667", noValues)
	}
	if got := s.Uptime(); got != 21116*time.Second {
		t.Errorf("uptime = %s, want 5h51m56s", got)
	}
	if len(r.Findings) != 1 || r.Findings[0].Code != string(CodeConfigRejected) {
		t.Fatalf("findings:\n%s\nwant only %s", findingList(r), CodeConfigRejected)
	}
	f := r.Findings[0]
	if e := evidenceWith(t, f, "listener_manager"); e.Value != 17 {
		t.Errorf("LDS rejected = %v, want 17", e.Value)
	}
	if f.Severity != SeverityWarning {
		t.Errorf("one cumulative sample and no dump: severity %s, want warning", f.Severity)
	}
	noErrorFinding(t, r)
}

// DataDog's Istio 1.5 sidecar excerpt of /stats/prometheus: Istio's cluster_name label, the
// response code class label and `{}` label sets.
func TestCorpusDataDogIstioPrometheus(t *testing.T) {
	s, _ := corpusDiagnose(t, map[string]string{FileStatsProm: "stats_prometheus/datadog-istio-1.5-sidecar-excerpt.prom"}, corpusNow)
	ss := s.Stats
	x := ss.Clusters["xds-grpc"]
	if x == nil {
		t.Fatal("no xds-grpc cluster")
	}
	for stat, want := range map[string]float64{"upstream_rq_5xx": 1, "upstream_rq_503": 1, "upstream_cx_none_healthy": 1, "ssl_handshake": 2, "upstream_cx_destroy_with_active_rq": 1} {
		if got := x.Values[stat]; got != want {
			t.Errorf("xds-grpc %s = %v, want %v", stat, got, want)
		}
	}
	if got := ss.Clusters["outbound|9080||ratings.default.svc.cluster.local"].Values["client_ssl_socket_factory_ssl_context_update_by_sds"]; got != 8 {
		t.Errorf("ratings ssl_context_update_by_sds = %v, want 8", got)
	}
	if got := ss.Stats["cluster_manager_cluster_added"]; got != 62 {
		t.Errorf("cluster_manager_cluster_added = %v, want 62", got)
	}
}
