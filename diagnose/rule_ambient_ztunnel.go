package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// ztunnelViewFindings compare an enrolled ambient pod with what the ztunnel on its node knows
// of it (ztunnel_config_dump.json): absent from its workload list, known as plaintext TCP
// rather than captured HBONE, without an in-pod proxy, or without a certificate it could get.
func ztunnelViewFindings(s *Snapshot) []Finding {
	p, d := s.Pod, s.ZtunnelDump
	if d == nil || hasSidecarContainer(p) || p.Annotations[annotationRedirection] != redirectionEnabled {
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
