package diagnose

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// The fixes the rules and Explain print must agree with each other and be right to apply as
// written: one keep-alive idle timeout, Istio's retryOn spelled the VirtualService way, and
// VirtualServices that say they replace the user's own.

// TestKeepAliveFixSameInExplainAndRule: explain suggested idleTimeout 30s, which fixes neither
// Node.js (5s) nor gunicorn (2s), while why-slow suggested 4s.
func TestKeepAliveFixSameInExplainAndRule(t *testing.T) {
	fs := explainOne(t, "upstream connect error or disconnect/reset before headers. reset reason: connection termination")
	if len(fs) != 1 || fs[0].Code != string(CodeKeepAliveRace) {
		t.Fatalf("findings %v, want one %s", fxCodes(fs), CodeKeepAliveRace)
	}
	explained := fs[0].Fix

	race := upHealthyInterval()
	setCounter(race, upReviews, "upstream_cx_destroy_remote_with_active_rq", 20, 9)
	found := UpstreamResetRule{}.Check(race)
	if len(found) != 1 {
		t.Fatalf("rule findings:\n%s", upSummary(found))
	}
	rule := found[0].Fix

	for name, fix := range map[string]Fix{"explain": explained, "MESH0401 rule": rule} {
		if !strings.Contains(fix.YAML, "idleTimeout: 4s") || strings.Contains(fix.YAML, "30s") {
			t.Errorf("%s YAML does not suggest idleTimeout 4s:\n%s", name, fix.YAML)
		}
		if !strings.Contains(fix.YAML, keepAliveTrafficPolicy()) {
			t.Errorf("%s YAML does not use the shared trafficPolicy:\n%s", name, fix.YAML)
		}
		if !strings.Contains(fix.Summary, keepAliveIdleAdvice) || !strings.Contains(fix.Summary, "gunicorn") {
			t.Errorf("%s summary does not give the shared advice: %s", name, fix.Summary)
		}
	}
}

func TestVirtualServiceRetryOn(t *testing.T) {
	cases := []struct {
		retryOn string
		codes   []uint32
		want    string
	}{
		{istioDefaultRetryOn, []uint32{503}, "connect-failure,refused-stream,unavailable,cancelled,503"},
		{"5xx,retriable-status-codes", []uint32{502, 504}, "5xx,502,504"},
		{"retriable-status-codes,connect-failure", []uint32{503, 503}, "connect-failure,503"},
		// Envoy ignores codes without the condition; the translation does too.
		{"connect-failure", []uint32{503}, "connect-failure"},
		{"gateway-error, reset", nil, "gateway-error,reset"},
		{"", nil, "connect-failure,refused-stream,unavailable,cancelled,503"},
	}
	for _, tc := range cases {
		if got := virtualServiceRetryOn(tc.retryOn, tc.codes); got != tc.want {
			t.Errorf("virtualServiceRetryOn(%q, %v) = %q, want %q", tc.retryOn, tc.codes, got, tc.want)
		}
	}
	if istioDefaultRetryWords != "connect-failure, refused-stream, unavailable, cancelled and 503" {
		t.Errorf("istioDefaultRetryWords = %q", istioDefaultRetryWords)
	}
}

// TestPerTryTimeoutFixKeepsRetriableCodes: the fix wrote Envoy's retry_on into the
// VirtualService, where retriable-status-codes without codes retries no status: applying it
// stopped retrying 503s.
func TestPerTryTimeoutFixKeepsRetriableCodes(t *testing.T) {
	s := upHealthy()
	s.Config.Routes[0].Retry = &envoyadmin.RetryPolicy{RetryOn: istioDefaultRetryOn, NumRetries: 2, PerTryTimeout: 200 * time.Millisecond, RetriableStatusCodes: []uint32{503}}
	setCounter(s, upReviews, "upstream_rq_per_try_timeout", 30, 0)
	setP99(s, upReviews, 250)
	var fix string
	for _, f := range (TimeoutRule{}).Check(s) {
		if f.Code == string(CodePerTryTimeout) {
			fix = f.Fix.YAML
		}
	}
	if !strings.Contains(fix, "retryOn: connect-failure,refused-stream,unavailable,cancelled,503\n") && !strings.HasSuffix(fix, "retryOn: connect-failure,refused-stream,unavailable,cancelled,503") {
		t.Errorf("per-try fix does not carry the 503 in retryOn:\n%s", fix)
	}
	if strings.Contains(fix, "retriable-status-codes") {
		t.Errorf("per-try fix writes Envoy's retriable-status-codes into a VirtualService:\n%s", fix)
	}
}

// TestIstioDefaultRetryOnOneConstant: Istio's default retry conditions are spelled in one place.
func TestIstioDefaultRetryOnOneConstant(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "rule_retries.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, spelled := range []string{"connect-failure,refused-stream", "connect-failure, refused-stream"} {
			if strings.Contains(string(b), spelled) {
				t.Errorf("%s spells Istio's default retry conditions (%q) instead of using istioDefaultRetryOn", f, spelled)
			}
		}
	}
}

// TestVirtualServiceFixesSayTheyReplace: a VirtualService fix has one catch-all route; applied
// as written it replaces the user's VirtualService, so it must say to merge instead, and stay
// valid YAML.
func TestVirtualServiceFixesSayTheyReplace(t *testing.T) {
	belowTail := upHealthyInterval()
	belowTail.Config.Routes[0].Timeout = dur(time.Second)
	setCounter(belowTail, upReviews, "upstream_rq_timeout", 10, 15)
	setP99(belowTail, upReviews, 1500)
	var ruleYAML string
	for _, f := range (TimeoutRule{}).Check(belowTail) {
		if f.Code == string(CodeUpstreamTimeout) {
			ruleYAML = f.Fix.YAML
		}
	}
	explained := explainOne(t, "UT")[0].Fix.YAML
	for name, y := range map[string]string{"MESH0101 rule": ruleYAML, "explain UT": explained, "VirtualServiceYAML": VirtualServiceYAML("reviews.default.svc.cluster.local", "    timeout: 3s\n")} {
		first, _, _ := strings.Cut(y, "\n")
		if !strings.HasPrefix(first, "# If a VirtualService for ") || !strings.Contains(first, "merge") || !strings.Contains(first, "replaces") {
			t.Errorf("%s: first line %q does not say to merge into an existing VirtualService", name, first)
		}
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(y), &doc); err != nil {
			t.Errorf("%s: not valid YAML: %v\n%s", name, err, y)
			continue
		}
		if doc["kind"] != "VirtualService" {
			t.Errorf("%s: kind %v", name, doc["kind"])
		}
	}
	if !strings.Contains(ruleYAML, "VirtualService for reviews.default.svc.cluster.local exists") {
		t.Errorf("the rule's comment does not name the host:\n%s", ruleYAML)
	}
}
