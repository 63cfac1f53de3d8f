package diagnose

import (
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Test fixtures shared by the upstream rules' tests: a healthy proxy with traffic and no
// failures, which each case then breaks in one way.

const (
	upReviews = "outbound|9080||reviews.default.svc.cluster.local"
	upInbound = "inbound|9080||"
	upWindow  = 30 * time.Second
)

func u32(v uint32) *uint32 { return &v }

func dur(d time.Duration) *time.Duration { return &d }

// upHealthyValues are the counters of a busy cluster with no failure.
func upHealthyValues() map[string]float64 {
	return map[string]float64{
		"upstream_rq_total": 5000, "upstream_rq_200": 5000, "upstream_cx_total": 40, "upstream_cx_active": 6,
		"upstream_cx_connect_fail": 0, "upstream_cx_connect_timeout": 0, "upstream_rq_timeout": 0,
		"upstream_rq_per_try_timeout": 0, "upstream_rq_pending_overflow": 0, "upstream_cx_overflow": 0,
		"upstream_rq_retry_overflow": 0, "upstream_rq_retry": 0, "upstream_rq_retry_limit_exceeded": 0,
		"upstream_cx_destroy_remote_with_active_rq": 0, "upstream_rq_rx_reset": 0, "upstream_rq_tx_reset": 0,
		"upstream_cx_none_healthy": 0, "membership_healthy": 3, "membership_total": 3,
		"outlier_detection_ejections_active": 0, "outlier_detection_ejections_enforced_total": 0,
		"circuit_breakers_default_rq_pending_open": 0, "circuit_breakers_default_cx_open": 0,
		"circuit_breakers_default_rq_open": 0, "circuit_breakers_default_rq_retry_open": 0,
		"upstream_rq_pending_total": 40, "upstream_rq_pending_active": 0,
	}
}

func upHistogram(p50, p99 float64) *envoyadmin.Histogram {
	return &envoyadmin.Histogram{Count: 5000, Quantiles: []envoyadmin.Quantile{
		{Q: 0, Interval: 1, Cumulative: 1}, {Q: 0.5, Interval: p50, Cumulative: p50},
		{Q: 0.99, Interval: p99, Cumulative: p99}, {Q: 1, Interval: p99 * 1.2, Cumulative: p99 * 1.2},
	}}
}

// upSample builds a stats sample; the busy clusters get a healthy latency histogram.
func upSample(clusters map[string]map[string]float64, global map[string]float64) *envoyadmin.StatsSample {
	ss := &envoyadmin.StatsSample{Format: envoyadmin.StatsText, Stats: map[string]float64{}, Clusters: map[string]*envoyadmin.ClusterStats{}}
	for k, v := range global {
		ss.Stats[k] = v
	}
	for name, vals := range clusters {
		cs := &envoyadmin.ClusterStats{Name: envoyadmin.ParseClusterName(name), Values: map[string]float64{}}
		for k, v := range vals {
			cs.Values[k] = v
		}
		if vals["upstream_rq_total"] > 0 {
			cs.Histograms = map[string]*envoyadmin.Histogram{"upstream_rq_time": upHistogram(12, 80)}
		}
		ss.Clusters[name] = cs
	}
	return ss
}

func upHealthyClusters() map[string]map[string]float64 {
	return map[string]map[string]float64{
		upReviews: upHealthyValues(),
		upInbound: upHealthyValues(),
		// Normal on a healthy proxy: start-up connect failures to the agent, and istiod closing
		// the xDS stream every 30 minutes.
		"xds-grpc":           {"upstream_cx_connect_fail": 2, "upstream_cx_destroy_remote_with_active_rq": 6, "upstream_rq_rx_reset": 6},
		"BlackHoleCluster":   {"upstream_cx_none_healthy": 0},
		"PassthroughCluster": {"upstream_cx_total": 12, "upstream_cx_connect_fail": 0},
		"prometheus_stats":   {"upstream_rq_total": 900, "upstream_cx_destroy_remote_with_active_rq": 0},
	}
}

func upHealthyGlobal() map[string]float64 {
	return map[string]float64{
		"http_outbound_0_0_0_0_9080_downstream_rq_total":                    5000,
		"http_outbound_0_0_0_0_9080_downstream_rq_rx_reset":                 2,
		"http_outbound_0_0_0_0_9080_downstream_cx_destroy_remote_active_rq": 0,
		"http_outbound_0_0_0_0_9080_no_route":                               0,
		"http_outbound_0_0_0_0_9080_no_cluster":                             0,
		"http_admin_downstream_rq_rx_reset":                                 40,
		"server_uptime":                                                     10800,
	}
}

func upHealthyConfig() *envoyadmin.ConfigSummary {
	unlimited := u32(4294967295)
	cb := []envoyadmin.CircuitBreaker{{Priority: "DEFAULT", MaxConnections: unlimited, MaxPendingRequests: unlimited, MaxRequests: unlimited, MaxRetries: unlimited}}
	retry := &envoyadmin.RetryPolicy{RetryOn: istioDefaultRetryOn, NumRetries: 2, RetriableStatusCodes: []uint32{503}}
	return &envoyadmin.ConfigSummary{
		Proxy: envoyadmin.ProxyInfo{PodName: "productpage-v1-abc", Namespace: "default"},
		Clusters: []envoyadmin.ClusterConfig{
			{Name: envoyadmin.ParseClusterName(upReviews), DiscoveryType: "EDS", ConnectTimeout: 10 * time.Second, CircuitBreakers: cb, TLSMode: envoyadmin.TLSModeAuto},
			{Name: envoyadmin.ParseClusterName(upInbound), DiscoveryType: "ORIGINAL_DST", ConnectTimeout: 10 * time.Second, CircuitBreakers: cb, TLSMode: envoyadmin.TLSModePlaintext},
			{Name: envoyadmin.ParseClusterName("BlackHoleCluster"), DiscoveryType: "STATIC"},
			{Name: envoyadmin.ParseClusterName("PassthroughCluster"), DiscoveryType: "ORIGINAL_DST"},
			{Name: envoyadmin.ParseClusterName("xds-grpc"), DiscoveryType: "STATIC", Source: "static"},
		},
		Routes: []envoyadmin.RouteConfig{
			{RouteConfigName: "9080", VirtualHost: "reviews.default.svc.cluster.local:9080", Domains: []string{"reviews.default.svc.cluster.local", "reviews", "reviews:9080"},
				Name: "default", Match: "prefix /", Clusters: []envoyadmin.WeightedCluster{{Name: upReviews, Weight: 100}}, Timeout: dur(0), Retry: retry},
			{RouteConfigName: "9080", VirtualHost: "allow_any", Domains: []string{"*"}, Name: "allow_any", Match: "prefix /",
				Clusters: []envoyadmin.WeightedCluster{{Name: "PassthroughCluster", Weight: 100}}, Timeout: dur(0)},
			{RouteConfigName: "inbound|9080||", VirtualHost: "inbound|http|9080", Domains: []string{"*"}, Name: "default", Match: "prefix /",
				Clusters: []envoyadmin.WeightedCluster{{Name: upInbound, Weight: 100}}, Timeout: dur(0)},
		},
		Listeners: []envoyadmin.ListenerConfig{{Name: "virtualInbound", Address: "0.0.0.0:15006", Inbound: true, MTLSMode: "PERMISSIVE"}},
		Endpoints: []envoyadmin.ClusterEndpoints{{Cluster: upReviews, Endpoints: []envoyadmin.Endpoint{
			{Address: "10.1.0.11:9080", HealthStatus: "HEALTHY", TLSMode: "istio"},
			{Address: "10.1.0.12:9080", HealthStatus: "HEALTHY", TLSMode: "istio"},
			{Address: "10.1.0.13:9080", HealthStatus: "HEALTHY", TLSMode: "istio"},
		}}},
	}
}

func upHealthyUpstreams() *envoyadmin.UpstreamClusters {
	host := func(addr string) envoyadmin.UpstreamHost {
		return envoyadmin.UpstreamHost{Address: addr, Stats: map[string]uint64{"rq_total": 1700, "rq_success": 1700, "cx_active": 2}}
	}
	return &envoyadmin.UpstreamClusters{Clusters: []envoyadmin.UpstreamCluster{
		{Name: envoyadmin.ParseClusterName(upReviews), Hosts: []envoyadmin.UpstreamHost{host("10.1.0.11:9080"), host("10.1.0.12:9080"), host("10.1.0.13:9080")}},
		{Name: envoyadmin.ParseClusterName(upInbound), Hosts: []envoyadmin.UpstreamHost{host("10.1.0.5:9080")}},
		{Name: envoyadmin.ParseClusterName("BlackHoleCluster")},
	}}
}

func upLogLine(code int, flags, details, cluster string) envoyadmin.AccessLogEntry {
	return envoyadmin.AccessLogEntry{
		Timestamp: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), Method: "GET", Path: "/reviews/1", Protocol: "HTTP/1.1",
		Code: code, Flags: envoyadmin.ParseResponseFlags(flags), Details: details, Duration: 15 * time.Millisecond,
		Authority: "reviews:9080", UpstreamHost: "10.1.0.11:9080", UpstreamCluster: cluster, Format: "istio",
	}
}

// upHealthy is a healthy proxy with one stats sample (numbers since start, uptime 3h).
func upHealthy() *Snapshot {
	var logs []envoyadmin.AccessLogEntry
	for i := 0; i < 5; i++ {
		e := upLogLine(200, "-", "via_upstream", upReviews)
		e.Timestamp = e.Timestamp.Add(time.Duration(i) * 10 * time.Second)
		logs = append(logs, e)
	}
	return &Snapshot{
		Meta:       Meta{Pod: "productpage-v1-abc", Namespace: "default"},
		Stats:      upSample(upHealthyClusters(), upHealthyGlobal()),
		StatsFile:  FileStatsText,
		Config:     upHealthyConfig(),
		Upstreams:  upHealthyUpstreams(),
		ServerInfo: &envoyadmin.ServerInfo{State: "LIVE", Uptime: 3 * time.Hour},
		AccessLog:  logs,
	}
}

// upHealthyInterval is a healthy proxy with two samples upWindow apart: traffic grew, failure
// counters did not.
func upHealthyInterval() *Snapshot {
	s := upHealthy()
	s.Stats2 = upSample(upHealthyClusters(), upHealthyGlobal())
	for _, c := range []string{upReviews, upInbound} {
		s.Stats2.Clusters[c].Values["upstream_rq_total"] += 300
		s.Stats2.Clusters[c].Values["upstream_rq_200"] += 300
	}
	s.Stats2File, s.Window = FileStatsText, upWindow
	return s
}

// setCounter sets a cluster value in the first sample and, when there is one, to first+delta in
// the second.
func setCounter(s *Snapshot, cluster, stat string, first, delta float64) {
	for i, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss == nil {
			continue
		}
		cs := ss.Clusters[cluster]
		if cs == nil {
			cs = &envoyadmin.ClusterStats{Name: envoyadmin.ParseClusterName(cluster), Values: map[string]float64{}}
			ss.Clusters[cluster] = cs
		}
		cs.Values[stat] = first + float64(i)*delta
	}
}

// setGlobal sets a global stat likewise.
func setGlobal(s *Snapshot, stat string, first, delta float64) {
	for i, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss != nil {
			ss.Stats[stat] = first + float64(i)*delta
		}
	}
}

// upWant is what a test expects of one finding.
type upWant struct {
	code     Code
	subject  string
	severity Severity           // "" to leave unchecked
	values   map[string]float64 // evidence label substring -> value
	texts    map[string]string  // evidence label substring -> substring of its text
	explain  []string           // substrings of the explanation
	fix      []string           // substrings of the fix's summary, command or YAML
}

type upCase struct {
	name string
	snap *Snapshot
	want []upWant
}

// runUpCases runs a rule on each case and checks that it reports exactly the wanted findings.
func runUpCases(t *testing.T, rule Rule, cases []upCase) {
	t.Helper()
	meta := rule.Meta()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rule.Check(tc.snap)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d findings, want %d:\n%s", len(got), len(tc.want), upSummary(got))
			}
			for _, w := range tc.want {
				f := upFind(got, w.code, w.subject)
				if f == nil {
					t.Fatalf("no %s finding for %q in:\n%s", w.code, w.subject, upSummary(got))
				}
				upCheckShape(t, meta, f)
				if w.severity != "" && f.Severity != w.severity {
					t.Errorf("%s severity = %s, want %s", w.code, f.Severity, w.severity)
				}
				for label, v := range w.values {
					e, ok := upEvidence(f, label)
					if !ok {
						t.Errorf("%s: no evidence %q in %+v", w.code, label, f.Evidence)
					} else if e.Value != v {
						t.Errorf("%s: evidence %q = %v, want %v", w.code, label, e.Value, v)
					}
				}
				for label, sub := range w.texts {
					if e, ok := upEvidence(f, label); !ok || !strings.Contains(e.Text, sub) {
						t.Errorf("%s: evidence %q text %q does not contain %q", w.code, label, e.Text, sub)
					}
				}
				for _, sub := range w.explain {
					if !strings.Contains(f.Explanation, sub) {
						t.Errorf("%s: explanation does not contain %q:\n%s", w.code, sub, f.Explanation)
					}
				}
				all := f.Fix.Summary + "\n" + f.Fix.Command + "\n" + f.Fix.YAML
				for _, sub := range w.fix {
					if !strings.Contains(all, sub) {
						t.Errorf("%s: fix does not contain %q:\n%s", w.code, sub, all)
					}
				}
			}
		})
	}
}

// upCheckShape checks what every finding must have.
func upCheckShape(t *testing.T, meta RuleMeta, f *Finding) {
	t.Helper()
	info, ok := catalogByCode[Code(f.Code)]
	if !ok {
		t.Fatalf("code %s not in the catalog", f.Code)
	}
	declared := false
	for _, c := range meta.Codes {
		declared = declared || c == Code(f.Code)
	}
	switch {
	case !declared:
		t.Errorf("%s reports %s, which its Meta does not declare", meta.Name, f.Code)
	case f.Category != info.Category:
		t.Errorf("%s category = %s, want %s", f.Code, f.Category, info.Category)
	case f.Title == "" || strings.Contains(f.Title, "\n"):
		t.Errorf("%s title must be one line: %q", f.Code, f.Title)
	case f.Explanation == "":
		t.Errorf("%s has no explanation", f.Code)
	case f.Fix.Summary == "" || (f.Fix.Command == "" && f.Fix.YAML == ""):
		t.Errorf("%s fix needs a summary and a command or YAML: %+v", f.Code, f.Fix)
	case len(f.Evidence) == 0:
		t.Errorf("%s has no evidence", f.Code)
	case f.Impact < 0:
		t.Errorf("%s impact %v < 0", f.Code, f.Impact)
	}
	for _, e := range f.Evidence {
		if e.Source == "" || e.Label == "" {
			t.Errorf("%s evidence without label or source: %+v", f.Code, e)
		}
	}
}

func upFind(fs []Finding, code Code, subject string) *Finding {
	for i := range fs {
		if fs[i].Code == string(code) && fs[i].Subject.Name == subject {
			return &fs[i]
		}
	}
	return nil
}

func upEvidence(f *Finding, label string) (Evidence, bool) {
	for _, e := range f.Evidence {
		if strings.Contains(e.Label, label) {
			return e, true
		}
	}
	return Evidence{}, false
}

func upSummary(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.Code + " " + string(f.Severity) + " " + f.Subject.String() + ": " + f.Title + "\n")
	}
	return b.String()
}

// upSilentCases are the cases where every upstream rule must report nothing.
func upSilentCases() []upCase {
	return []upCase{
		{name: "healthy, one sample", snap: upHealthy()},
		{name: "healthy, two samples", snap: upHealthyInterval()},
		{name: "no evidence", snap: &Snapshot{}},
		{name: "empty evidence", snap: &Snapshot{
			Stats: &envoyadmin.StatsSample{}, Config: &envoyadmin.ConfigSummary{}, Upstreams: &envoyadmin.UpstreamClusters{},
			AccessLog: []envoyadmin.AccessLogEntry{{}}, Stats2: &envoyadmin.StatsSample{}, Window: upWindow,
		}},
	}
}

func TestUpstreamRulesSilentOnHealthyProxy(t *testing.T) {
	for _, rule := range []Rule{TimeoutRule{}, ConnectFailureRule{}, CircuitBreakerRule{}, UpstreamResetRule{}, NoHealthyUpstreamRule{}, RetriesExhaustedRule{}, NoRouteRule{}} {
		t.Run(rule.Meta().Name, func(t *testing.T) { runUpCases(t, rule, upSilentCases()) })
	}
}

func TestUpstreamSignalSeverity(t *testing.T) {
	cases := []struct {
		name string
		g    signal
		want Severity
	}{
		{"interval", signal{m: Measure{Value: 1, Interval: true, Span: upWindow}, ok: true}, SeverityError},
		{"cumulative, frequent", signal{m: Measure{Value: 100, Rate: 0.01, Span: time.Hour}, ok: true}, SeverityError},
		{"cumulative, sporadic", signal{m: Measure{Value: 6, Rate: 6.0 / (3 * 86400), Span: 72 * time.Hour}, ok: true}, SeverityWarning},
		{"cumulative, uptime unknown, few", signal{m: Measure{Value: 6}, ok: true}, SeverityWarning},
		{"cumulative, uptime unknown, many", signal{m: Measure{Value: 21}, ok: true}, SeverityError},
		{"one log line", signal{logs: make([]envoyadmin.AccessLogEntry, 1)}, SeverityWarning},
		{"three log lines", signal{logs: make([]envoyadmin.AccessLogEntry, 3)}, SeverityError},
	}
	for _, tc := range cases {
		if got := tc.g.severity(SeverityError); got != tc.want {
			t.Errorf("%s: severity = %s, want %s", tc.name, got, tc.want)
		}
	}
	if (signal{m: Measure{Value: 4}, ok: true}).fires() {
		t.Errorf("4 cumulative events must stay under minCumulativeEvents")
	}
}

func TestClassifyCluster(t *testing.T) {
	for name, want := range map[string]clusterKind{
		upReviews: kindService, upInbound: kindInbound, "backend": kindService, "BlackHoleCluster": kindBlackHole,
		"PassthroughCluster": kindPassthrough, "InboundPassthroughClusterIpv4": kindPassthrough,
		"xds-grpc": kindControlPlane, "sds-grpc": kindControlPlane, "prometheus_stats": kindProxyOwn, "agent": kindProxyOwn,
	} {
		if got := classifyCluster(name); got != want {
			t.Errorf("classifyCluster(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[time.Duration]string{4 * time.Second: "4s", 10 * time.Second: "10s", time.Hour: "1h", 90 * time.Second: "90s", 250 * time.Millisecond: "250ms", 0: "0s"} {
		if got := durationText(d); got != want {
			t.Errorf("durationText(%s) = %q, want %q", d, got, want)
		}
	}
}
