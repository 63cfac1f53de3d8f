package diagnose

import (
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// fxStatsText parses a /stats text excerpt.
func fxStatsText(t *testing.T, lines ...string) *envoyadmin.StatsSample {
	t.Helper()
	ss, err := envoyadmin.ParseStatsText(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// fxExcerpt is a snapshot of one stats excerpt, with no uptime known (a pasted grep).
func fxExcerpt(ss *envoyadmin.StatsSample) *Snapshot {
	return &Snapshot{Stats: ss, StatsFile: "stats.txt", Now: fxNow}
}

func fxCodesOf(fs []Finding, sev ...Severity) []string {
	var out []string
	for _, f := range fs {
		for _, s := range sev {
			if f.Severity == s {
				out = append(out, f.Code)
			}
		}
	}
	return out
}

// Small numbers: a count under the absolute floor is reported when it is all or most of what
// the evidence shows, and stays silent when it is a sliver of a large total.
func TestSmallCountsAreReported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rule  Rule
		lines []string
		want  bool
	}{
		{"one timeout in a grepped excerpt", TimeoutRule{}, []string{"cluster.httpbin_service.upstream_rq_timeout: 1", "cluster.httpbin_service.upstream_rq_per_try_timeout: 0"}, true},
		{"one timeout among 3 requests", TimeoutRule{}, []string{"cluster.httpbin_service.upstream_rq_timeout: 1", "cluster.httpbin_service.upstream_rq_total: 3"}, true},
		{"one timeout among 5000 requests", TimeoutRule{}, []string{"cluster.httpbin_service.upstream_rq_timeout: 1", "cluster.httpbin_service.upstream_rq_total: 5000"}, false},
		{"the only 5xx came with a closed connection", UpstreamResetRule{}, []string{"cluster.in.8080.upstream_cx_destroy_remote_with_active_rq: 1", "cluster.in.8080.upstream_rq_5xx: 1", "cluster.in.8080.upstream_rq_total: 455", "cluster.in.8080.upstream_cx_total: 455"}, true},
		{"a closed connection among 455 healthy requests", UpstreamResetRule{}, []string{"cluster.in.8080.upstream_cx_destroy_remote_with_active_rq: 1", "cluster.in.8080.upstream_rq_5xx: 0", "cluster.in.8080.upstream_rq_total: 455"}, false},
		{"retries that never succeed", RetriesExhaustedRule{}, []string{"cluster.httpbin_service.upstream_rq_retry: 3", "cluster.httpbin_service.upstream_rq_retry_success: 0"}, true},
		{"retries that succeed", RetriesExhaustedRule{}, []string{"cluster.httpbin_service.upstream_rq_retry: 3", "cluster.httpbin_service.upstream_rq_retry_success: 3"}, false},
		{"retries half of which fail again", RetriesExhaustedRule{}, []string{"cluster.color_server.upstream_rq_retry: 52", "cluster.color_server.upstream_rq_retry_success: 29"}, true},
		{"health checks that fail", NoHealthyUpstreamRule{}, []string{"cluster.sample.health_check.attempt: 12", "cluster.sample.health_check.failure: 12", "cluster.sample.health_check.success: 0"}, true},
		{"health checks that pass", NoHealthyUpstreamRule{}, []string{"cluster.sample.health_check.attempt: 229", "cluster.sample.health_check.failure: 0", "cluster.sample.health_check.success: 229"}, false},
		{"ejections of one kind in an excerpt", NoHealthyUpstreamRule{}, []string{"cluster.kube_httpbin_8000.outlier_detection.ejections_enforced_consecutive_5xx: 1"}, true},
		{"504s with no route timeout counter", TimeoutRule{}, []string{"cluster.api.external.upstream_rq_504: 5", "cluster.api.external.upstream_rq_2xx: 5"}, true},
		{"an old Envoy's ejections total", NoHealthyUpstreamRule{}, []string{"cluster.outbound|80||web.default.svc.cluster.local.outlier_detection.ejections_total: 4"}, true},
		{"no ejection", NoHealthyUpstreamRule{}, []string{"cluster.outbound|80||web.default.svc.cluster.local.outlier_detection.ejections_total: 0"}, false},
	} {
		fs := fxRun(t, tc.rule, fxExcerpt(fxStatsText(t, tc.lines...)))
		got := fxCodesOf(fs, SeverityError, SeverityWarning)
		if (len(got) > 0) != tc.want {
			t.Errorf("%s: %v (all: %v), want a finding: %v", tc.name, got, fxCodes(fs), tc.want)
		}
		for _, f := range fs {
			if tc.want && f.Severity == SeverityError {
				t.Errorf("%s: %s is an error on small numbers", tc.name, f.Code)
			}
		}
	}
}

func TestFilterDenialsRule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  []string
	}{
		{"RBAC denials in an excerpt", []string{"http.ingress_http.rbac.allowed: 1", "http.ingress_http.rbac.denied: 1", "http.ingress_http.rbac.shadow_denied: 0"}, []string{"MESH0804"}},
		{"a local rate limit", []string{"http_local_rate_limiter.http_local_rate_limit.rate_limited: 7"}, []string{"MESH0306"}},
		{"a network global rate limit", []string{"ratelimit.inbound_demo/fortio_8078_tcp.over_limit: 6", "ratelimit.inbound_demo/fortio_8078_tcp.ok: 1"}, []string{"MESH0306"}},
		{"CSRF refusals", []string{"http.ingress_http.csrf.request_invalid: 1", "http.ingress_http.csrf.request_valid: 0"}, []string{"MESH0804"}},
		{"shadow denials only", []string{"http.ingress_http.rbac.allowed: 10", "http.ingress_http.rbac.shadow_denied: 4"}, nil},
		{"one denial among 10000 requests", []string{"http.ingress_http.rbac.denied: 1", "http.ingress_http.downstream_rq_total: 10000"}, nil},
	} {
		got := fxCodesOf(fxRun(t, FilterDenialsRule{}, fxExcerpt(fxStatsText(t, tc.lines...))), SeverityError, SeverityWarning)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestProxyLogRule(t *testing.T) {
	parse := func(text string) *Snapshot {
		l, err := envoyadmin.ParseLog(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return &Snapshot{AccessLog: l.Entries, ProxyLog: l.Proxy, LogOther: l.Other, Now: fxNow}
	}
	for _, tc := range []struct {
		name, log string
		want      []string
	}{
		{"rejected listener, then not ready", "2021-03-05T10:10:10Z\twarning\tenvoy config\tgRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: Error adding/updating listener(s) 0.0.0.0_8080: foo\n2021-03-05T10:10:11Z\twarn\tEnvoy proxy is NOT ready: config not received from XDS server", []string{"MESH1001"}},
		{"the router's debug line of a timeout", "svc-one-7d8dcc748-4v7tp istio-proxy 2022-07-21T10:51:59.742415Z      debug   envoy router    [C440203][S374698705624913161] upstream timeout", []string{"MESH0101"}},
		{"a healthy start-up", "2021-04-25T03:02:16.930447Z\tinfo\tFLAG: --concurrency=\"2\"\n2021-04-25T03:02:18.000000Z\tinfo\tEnvoy proxy is ready", nil},
	} {
		fs := fxRun(t, ProxyLogRule{}, parse(tc.log))
		got := fxCodesOf(fs, SeverityError, SeverityWarning)
		if len(got) > 1 {
			got = got[:1]
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %v, want %v", tc.name, fxCodes(fs), tc.want)
		}
	}
}

func TestWarmingRule(t *testing.T) {
	s := &Snapshot{Config: &envoyadmin.ConfigSummary{Warming: []string{"cluster outbound|443||c.test.svc.cluster.local"}}, Now: fxNow}
	if got := fxCodes(fxRun(t, WarmingRule{}, s)); strings.Join(got, ",") != "MESH1003" {
		t.Errorf("warming cluster: %v", got)
	}
	s = &Snapshot{NoCerts: true, CertsFile: FileCerts, Now: fxNow}
	if got := fxCodes(fxRun(t, WarmingRule{}, s)); strings.Join(got, ",") != "MESH1003" {
		t.Errorf("no certificate: %v", got)
	}
	s = &Snapshot{Config: &envoyadmin.ConfigSummary{}, Certs: []envoyadmin.Cert{{Secret: "default"}}, Now: fxNow}
	if got := fxCodes(fxRun(t, WarmingRule{}, s)); len(got) != 0 {
		t.Errorf("nothing warming, a certificate held: %v", got)
	}
}
