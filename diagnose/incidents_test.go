package diagnose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

// incidentsDir holds one evidence folder per incident, in the formats the admin API and kubectl
// print (see its README.md for each incident's story and where its files come from).
const incidentsDir = "../testdata/incidents"

// incidentNow is passed to LoadDir; the folders' meta.json capture times take precedence, so it
// only matters for a folder without them.
var incidentNow = time.Date(2024, 4, 16, 14, 2, 21, 0, time.UTC)

// incidentCases says, for every incident folder, what the diagnosis must put first. An empty
// code means the top finding is not pinned; such an incident must have no error finding.
var incidentCases = []struct {
	incident string
	category Category
	code     Code
	subject  string // a substring of the top finding's subject name
}{
	{"timeout", CategoryTimeout, CodeUpstreamTimeout, "outbound|9080||reviews.default.svc.cluster.local"},
	{"connect-refused", CategoryConnectFailure, CodeConnectRefused, "inbound|9080||"},
	{"circuit-breaker", CategoryCircuitBreaker, CodePendingOverflow, "outbound|9080||reviews.default.svc.cluster.local"},
	{"keepalive-race", CategoryUpstreamReset, CodeKeepAliveRace, "outbound|9080||details.default.svc.cluster.local"},
	{"outlier-ejection", CategoryNoHealthyUpstream, CodeNoHealthyUpstream, "outbound|9080||ratings.default.svc.cluster.local"},
	{"retries-exhausted", CategoryRetriesExhausted, CodeRetriesExhausted, "outbound|9080||ratings.default.svc.cluster.local"},
	{"no-cluster", CategoryNoRoute, CodeNoCluster, "outbound|9080|v3|reviews.default.svc.cluster.local"},
	{"no-endpoints", CategoryNoHealthyUpstream, CodeNoHealthyUpstream, "outbound|9080||reviews.default.svc.cluster.local"},
	{"mtls-mismatch", CategoryMTLS, CodeTLSModeMismatch, "outbound|9080||reviews.default.svc.cluster.local"},
	{"cert-expiry", CategoryCertExpiry, CodeCertExpired, "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"},
	{"config-rejected", CategoryConfigRejected, CodeConfigRejected, "productpage-v1-6c5b8d6b9f-k7x2m"},
	{"latency", CategoryLatency, CodeHighUpstreamLatency, "outbound|9080||reviews.default.svc.cluster.local"},
	// The hop to reviews was followed: the latency finding comes first, and the attribution
	// beside it (TestNetworkLatencyIncident) says the time goes between the pods.
	{"network-latency", CategoryLatency, CodeHighUpstreamLatency, "outbound|9080||reviews.default.svc.cluster.local"},
	{"stats-disabled", CategoryStatsDisabled, CodeClusterStatsDisabled, "productpage-v1-6c5b8d6b9f-k7x2m"},
	{"sidecar-not-ready", CategorySidecarNotReady, CodeSidecarNotReady, "default/productpage-v1-6c5b8d6b9f-k7x2m"},
	{"cpu-throttling", CategoryCPUThrottling, CodeProxyThrottled, "default/productpage-v1-6c5b8d6b9f-k7x2m"},
	{"node-cpu-steal", CategoryNodeCPUSteal, CodeNodeCPUSteal, "default/productpage-v1-6c5b8d6b9f-k7x2m"},
	{"node-io", CategoryNodeIO, CodeNodeDiskAwait, "default/productpage-v1-6c5b8d6b9f-k7x2m"},
	{"conntrack-full", CategoryNodeLimits, CodeConntrackFull, "default/productpage-v1-6c5b8d6b9f-k7x2m"},
	{"app-error", CategoryAppError, CodeApplicationErrors, "outbound|9080||details.default.svc.cluster.local"},
	{"healthy", "", "", ""},
}

// loadIncident reads an incident folder and checks that every file in it was read: a file the
// parsers cannot read would leave the incident testing less than it claims.
func loadIncident(t *testing.T, name string) *Snapshot {
	t.Helper()
	dir := filepath.Join(incidentsDir, name)
	s, err := LoadDir(dir, incidentNow)
	if err != nil {
		t.Fatalf("LoadDir(%s): %v", dir, err)
	}
	for _, w := range s.Warnings {
		t.Errorf("%s: load warning: %s", name, w)
	}
	present := func(file string) bool {
		_, err := os.Stat(filepath.Join(dir, file))
		return err == nil
	}
	checks := []struct {
		file string
		read bool
	}{
		{FileStatsProm, s.Stats != nil && s.StatsFile == FileStatsProm},
		{FileStats2Prom, s.Stats2 != nil && s.Window == 10*time.Second},
		{FileConfigDump, s.Config != nil && len(s.Config.Warnings) == 0},
		{FileClustersJS, s.Upstreams != nil && len(s.Upstreams.Clusters) > 0},
		{FileCerts, s.CertsFile == FileCerts && len(s.Certs) > 0},
		{FileServerInfo, s.ServerInfo != nil && s.ServerInfo.State != ""},
		{FileAccessLog, len(s.AccessLog) > 0},
		{FilePod, s.Pod != nil && s.Pod.Name != ""},
		{FileNode, s.Node != nil && s.NodeFile == FileNode && s.Node.CPU != nil},
		{FileNode2, s.Node2 != nil && s.Has(InputNodeInterval)},
		{FileEvents, len(s.Events) > 0},
		{FileServices, len(s.Services) > 0},
		{FileEndpointSlices, len(s.EndpointSlices) > 0},
		{FileIstio, s.Istio != nil && len(s.Istio.DestinationRules)+len(s.Istio.PeerAuthentications)+len(s.Istio.VirtualServices) > 0},
	}
	for _, c := range checks {
		if present(c.file) && !c.read {
			t.Errorf("%s/%s is present but was not read", name, c.file)
		}
	}
	for _, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss != nil && (ss.Skipped > 0 || len(ss.Warnings) > 0) {
			t.Errorf("%s: %d stats lines skipped by the parser: %v", name, ss.Skipped, ss.Warnings)
		}
	}
	return s
}

// diagnoseIncident runs the whole engine on an incident, with a target that does not depend on
// where the repository is.
func diagnoseIncident(t *testing.T, name string) *Report {
	t.Helper()
	r := Diagnose(loadIncident(t, name), Rules())
	r.Target = "folder testdata/incidents/" + name
	return r
}

func TestIncidentsTopFinding(t *testing.T) {
	for _, tc := range incidentCases {
		t.Run(tc.incident, func(t *testing.T) {
			r := diagnoseIncident(t, tc.incident)
			for _, w := range r.Warnings {
				t.Errorf("report warning: %s", w)
			}
			if tc.code == "" {
				for _, f := range r.Findings {
					if f.Severity == SeverityError || f.Severity == SeverityWarning {
						t.Errorf("healthy incident has a %s finding: %s %s %s", f.Severity, f.Code, f.Subject, f.Title)
					}
				}
				return
			}
			if len(r.Findings) == 0 {
				t.Fatalf("no finding; want %s %s about %q first", tc.code, tc.category, tc.subject)
			}
			top := r.Findings[0]
			if top.Category != tc.category || top.Code != string(tc.code) || !strings.Contains(top.Subject.Name, tc.subject) {
				t.Errorf("top finding = %s [%s] %s (%s); want %s [%s] about %q\nall findings:\n%s",
					top.Code, top.Category, top.Subject, top.Title, tc.code, tc.category, tc.subject, findingList(r))
			}
		})
	}
}

func findingList(r *Report) string {
	var b strings.Builder
	for i, f := range r.Findings {
		fmt.Fprintf(&b, "  %d. %s %s [%s] %s: %s\n", i+1, f.Severity, f.Code, f.Category, f.Subject, f.Title)
	}
	return b.String()
}

// TestIncidentsAllListed keeps the table and the folders in step: a new folder without an
// expectation, or an expectation without its folder, fails.
func TestIncidentsAllListed(t *testing.T) {
	entries, err := os.ReadDir(incidentsDir)
	if err != nil {
		t.Fatal(err)
	}
	var folders, listed []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "gen" {
			folders = append(folders, e.Name())
		}
	}
	for _, tc := range incidentCases {
		listed = append(listed, tc.incident)
	}
	sort.Strings(listed)
	if strings.Join(folders, " ") != strings.Join(listed, " ") {
		t.Errorf("incident folders %v, table %v", folders, listed)
	}
}

// TestIncidentsGolden pins the whole text report of every incident, and the JSON of one (its
// field names are what scripts read). Rewrite with: UPDATE_GOLDEN=1 go test ./diagnose -run IncidentsGolden
func TestIncidentsGolden(t *testing.T) {
	for _, tc := range incidentCases {
		t.Run(tc.incident, func(t *testing.T) {
			r := diagnoseIncident(t, tc.incident)
			var buf bytes.Buffer
			if err := RenderText(&buf, r, TextOptions{Color: false}); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "golden", tc.incident+".txt"), buf.Bytes())
			if tc.incident == "timeout" {
				b, err := json.MarshalIndent(r, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				golden.Check(t, filepath.Join("testdata", "golden", tc.incident+".json"), append(b, '\n'))
			}
		})
	}
}
