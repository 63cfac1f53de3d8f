package diagnose

import (
	"fmt"
	"strings"
)

// FilterDenialsRule reads the counters of the HTTP and network filters that refuse requests on
// purpose: RBAC (an AuthorizationPolicy), ext_authz, and the local and global rate limits. A
// refusal is not a failure of the upstream, and users who see 403s and 429s ask why.
type FilterDenialsRule struct{}

// Meta describes the rule.
func (FilterDenialsRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "FilterDenialsRule",
		Description: "Reads the RBAC, ext_authz and rate-limit filters' counters (rbac.denied, ext_authz.denied, rate_limited, ratelimit.over_limit): requests refused by policy.",
		Codes:       []Code{CodeAuthzDenied, CodeRateLimited},
		Needs:       []Input{InputStats},
	}
}

// filterDenial is a counter suffix of a filter that refuses requests.
type filterDenial struct {
	suffix, unless string
	within         string // a word the stat's name must hold too ("ratelimit")
	code           Code
	what           string
}

var filterDenials = []filterDenial{
	{suffix: "rbac_denied", unless: "shadow_denied", code: CodeAuthzDenied, what: "requests the RBAC filter denied (an AuthorizationPolicy)"},
	{suffix: "ext_authz_denied", code: CodeAuthzDenied, what: "requests the external authorization service denied"},
	{suffix: "ext_authz_error", code: CodeAuthzDenied, what: "requests refused because the external authorization service failed"},
	{suffix: "rate_limited", code: CodeRateLimited, what: "requests or connections a local rate limit refused"},
	{suffix: "ratelimit_over_limit", code: CodeRateLimited, what: "requests the global rate-limit service refused"},
	{suffix: "_over_limit", within: "ratelimit", code: CodeRateLimited, what: "requests or connections the global rate-limit service refused"},
	{suffix: "csrf_request_invalid", code: CodeAuthzDenied, what: "requests the CSRF filter refused (their origin does not match)"},
}

// Check runs the rule.
func (FilterDenialsRule) Check(s *Snapshot) []Finding {
	ss := s.latestStats()
	if ss == nil {
		return nil
	}
	byCode := map[Code]*Finding{}
	var order []Code
	for _, k := range sortedKeys(ss.Stats) {
		for _, d := range filterDenials {
			if !strings.HasSuffix(k, d.suffix) || (d.unless != "" && strings.HasSuffix(k, d.unless)) || !strings.Contains(k, d.within) {
				continue
			}
			m, ok := s.Counter(k)
			if !ok || m.Value <= 0 {
				continue
			}
			g := signal{m: m, ok: true}
			g.small, g.total = s.filterTotal(k, d.suffix, m)
			g.excerpt = !m.Interval && !s.hasFilterTotal(k, d.suffix)
			if !g.counted() {
				continue
			}
			f := byCode[d.code]
			if f == nil {
				nf := NewFinding(d.code, Subject{Kind: SubjectProxy, Name: proxyName(s)})
				f = &nf
				byCode[d.code] = f
				order = append(order, d.code)
				f.Severity = g.severity(f.Severity)
				f.Impact = g.impact(s)
			}
			f.Evidence = append(f.Evidence, g.evidence(s, fmt.Sprintf("%s (%s)", d.what, k), "")...)
			break // one reading of a counter
		}
	}
	var out []Finding
	for _, code := range order {
		f := byCode[code]
		switch code {
		case CodeAuthzDenied:
			f.Title = "A filter refuses requests by policy: RBAC (AuthorizationPolicy) or external authorization (403)"
			f.Explanation = "The proxy's authorization filters refused requests: an AuthorizationPolicy (Envoy's RBAC filter) whose rules the caller's identity, path or method do not match, or an external authorizer's decision. The caller gets 403 (\"RBAC: access denied\"); the upstream never sees the request."
			f.Fix = Fix{Summary: "Compare the callers' identities and requests with the AuthorizationPolicies that select this workload; a policy with ALLOW rules denies everything they do not match.", Command: "kubectl get authorizationpolicies -A\nistioctl x authz check <pod> -n <namespace>"}
		case CodeRateLimited:
			f.Title = "A rate limit refuses requests (429) or connections"
			f.Explanation = "A local rate limit (token bucket) or the global rate-limit service refused requests over their limit; callers get 429 (or a closed connection for a network rate limit)."
			f.Fix = Fix{Summary: "Raise the limit if the traffic is legitimate, or make callers back off.", Command: "kubectl get envoyfilters -A -o yaml | grep -B3 -A12 -i ratelimit"}
		}
		out = append(out, *f)
	}
	return out
}

func (s *Snapshot) hasFilterTotal(key, suffix string) bool {
	_, ok := s.Counter(filterPrefix(key, suffix) + "downstream_rq_total")
	return ok
}

func filterPrefix(key, suffix string) string {
	prefix := strings.TrimSuffix(key, suffix)
	if i := strings.Index(prefix, "rbac_"); i > 0 {
		prefix = prefix[:i]
	}
	return prefix
}

// filterTotal is the total a filter's refusals are judged against: the requests of the same
// connection manager (http.<prefix>.downstream_rq_total). Without it the stats are an excerpt.
func (s *Snapshot) filterTotal(key, suffix string, m Measure) (bool, Measure) {
	if m.Interval || m.Value >= minCumulativeEvents {
		return false, Measure{}
	}
	if tot, ok := s.Counter(filterPrefix(key, suffix) + "downstream_rq_total"); ok {
		return tot.Value > 0 && m.Value/tot.Value >= smallShare, tot
	}
	return true, Measure{}
}
