package diagnose

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// allResponseFlags are the short flags Envoy defines, with their long names: ENVOY-FACTS's
// table first, then the rest.
var allResponseFlags = map[string]string{
	"UH": "NoHealthyUpstream", "UF": "UpstreamConnectionFailure", "UO": "UpstreamOverflow",
	"URX": "UpstreamRetryLimitExceeded", "UT": "UpstreamRequestTimeout", "UC": "UpstreamConnectionTermination",
	"UR": "UpstreamRemoteReset", "LR": "LocalReset", "DC": "DownstreamConnectionTermination",
	"NR": "NoRouteFound", "NC": "NoClusterFound", "UPE": "UpstreamProtocolError", "SI": "StreamIdleTimeout",
	"RL":    "RateLimited",
	"UMSDR": "UpstreamMaxStreamDurationReached", "DT": "DurationTimeout", "UAEX": "UnauthorizedExternalService",
	"RLSE": "RateLimitServiceError", "IH": "InvalidEnvoyRequestHeaders", "DPE": "DownstreamProtocolError",
	"FI": "FaultInjected", "DI": "DelayInjected", "LH": "FailedLocalHealthCheck", "OM": "OverloadManagerTerminated",
	"DF": "DnsResolutionFailed", "DO": "DropOverload", "UDO": "UnconditionalDropOverload",
	"DR": "DownstreamRemoteReset", "NFCF": "NoFilterConfigFound", "RFCF": "ResponseFromCacheFilter",
}

// explainOne runs Explain and checks every finding against the quality bar.
func explainOne(t *testing.T, in string) []Finding {
	t.Helper()
	r, err := Explain(in, fxNow)
	if err != nil {
		t.Fatalf("Explain(%q): %v", in, err)
	}
	for _, f := range r.Findings {
		fxCheck(t, f, false)
	}
	return r.Findings
}

func TestExplainEveryResponseFlag(t *testing.T) {
	want := map[string]Code{
		"UH": CodeNoHealthyUpstream, "UF": CodeConnectFailure, "UO": CodePendingOverflow, "URX": CodeRetriesExhausted,
		"UT": CodeUpstreamTimeout, "UC": CodeKeepAliveRace, "UR": CodeRemoteReset, "LR": CodeLocalReset,
		"DC": CodeDownstreamGaveUp, "NR": CodeNoRoute, "NC": CodeNoCluster, "UPE": CodeProtocolError,
		"SI": CodeStreamIdleTimeout, "RL": CodeRateLimited,
	}
	for short, long := range allResponseFlags {
		if !envoyadmin.IsKnownResponseFlag(short) {
			t.Errorf("%s: not a flag envoyadmin knows", short)
		}
		for _, in := range []string{short, long} {
			fs := explainOne(t, in)
			if len(fs) != 1 || fs[0].Code != string(flagKnowledge[short].code) {
				t.Errorf("Explain(%q) = %v, want one %s finding", in, fxCodes(fs), flagKnowledge[short].code)
				continue
			}
			if c, ok := want[short]; ok && fs[0].Code != string(c) {
				t.Errorf("Explain(%q) = %s, want %s", in, fs[0].Code, c)
			}
			if fs[0].Fix.Summary == "" || !strings.Contains(fs[0].Evidence[0].Text, long) {
				t.Errorf("Explain(%q): fix %q evidence %+v", in, fs[0].Fix.Summary, fs[0].Evidence)
			}
		}
	}
	for flag := range flagKnowledge {
		if _, ok := allResponseFlags[flag]; !ok {
			t.Errorf("flagKnowledge has %s, which Envoy does not define", flag)
		}
	}
}

// TestExplainFlagLists covers flags and the words users copy out of a log line together.
func TestExplainFlagLists(t *testing.T) {
	for in, want := range map[string][]string{
		"UH,URX":               {"MESH0501", "MESH0601"},
		"UF URX":               {"MESH0204", "MESH0601"},
		"NoHealthyUpstream,UH": {"MESH0501"},
		"503 UC upstream_reset_before_response_started{connection_termination}":                    {"MESH0401"},
		"UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}": {"MESH0201"},
		"403 - rbac_access_denied_matched_policy[none]":                                            {"MESH0804"},
	} {
		if got := fxCodes(explainOne(t, in)); !reflect.DeepEqual(got, want) {
			t.Errorf("Explain(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestExplainResetReasons(t *testing.T) {
	const body = "upstream connect error or disconnect/reset before headers. "
	cases := map[string]Code{
		"reset reason: local connection failure":    CodeConnectFailure,
		"reset reason: remote connection failure":   CodeConnectFailure,
		"reset reason: connection failure":          CodeConnectFailure,
		"reset reason: connection timeout":          CodeConnectTimeout,
		"reset reason: connection termination":      CodeKeepAliveRace,
		"reset reason: local reset":                 CodeLocalReset,
		"reset reason: local refused stream reset":  CodeLocalReset,
		"reset reason: remote refused stream reset": CodeRemoteReset,
		"reset reason: overflow":                    CodePendingOverflow,
		"reset reason: remote reset":                CodeRemoteReset,
		"reset reason: protocol error":              CodeProtocolError,
		"reset reason: overload manager reset":      CodeLoadShed,
		"reset reason: remote connection failure, transport failure reason: delayed connect error: 111":                                                                                 CodeConnectRefused,
		"reset reason: remote connection failure, transport failure reason: delayed connect error: 110":                                                                                 CodeConnectTimeout,
		"reset reason: remote connection failure, transport failure reason: delayed connect error: 113":                                                                                 CodeConnectTimeout,
		"retried and the latest reset reason: connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end": CodeTLSHandshakeErrors,
		"reset reason: connection failure, transport failure reason: TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end":                             CodeTLSModeMismatch,
	}
	for reason := range resetKnowledge {
		if _, ok := cases["reset reason: "+reason]; !ok {
			t.Errorf("reset reason %q has no test", reason)
		}
	}
	for in, want := range cases {
		fs := explainOne(t, body+in)
		if len(fs) != 1 || fs[0].Code != string(want) {
			t.Errorf("%q: got %v, want %s", in, fxCodes(fs), want)
			continue
		}
		if strings.Contains(in, "retried") && !strings.Contains(fs[0].Explanation, "retried") {
			t.Errorf("%q: explanation does not say it was retried: %s", in, fs[0].Explanation)
		}
	}
	// Pasted inside curl output, with the reset reason.
	fs := explainOne(t, "< HTTP/1.1 503 Service Unavailable\n< content-length: 91\n<\nupstream connect error or disconnect/reset before headers. reset reason: connection termination")
	if got := fxCodes(fs); !reflect.DeepEqual(got, []string{"MESH0401"}) {
		t.Errorf("curl paste: %v", got)
	}
}

func TestExplainTransportFailures(t *testing.T) {
	for tf, want := range map[string]Code{
		"delayed connect error: 111": CodeConnectRefused,
		"delayed_connect_error:_111": CodeConnectRefused,
		"delayed connect error: 110": CodeConnectTimeout,
		"delayed connect error: 113": CodeConnectTimeout,
		"delayed connect error: 104": CodeConnectFailure,
		"TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end": CodeTLSHandshakeErrors,
		"TLS_error:_268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER":                    CodeTLSModeMismatch,
		"TLS_error:|268436502:SSL_routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_REQUIRED":        CodeTLSModeMismatch,
	} {
		k, ok := transportKnowledge(tf, newExplainCtx(fxReviews, ""))
		if !ok || k.code != want || k.meaning == "" || k.fix == nil {
			t.Errorf("transportKnowledge(%q) = %s %v, want %s", tf, k.code, ok, want)
		}
	}
	if _, ok := transportKnowledge("something else", explainCtx{}); ok {
		t.Error("an unknown transport failure was explained")
	}
}

func TestExplainDetails(t *testing.T) {
	for in, want := range map[string][]string{
		"via_upstream": {"MESH1801"},
		"upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}": {"MESH0201"},
		"upstream_reset_after_response_started{remote_reset}":                                   {"MESH0402"},
		"upstream_response_timeout":               {"MESH0101"},
		"upstream_per_try_timeout":                {"MESH0102"},
		"route_not_found":                         {"MESH0701"},
		"filter_chain_not_found":                  {"MESH0701"},
		"cluster_not_found":                       {"MESH0702"},
		"rbac_access_denied_matched_policy[none]": {"MESH0804"},
		"http1.codec_error":                       {"MESH0703"},
		"stream_idle_timeout":                     {"MESH0104"},
		"local_rate_limited":                      {"MESH0306"},
	} {
		if got := fxCodes(explainOne(t, in)); !reflect.DeepEqual(got, want) {
			t.Errorf("Explain(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestExplainRejectsWhatItCannotRead(t *testing.T) {
	for _, in := range []string{"", "   ", "hello world", "XYZ", "not_a_known_detail", "upstream_reset_before_response_started{gremlins}"} {
		r, err := Explain(in, fxNow)
		if err == nil {
			t.Errorf("Explain(%q) = %+v, want an error", in, r)
			continue
		}
		if !strings.Contains(err.Error(), "access-log line") {
			t.Errorf("Explain(%q): error %q does not say what is accepted", in, err)
		}
	}
}

func TestExplainCapturedLines(t *testing.T) {
	var lines []string
	for _, l := range strings.Split(string(captures.Read(t, "access_log/github-issues-istio-error-flag-lines.log")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 5 {
		t.Fatalf("capture has %d lines, want 5", len(lines))
	}
	cases := []struct {
		line  string
		want  []string
		check func(t *testing.T, f Finding)
	}{
		{lines[0], []string{"MESH0401"}, func(t *testing.T, f Finding) {
			if f.Subject != ClusterSubject("outbound|80||health-api.production.svc.cluster.local") || !strings.Contains(f.Explanation, "keep-alive race") || !strings.Contains(f.Fix.YAML, "host: health-api.production.svc.cluster.local") {
				t.Errorf("%v: %s\n%s", f.Subject, f.Explanation, f.Fix.YAML)
			}
		}},
		{lines[1], []string{"MESH1801"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Fix.Command, "kubectl logs -n <namespace> <pod> -c <app-container>") || strings.Contains(f.Fix.Command, "127.0.0.1") {
				t.Errorf("fix %q", f.Fix.Command)
			}
		}},
		{lines[2], nil, nil}, // a PassthroughCluster TCP connection that ended normally
		{lines[3], nil, nil},
		{lines[4], []string{"MESH0101"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Explanation, "gRPC") {
				t.Errorf("the UT with status 200 is not explained as gRPC: %s", f.Explanation)
			}
		}},
	}
	for _, tc := range cases {
		fs := explainOne(t, tc.line)
		if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
			t.Errorf("Explain(%.60q) = %v, want %v", tc.line, got, tc.want)
			continue
		}
		if tc.check != nil {
			tc.check(t, fs[0])
		}
	}
	// The whole file at once: each line's explanation, once each.
	if got := fxCodes(explainOne(t, strings.Join(lines, "\n"))); !reflect.DeepEqual(got, []string{"MESH0101", "MESH0401", "MESH1801"}) {
		t.Errorf("whole capture: %v", got)
	}
}

func TestExplainOtherLineFormats(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       []string
	}{
		{"JSON line: refused connect, retried", `{"start_time":"2026-01-15T11:59:00.000Z","method":"GET","path":"/x","response_code":503,"response_flags":"UF,URX","response_code_details":"upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111}","upstream_transport_failure_reason":"delayed connect error: 111","upstream_cluster":"outbound|9080||reviews.default.svc.cluster.local","upstream_host":"10.0.0.5:9080","duration":3}`, []string{"MESH0201", "MESH0601"}},
		{"no filter chain: the table's NR and the MTLSRule's hedged mismatch", fxFilterChainNotFound, []string{"MESH0701", "MESH0802"}},
		{"a successful request explains nothing", fxIstioLine(200, "-", "via_upstream", "-", fxReviews, "10.0.0.5:9080", 3, 2), nil},
		{"Istio 1.3 line with a transport failure and no details", `[2020-11-22T20:04:32.765Z] "GET /products HTTP/1.1" 503 UF "-" "delayed connect error: 111" 0 91 1 - "-" "curl" "id" "svc:8080" "10.0.0.5:8080" outbound|8080||products.default.svc.cluster.local - 10.0.0.6:8080 10.0.0.7:37035 - default`, []string{"MESH0201"}},
	} {
		fs := explainOne(t, tc.line)
		if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		for _, f := range fs {
			if f.Rule == "" {
				t.Errorf("%s: %s has no rule name", tc.name, f.Code)
			}
		}
	}
}

func TestExplainCodesAreInTheCatalog(t *testing.T) {
	for _, c := range explainCodes() {
		if info, ok := catalogByCode[c]; !ok || info.Retired {
			t.Errorf("Explain can report %s, which is not an active catalog code", c)
		}
	}
}
