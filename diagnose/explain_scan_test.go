package diagnose

import (
	"reflect"
	"testing"
)

// Each kind of signal explain finds in free text, in the shapes real pastes take (most lines
// are from testdata/realworld, whose case.yaml files name their sources), and texts that hold a
// signal but nothing wrong.
func TestExplainFindsSignalsAnywhere(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"local reply: no healthy upstream", "no healthy upstream", []string{"MESH0501"}},
		{"local reply: upstream request timeout", "upstream request timeout", []string{"MESH0101"}},
		{"local reply: RBAC", "RBAC: access denied", []string{"MESH0804"}},
		{"local reply in a gRPC error", "rpc error: code = Unavailable desc = no healthy upstream", []string{"MESH0501"}},
		{"percent-encoded grpc-message", "< grpc-message: upstream%20connect%20error%20or%20disconnect/reset%20before%20headers.%20reset%20reason:%20overflow", []string{"MESH0301"}},
		{"bare transport failure, spaces", "TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER", []string{"MESH0802"}},
		{"bare transport failure, underscores", "TLS_error:_268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER", []string{"MESH0802"}},
		{"curl -v with x-envoy-overloaded", "< HTTP/1.1 503 Service Unavailable\n< x-envoy-overloaded: true\n< server: envoy", []string{"MESH0301"}},
		{"Envoy's own 504", "< HTTP/1.1 504 Gateway Timeout\n< server: envoy\n< content-length: 24", []string{"MESH0101"}},
		{"a 503 the upstream produced", "< HTTP/1.1 503 Service Unavailable\n< server: istio-envoy\n< x-envoy-upstream-service-time: 12", []string{"MESH1801"}},
		{"Envoy's own 403 without a body", "< HTTP/1.1 403 Forbidden\n< server: envoy\n< content-length: 0", []string{"MESH0804"}},
		{"long flag name", "response flags: UpstreamConnectionFailure", []string{"MESH0204"}},
		{"flags named as a field", `istio_requests_total{response_code="503",response_flags="UO"} 12`, []string{"MESH0301"}},
		{"escaped access-log line", `[2020-01-01T00:00:00.000Z] \"GET / HTTP/1.1\" 404 NR route_not_found - \"-\" 0 0 0 - \"-\" \"curl\" \"x\" \"a\" \"-\" - - 10.0.0.1:80 10.0.0.2:1 - -`, []string{"MESH0701"}},
		{"proxy log line", "2021-03-05T10:10:10.123456Z\twarning\tenvoy config\tgRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: Error adding/updating listener(s) 0.0.0.0_8080: foo", []string{"MESH1001"}},
		{"router debug line", "[2019-10-14 10:56:06.963][285][debug][router] [external/envoy/source/common/router/router.cc:671] [C523430][S7230925655636222372] upstream reset: reset reason connection termination", []string{"MESH0401"}},
		{"reset body and its reason on the next line", "upstream connect error or disconnect/reset before headers. reset reason: connection failure\nTLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED", []string{"MESH0801"}},
		{"reset body without a reason", "upstream connect error or disconnect/reset before headers", []string{"MESH0204"}},
		{"a 500 among a load tester's answers", "Status Codes  [code:count]  200:195  500:5", []string{"MESH1801"}},
		{"a load tester's slow answers", "Summary:\n  Slowest:\t10.3426 secs\n  Fastest:\t10.0031 secs", []string{"MESH1101"}},
		{"proxyless gRPC circuit breaker", "code = Unavailable desc = max requests 1024 exceeded on service outbound|8080||echo.default.svc.cluster.local", []string{"MESH0301"}},
		{"curl reset by the server", "command terminated with exit code 56", []string{"MESH0802"}},
		{"status in an application's JSON", `{"status":504,"title":"failed sending request"}`, []string{"MESH0101"}},
		// Signals that say nothing is wrong.
		{"a 200 through Envoy", "< HTTP/1.1 200 OK\n< server: istio-envoy\n< x-envoy-upstream-service-time: 5", nil},
		{"a 200 access-log line", fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.0.5:9080", 3, 2), nil},
		{"a load tester with fast 200s", "Status code distribution:\n  [200]\t50 responses\n  Slowest:\t0.0361 secs", nil},
		{"an info line of the agent", "2021-04-25T03:02:16.930447Z\tinfo\tFLAG: --concurrency=\"2\"", nil},
	} {
		r, err := Explain(tc.in, fxNow)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := fxCodes(r.Findings)
		if len(got) > 0 && len(tc.want) > 0 {
			got = got[:0]
			for _, f := range r.Findings {
				if f.Severity != SeverityInfo {
					got = append(got, f.Code)
				}
			}
			got = got[:min(len(got), 1)] // the top finding
		}
		if !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
			t.Errorf("%s: %v, want %v", tc.name, fxCodes(r.Findings), tc.want)
		}
		for _, f := range r.Findings {
			fxCheck(t, f, false)
			if len(f.Evidence) == 0 || f.Evidence[0].Source == "" {
				t.Errorf("%s: %s shows no evidence from the input", tc.name, f.Code)
			}
		}
	}
}

// Short flags are read where they cannot be words of prose, and nowhere else.
func TestExplainShortFlagsNeedContext(t *testing.T) {
	if _, err := Explain("I think DO and UT are both fine here", fxNow); err == nil {
		t.Error("words of prose were read as response flags")
	}
	for _, in := range []string{"UF,URX", "503 UF", "  UH  "} {
		if fs := explainOne(t, in); len(fs) == 0 {
			t.Errorf("Explain(%q) found nothing", in)
		}
	}
}

// A failure the text shows without its cause is said to be unexplained, not healthy.
func TestExplainUnexplainedFailure(t *testing.T) {
	for in, want := range map[string]bool{
		"< HTTP/1.1 503 Service Unavailable\n< server: envoy": true,
		"< grpc-status: 14":                  true,
		"< HTTP/1.1 200 OK\n< server: envoy": false,
		"< grpc-status: 0":                   false,
	} {
		r, err := Explain(in, fxNow)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if (r.Unexplained != "") != want || len(r.Findings) != 0 {
			t.Errorf("%q: unexplained %q, findings %v", in, r.Unexplained, fxCodes(r.Findings))
		}
	}
}
