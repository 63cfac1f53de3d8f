package diagnose

import (
	"fmt"
	"slices"
	"strings"

	"istio.io/api/annotation"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// ztunnelViewFindings compare an enrolled ambient pod with what the ztunnel on its node knows
// of it (ztunnel_config_dump.json): absent from its workload list, known as plaintext TCP
// rather than captured HBONE, without an in-pod proxy, or without a certificate it could get.
func ztunnelViewFindings(s *Snapshot) []Finding {
	p, d := s.Pod, s.ZtunnelDump
	if d == nil || evidence.HasSidecar(p) || p.Annotations[annotation.AmbientRedirection.Name] != redirectionEnabled {
		return nil
	}
	subject := Subject{Kind: SubjectPod, Name: p.Namespace + "/" + p.Name}
	zt := orDefault(s.Meta.Ztunnel, "the ztunnel on its node")
	src := FileZtunnelDump
	f := NewFinding(CodeZtunnelUnawareOfPod, subject)
	f.Fix = Fix{Summary: "Check that istiod reaches " + zt + " (its log: xDS errors) and what ztunnel knows of the pod.", Command: "istioctl ztunnel-config workloads --workload-namespace " + shellQuote(p.Namespace)}
	w := d.Workload(p.Namespace, p.Name)
	switch {
	case w == nil:
		f.Title = "ztunnel does not know the pod: it is not in its workload list"
		f.Evidence = []Evidence{{Label: "workloads " + zt + " knows", Value: float64(len(d.Workloads)), Unit: UnitCount, Source: src + " workloads"}}
		f.Explanation = "istio-cni marked the pod redirected, but istiod has not sent it to the ztunnel on its node: connections from it fail (\"unknown source\", \"failed to fetch information about local workload\") and to it as an unknown destination. istiod out of reach from ztunnel, or a pod istiod does not see as ambient, does this."
	case w.Protocol != "" && w.Protocol != "HBONE":
		f.Title = "ztunnel does not capture the pod: its workload's protocol is " + w.Protocol
		f.Evidence = []Evidence{{Label: "protocol of the pod's workload", Text: w.Protocol, Source: src + " workloads " + p.Namespace + "/" + p.Name}}
		f.Explanation = "istio-cni marked the pod redirected, but the workload istiod sent for it says TCP, not HBONE: its peers send it plaintext, outside the mesh, and policies that need its identity cannot apply. istiod decides by the pod's and namespace's labels: it does not see the pod as ambient."
	case w.Node != "" && p.Spec.NodeName != "" && w.Node != p.Spec.NodeName:
		return nil // a dump of another node's ztunnel: the pod's proxy and certificate are not in it
	default:
		return append(proxyFinding(s, subject, zt), certFindingFromZtunnel(s, subject, zt, w.ServiceAccount)...)
	}
	return []Finding{f}
}

// proxyFinding reports a pod of this node whose in-pod proxy is not up.
func proxyFinding(s *Snapshot, subject Subject, zt string) []Finding {
	p := s.Pod
	if len(s.ZtunnelDump.WorkloadState) == 0 {
		return nil // an older dump, or one without in-pod proxies
	}
	st, ok := s.ZtunnelDump.Proxy(p.Namespace, p.Name)
	if ok && st.State == "Up" {
		return nil
	}
	state := "none"
	if ok {
		state = st.State
	}
	f := NewFinding(CodeAmbientNotEnrolled, subject)
	f.Title = "ztunnel runs no proxy for the pod, which istio-cni marked redirected"
	f.Evidence = []Evidence{{Label: "in-pod proxy of " + zt, Text: state, Source: FileZtunnelDump + " workloadState"}}
	f.Explanation = "istio-cni redirected the pod's traffic to ztunnel, but ztunnel has no proxy up in the pod's network namespace (Pending or absent): its connections fail until it has. ztunnel's log says why it could not start one (for example its DNS proxy failing to bind)."
	f.Fix = Fix{Summary: "Read why in ztunnel's log (kubectl mesh why-slow reads it too), fix it, then restart the pod."}
	return []Finding{f}
}

// certFindingFromZtunnel reports the pod's identity's certificate ztunnel could not get.
func certFindingFromZtunnel(s *Snapshot, subject Subject, zt, serviceAccount string) []Finding {
	if serviceAccount == "" {
		return nil
	}
	c, ok := s.ZtunnelDump.Certificate(s.Pod.Namespace, serviceAccount)
	if !ok || !strings.HasPrefix(c.State, "Unavailable") || strings.Contains(c.State, "no longer needed") {
		return nil // Available, Initializing, or dropped with its last workload
	}
	f := NewFinding(CodeCertUnobtainable, subject)
	f.Title = "ztunnel holds no certificate for the pod's identity"
	f.Evidence = []Evidence{{Label: fmt.Sprintf("certificate of %s in %s", c.Identity, zt), Text: clip(c.State, 300), Source: FileZtunnelDump + " certificates"}}
	f.Explanation = ztunnelKnowledge[ztunnel.IdentityFailed].meaning
	f.Fix = ztunnelKnowledge[ztunnel.IdentityFailed].fix(ztCtx{})
	return []Finding{f}
}

// l7PolicyFindings report the AuthorizationPolicies ztunnel enforces for an ambient pod that
// use HTTP attributes: istiod sends them to ztunnel without those rules, so an ALLOW refuses
// what they would have allowed, a DENY with other rules refuses more, and a DENY of HTTP rules
// alone does nothing.
func l7PolicyFindings(s *Snapshot) []Finding {
	p := s.Pod
	if s.Istio == nil || evidence.HasSidecar(p) {
		return nil
	}
	var out []Finding
	for i := range s.Istio.AuthorizationPolicies {
		pol := &s.Istio.AuthorizationPolicies[i]
		attrs := pol.HTTPAttributes()
		if len(attrs) == 0 || !pol.AtZtunnel(p.Namespace, p.Labels) {
			continue
		}
		f := NewFinding(CodeL7PolicyAtZtunnel, Subject{Kind: SubjectPod, Name: p.Namespace + "/" + p.Name})
		action := orDefault(pol.Spec.Action, "ALLOW")
		f.Title = fmt.Sprintf("AuthorizationPolicy %s/%s (%s) has HTTP rules, which ztunnel cannot enforce", pol.Namespace, pol.Name, action)
		f.Evidence = []Evidence{{Label: "HTTP attributes in its rules", Text: strings.Join(attrs, ", "), Source: FileIstio + " AuthorizationPolicy " + pol.Namespace + "/" + pol.Name}}
		if c, ok := pol.ZtunnelCondition(); ok {
			f.Evidence = append(f.Evidence, Evidence{Label: "istiod's ZtunnelAccepted condition", Text: clip(c.Reason+": "+c.Message, 300), Source: FileIstio + " status.conditions"})
		}
		switch {
		case strings.EqualFold(action, "DENY") && denyOnlyHTTP(pol):
			f.Severity = SeverityWarning
			f.Explanation = "The policy binds the pod at ztunnel (a selector, or none: not targetRefs), and ztunnel matches connections, not requests: istiod sends it the policy without its HTTP rules, and this DENY has no other rule left, so it denies nothing. The requests it was written to refuse get through."
		case strings.EqualFold(action, "DENY"):
			f.Explanation = "The policy binds the pod at ztunnel (a selector, or none: not targetRefs), and ztunnel matches connections, not requests: istiod sends it the policy without its HTTP rules, so this DENY refuses whole connections its other rules match, whatever their requests. It refuses more than it says."
		default:
			f.Explanation = "The policy binds the pod at ztunnel (a selector, or none: not targetRefs), and ztunnel matches connections, not requests: istiod sends it the policy without the rules that match HTTP attributes, so connections only those rules allowed are refused (the caller sees a reset, not a 403). It allows less than it says."
		}
		ns := p.Namespace
		if !kubeName(ns) {
			ns = "NAMESPACE"
		}
		f.Fix = Fix{Summary: "Enforce the HTTP rules at a waypoint: give the namespace one and bind the policy to it with targetRefs (kind: Gateway, name: the waypoint) instead of a selector, or drop the HTTP attributes from a policy ztunnel enforces.",
			Command: fmt.Sprintf("kubectl mesh waypoint %s\nkubectl get authorizationpolicy -n %s %s -o yaml", ns, ns, shellQuote(pol.Name))}
		out = append(out, f)
	}
	return out
}

// denyOnlyHTTP reports a policy each of whose rules uses HTTP attributes only: without them
// it matches nothing.
func denyOnlyHTTP(pol *AuthorizationPolicy) bool {
	for _, r := range pol.Spec.Rules {
		l4 := false
		for _, from := range r.From {
			for k := range from.Source {
				l4 = l4 || !slices.Contains(httpSourceFields, k)
			}
		}
		for _, to := range r.To {
			for k := range to.Operation {
				l4 = l4 || !slices.Contains(httpOperationFields, k)
			}
		}
		for _, w := range r.When {
			l4 = l4 || !strings.HasPrefix(w.Key, "request.")
		}
		if l4 {
			return false
		}
	}
	return true
}
