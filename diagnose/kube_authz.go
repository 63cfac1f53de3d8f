package diagnose

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationPolicy is the part of a security.istio.io AuthorizationPolicy the ambient rules
// read: whom it selects, and whether its rules use HTTP attributes, which ztunnel cannot match.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		TargetRef  map[string]any   `json:"targetRef"`
		TargetRefs []map[string]any `json:"targetRefs"`
		Action     string           `json:"action"`
		Rules      []struct {
			From []struct {
				Source map[string]any `json:"source"`
			} `json:"from"`
			To []struct {
				Operation map[string]any `json:"operation"`
			} `json:"to"`
			When []struct {
				Key string `json:"key"`
			} `json:"when"`
		} `json:"rules"`
	} `json:"spec"`
	Status struct {
		Conditions []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

// AtZtunnel reports whether ztunnel enforces the policy for pods of namespace ns with labels:
// a policy with targetRefs is a waypoint's; one with a selector binds the pods it selects in its
// namespace; one without binds its namespace, or every namespace from the root namespace.
func (p *AuthorizationPolicy) AtZtunnel(ns string, labels map[string]string) bool {
	if p.Spec.TargetRef != nil || len(p.Spec.TargetRefs) > 0 {
		return false
	}
	var match map[string]string
	if p.Spec.Selector != nil {
		match = p.Spec.Selector.MatchLabels
	}
	return selects(p.Namespace, match, ns, labels)
}

// httpOperationFields and httpSourceFields are the fields ztunnel cannot match, as istiod lists
// them when it sends the policy to ztunnel without them (pilot's ambient authorization.go).
var (
	httpOperationFields = []string{"hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"}
	httpSourceFields    = []string{"requestPrincipals", "notRequestPrincipals"}
)

// HTTPAttributes are the HTTP attributes its rules use, sorted: the operation's hosts, methods
// and paths, the source's request principals, and conditions on request.* keys.
func (p *AuthorizationPolicy) HTTPAttributes() []string {
	var out []string
	add := func(s string) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, r := range p.Spec.Rules {
		for _, to := range r.To {
			for _, f := range httpOperationFields {
				if v, ok := to.Operation[f].([]any); ok && len(v) > 0 {
					add(f)
				}
			}
		}
		for _, from := range r.From {
			for _, f := range httpSourceFields {
				if v, ok := from.Source[f].([]any); ok && len(v) > 0 {
					add(f)
				}
			}
		}
		for _, w := range r.When {
			if strings.HasPrefix(w.Key, "request.") {
				add("when " + w.Key)
			}
		}
	}
	slices.Sort(out)
	return out
}

// ZtunnelCondition is istiod's ZtunnelAccepted condition on the policy, when it wrote one.
func (p *AuthorizationPolicy) ZtunnelCondition() (metav1.Condition, bool) {
	for _, c := range p.Status.Conditions {
		if c.Type == "ZtunnelAccepted" {
			return c, true
		}
	}
	return metav1.Condition{}, false
}
