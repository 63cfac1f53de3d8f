package diagnose

import (
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Synthetic twins of the corpus tests in corpus_captures_test.go, which skip when the captures
// are absent: the same evidence shapes, built in code.

// Per-host /clusters counters count since the host was added, with no time base: many of them
// are a warning at most, and never "since proxy start".
func TestHostCountersHaveNoTimeBase(t *testing.T) {
	s := &Snapshot{UpstreamsFile: FileClustersJS, Upstreams: &envoyadmin.UpstreamClusters{Clusters: []envoyadmin.UpstreamCluster{{
		Name:  envoyadmin.ParseClusterName("inbound_9092"),
		Hosts: []envoyadmin.UpstreamHost{{Address: "/sock/mixer.socket", Stats: map[string]uint64{"cx_connect_fail": 64}}},
	}}}}
	runUpCases(t, ConnectFailureRule{}, []upCase{{name: "64 failures on a unix socket", snap: s, want: []upWant{{
		code: CodeConnectFailure, subject: "inbound_9092", severity: SeverityWarning,
		values:  map[string]float64{"summed over the hosts (cx_connect_fail, each since the host was added)": 64, "on host /sock/mixer.socket (since the host was added)": 64},
		explain: []string{"unix domain socket (/sock/mixer.socket)", "cumulative since each host was added"},
	}}}})
}

// Clusters with only Istio's TLS-context counters have stats, but no request stats; the count
// of the proxy's clusters names only the files present.
func TestStatsDisabledEvidenceNamesPresentSources(t *testing.T) {
	tlsOnly := fxCluster{values: map[string]float64{"client_ssl_socket_factory_ssl_context_update_by_sds": 8}}
	s := fxOne(fxSample(nil, map[string]fxCluster{
		"xds-grpc": {values: map[string]float64{"upstream_cx_total": 1}},
		fxReviews:  tlsOnly, "outbound|9080||ratings.default.svc.cluster.local": tlsOnly,
	}))
	fs := fxRun(t, StatsDisabledRule{}, s)
	if len(fs) != 1 {
		t.Fatalf("findings %v", fxCodes(fs))
	}
	f := &fs[0]
	if e, ok := upEvidence(f, "upstream clusters with request stats"); !ok || e.Value != 0 {
		t.Errorf("evidence %+v", f.Evidence)
	}
	if e, ok := upEvidence(f, "upstream clusters the proxy has"); !ok || e.Value != 2 || e.Source != "stats.prom" {
		t.Errorf("clusters the proxy has: %+v", e)
	}
	if e, ok := upEvidence(f, "TLS-context counters only"); !ok || e.Value != 2 {
		t.Errorf("TLS-only clusters: %+v", e)
	}
	s.AccessLog = []envoyadmin.AccessLogEntry{{UpstreamCluster: fxReviews}}
	f = &fxRun(t, StatsDisabledRule{}, s)[0]
	if e, _ := upEvidence(f, "upstream clusters the proxy has"); e.Source != "stats.prom and access.log" {
		t.Errorf("with an access log, source %q", e.Source)
	}
}

// Rejected updates of a proxy with no sign of Istio come from "its control plane".
func TestConfigRejectedWithoutIstioEvidence(t *testing.T) {
	s := fxOne(fxSample(map[string]float64{"listener_manager_lds_update_rejected": 17}, map[string]fxCluster{"cluster_127_0_0_1_8500_ambassador": {values: map[string]float64{"upstream_rq_total": 14}}}))
	fs := fxRun(t, ConfigRejectedRule{}, s)
	if len(fs) != 1 {
		t.Fatalf("findings %v", fxCodes(fs))
	}
	f := fs[0]
	all := f.Title + "\n" + f.Explanation + "\n" + f.Fix.Summary + "\n" + f.Fix.Command
	if strings.Contains(all, "istio") || !strings.Contains(f.Title, "from its control plane (xDS server): LDS (listeners) 17") {
		t.Errorf("non-Istio proxy worded as Istio's:\n%s", all)
	}
}
