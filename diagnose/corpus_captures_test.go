package diagnose

import (
	"strings"
	"testing"
)

// More corpus tests (see corpus_test.go): what the diagnosis says about real captures must hold
// for them, word for word where the words are the claim.

// istio/istio's sidecar /clusters?format=json (Istio 1.x): inbound_9092 is the Mixer unix
// socket with 64 connect failures since the host was added, and istio-policy's only host is
// failed_eds_health.
func TestCorpusIstioClustersJSON(t *testing.T) {
	_, r := corpusDiagnose(t, map[string]string{FileClustersJS: "clusters_json/istio-sidecar-clusters.json"}, corpusNow)
	noErrorFinding(t, r)

	f := findingFor(t, r, CodeConnectFailure, "inbound_9092")
	if f.Severity != SeverityWarning {
		t.Errorf("%s severity %s: per-host counters have no time base, want at most warning", f.Code, f.Severity)
	}
	if f.Impact != 0 {
		t.Errorf("%s impact %v without a time base", f.Code, f.Impact)
	}
	for _, e := range f.Evidence {
		if strings.Contains(e.Label, "proxy start") {
			t.Errorf("evidence %q: /clusters per-host counters do not count since proxy start", e.Label)
		}
		if strings.Contains(e.Source, "clusters.json") && !strings.Contains(e.Label, "since the host was added") {
			t.Errorf("evidence %q from %s does not say since the host was added", e.Label, e.Source)
		}
		if strings.Contains(e.Label, "upstream_cx_connect_fail") {
			t.Errorf("evidence %q names a cluster stat the folder does not have", e.Label)
		}
	}
	if e := evidenceWith(t, f, "summed over hosts"); e.Value != 64 {
		t.Errorf("summed connect failures = %v, want 64", e.Value)
	}
	if !strings.Contains(f.Explanation, "/sock/mixer.socket") {
		t.Errorf("explanation does not say the host is a unix socket: %s", f.Explanation)
	}

	const policy = "outbound|15014||istio-policy.istio-system.svc.cluster.local"
	var codes []string
	for _, f := range r.Findings {
		if f.Subject.Name == policy {
			codes = append(codes, f.Code)
		}
	}
	if len(codes) != 1 || codes[0] != string(CodeNoHealthyUpstream) {
		t.Fatalf("findings about %s: %v, want one %s (its only host is failed_eds_health)", policy, codes, CodeNoHealthyUpstream)
	}
	nh := findingFor(t, r, CodeNoHealthyUpstream, policy)
	if !strings.Contains(nh.Explanation, "The only host of istio-policy.istio-system.svc.cluster.local is unhealthy now") {
		t.Errorf("explanation: %s", nh.Explanation)
	}
	if !strings.Contains(evidenceTexts(nh), "172.17.0.14:15014") {
		t.Errorf("MESH0501 does not name the failed_eds_health host: %+v", nh.Evidence)
	}
}

// DataDog's Istio 1.5 excerpt: 8 outbound clusters appear only with TLS-context counters, and
// the folder holds nothing but stats.prom.
func TestCorpusDataDogStatsDisabledEvidence(t *testing.T) {
	_, r := corpusDiagnose(t, map[string]string{FileStatsProm: "stats_prometheus/datadog-istio-1.5-sidecar-excerpt.prom"}, corpusNow)
	f := findingFor(t, r, CodeClusterStatsDisabled, "this proxy")
	with, ok := upEvidence(&f, "upstream clusters with request stats")
	if !ok || with.Value != 0 {
		t.Errorf("no evidence \"upstream clusters with request stats\" = 0: %+v", f.Evidence)
	}
	for _, e := range f.Evidence {
		if e.Label == "upstream clusters with stats" {
			t.Errorf("evidence %q: 8 clusters do have (TLS) stats", e.Label)
		}
		for _, absent := range []string{FileConfigDump, FileAccessLog, "clusters.json", "clusters and"} {
			if strings.Contains(e.Source, absent) {
				t.Errorf("evidence %q names %s as source; the folder has only stats.prom: %q", e.Label, absent, e.Source)
			}
		}
	}
	if has, ok := upEvidence(&f, "upstream clusters the proxy has"); !ok || has.Value != 8 || has.Source != FileStatsProm {
		t.Errorf("upstream clusters the proxy has = %+v, want 8 from stats.prom", has)
	}
	if tls, ok := upEvidence(&f, "TLS-context counters only"); !ok || tls.Value != 8 {
		t.Errorf("TLS-only clusters = %+v, want 8", tls)
	}
}

// Emissary is not Istio: its rejected updates did not come from istiod, and istioctl does not
// apply.
func TestCorpusEmissaryConfigRejectedNotIstio(t *testing.T) {
	_, r := corpusDiagnose(t, map[string]string{FileStatsText: "stats_text/emissary-envoy-stats-with-histograms.txt"}, corpusNow)
	f := findingFor(t, r, CodeConfigRejected, "this proxy")
	all := f.Title + "\n" + f.Explanation + "\n" + f.Fix.Summary + "\n" + f.Fix.Command
	for _, istio := range []string{"istiod", "istioctl", "EnvoyFilter", "VirtualService", "istio-system"} {
		if strings.Contains(all, istio) {
			t.Errorf("finding on a non-Istio proxy says %q:\n%s", istio, all)
		}
	}
	if !strings.Contains(f.Title, "its control plane (xDS server)") {
		t.Errorf("title %q", f.Title)
	}
	if strings.Contains(f.Explanation, "config dump shows") {
		t.Errorf("explanation speaks of a config dump the folder does not have: %s", f.Explanation)
	}
	if cp, ok := upEvidence(&f, "control plane"); !ok || !strings.Contains(cp.Text, "not identified") {
		t.Errorf("control plane evidence %+v", cp)
	}
}

// The same rejections on a proxy whose evidence shows Istio keep naming istiod and istioctl.
func TestConfigRejectedNamesIstiodOnlyForIstio(t *testing.T) {
	for name, cluster := range map[string]string{"xds-grpc cluster": "xds-grpc", "Istio cluster name": fxReviews} {
		s := fxOne(fxSample(map[string]float64{"listener_manager_lds_update_rejected": 3}, map[string]fxCluster{cluster: {values: map[string]float64{"upstream_cx_total": 1}}}))
		fs := fxRun(t, ConfigRejectedRule{}, s)
		if len(fs) != 1 {
			t.Fatalf("%s: findings %v", name, fxCodes(fs))
		}
		if !strings.Contains(fs[0].Title, "from istiod") || !strings.Contains(fs[0].Fix.Command, "istioctl proxy-status") {
			t.Errorf("%s: title %q, fix %q", name, fs[0].Title, fs[0].Fix.Command)
		}
	}
}

// istio.io's pending-overflow excerpt has no config: remaining_pending 1 with nothing pending
// gives the pending limit, 1.
func TestCorpusIstioIOPendingLimitInferred(t *testing.T) {
	_, r := corpusDiagnose(t, map[string]string{FileStatsText: "stats_text/istio-io-circuit-breaking-pending-overflow.txt"}, corpusNow)
	const c = "outbound|8000||httpbin.default.svc.cluster.local"
	f := findingFor(t, r, CodePendingOverflow, c)
	if strings.Contains(f.Explanation, "limits are unknown") {
		t.Errorf("explanation says the limits are unknown: %s", f.Explanation)
	}
	e, ok := upEvidence(&f, "max_pending_requests")
	if !ok || e.Value != 1 || !strings.Contains(e.Label, "inferred from circuit_breakers.default.remaining_pending 1 + upstream_rq_pending_active 0") ||
		!strings.Contains(e.Source, "remaining_pending") {
		t.Errorf("max_pending_requests evidence %+v", e)
	}
	for _, want := range []string{"at most 1 request wait", "inferred from the stats"} {
		if !strings.Contains(f.Explanation, want) {
			t.Errorf("explanation lacks %q: %s", want, f.Explanation)
		}
	}
	if !strings.Contains(f.Title, "pending queue (1) full") || !strings.Contains(f.Fix.YAML, "http1MaxPendingRequests: 10") {
		t.Errorf("title %q, YAML:\n%s", f.Title, f.Fix.YAML)
	}
	if e := evidenceWith(t, f, "upstream_rq_pending_overflow"); e.Value != 21 {
		t.Errorf("overflow evidence %v", e.Value)
	}
}
