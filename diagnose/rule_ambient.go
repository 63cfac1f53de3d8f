package diagnose

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// The labels and annotation that decide whether the ambient mesh takes a pod's traffic
// (istio/api label/labels.yaml and annotation/annotations.yaml at 1.30.3).
const (
	labelDataplaneMode      = "istio.io/dataplane-mode"      // ambient, or none to opt a pod out
	annotationRedirection   = "ambient.istio.io/redirection" // set by istio-cni: enabled, or pending
	dataplaneAmbient        = "ambient"
	dataplaneNone           = "none"
	redirectionEnabled      = "enabled"
	redirectionPending      = "pending"
	sidecarContainerName    = "istio-proxy"
	ambientEnrollmentSource = FilePod + " metadata.annotations[" + annotationRedirection + "]"
)

// AmbientRule explains a pod of the ambient mesh: whether the mesh takes its traffic (a pod
// its namespace or itself asks for ambient, which istio-cni has not marked redirected), and what
// the ztunnel on its node logged about its connections.
type AmbientRule struct{}

// Meta describes the rule.
func (AmbientRule) Meta() RuleMeta {
	codes := []Code{CodeAmbientNotEnrolled}
	for _, k := range sortedKeys(ztunnelKnowledge) {
		codes = append(codes, ztunnelKnowledge[k].code)
	}
	return RuleMeta{
		Name:        "AmbientRule",
		Description: "For a pod without a sidecar: compares what asks for the ambient mesh (istio.io/dataplane-mode on the pod or its namespace) with istio-cni's mark on the pod (ambient.istio.io/redirection), and reads the lines of its node's ztunnel that name it (ztunnel.log): connections refused, timed out or blocked on HBONE's port 15008, rejected by policy, certificates ztunnel could not get or trust, istiod out of reach.",
		Codes:       codes,
		Needs:       []Input{InputPod},
	}
}

// Check reports a pod that should be enrolled and is not, and the ztunnel log's problems.
func (AmbientRule) Check(s *Snapshot) []Finding {
	return append(enrollment(s), ztunnelLogFindings(s)...)
}

// enrollment reports a pod that should be enrolled and is not.
func enrollment(s *Snapshot) []Finding {
	p := s.Pod
	if hasSidecarContainer(p) || p.Spec.HostNetwork {
		return nil // a sidecar serves it; a host-network pod is never redirected
	}
	podMode, nsMode := p.Labels[labelDataplaneMode], s.Meta.NamespaceLabels[labelDataplaneMode]
	if podMode == dataplaneNone || podMode != dataplaneAmbient && nsMode != dataplaneAmbient {
		return nil
	}
	red := p.Annotations[annotationRedirection]
	if red == redirectionEnabled {
		return nil
	}
	ns, pod := s.podRef()
	f := NewFinding(CodeAmbientNotEnrolled, Subject{Kind: SubjectPod, Name: ns + "/" + pod})
	asked := Evidence{Label: "asked for by", Text: labelDataplaneMode + "=" + podMode, Source: FilePod + " metadata.labels"}
	if podMode != dataplaneAmbient {
		asked = Evidence{Label: "asked for by its namespace", Text: labelDataplaneMode + "=" + nsMode, Source: FileMeta + " namespaceLabels"}
	}
	mark := red
	if mark == "" {
		mark = "(none)"
	}
	f.Evidence = []Evidence{asked, {Label: "istio-cni's mark on the pod", Text: mark, Source: ambientEnrollmentSource}}
	node := s.Pod.Spec.NodeName
	if !kubeName(node) {
		node = "<node>"
	}
	if red == redirectionPending {
		f.Explanation = "istio-cni set up the pod's redirection but no ztunnel accepted the pod (ambient.istio.io/redirection: pending): ztunnel on its node is not running, not ready, or cannot start the pod's proxy. Until it does, the pod's connections fail."
	} else {
		f.Explanation = "The pod is in an ambient namespace (or asks for ambient itself) but istio-cni never marked it redirected: its traffic bypasses the mesh, with no mTLS and no policy. istio-cni redirects a pod when it starts; a pod that started before the istio-cni agent was ready on its node, or before the namespace was labelled, stays out until it restarts."
	}
	f.Fix = Fix{
		Summary: fmt.Sprintf("Check that ztunnel and the istio-cni agent run and are ready on node %s, then restart the pod so istio-cni enrolls it.", node),
		Command: fmt.Sprintf("kubectl get pods -A -o wide --field-selector spec.nodeName=%[1]s -l app=ztunnel\nkubectl get pods -A -o wide --field-selector spec.nodeName=%[1]s -l k8s-app=istio-cni-node\nkubectl delete pod -n %[2]s %[3]s   # its controller recreates it, enrolled", shellQuote(node), ns, pod),
	}
	return []Finding{f}
}

func hasSidecarContainer(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == sidecarContainerName {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == sidecarContainerName && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return true
		}
	}
	return false
}

// ztunnelLogFindings explain what the ztunnel on an ambient pod's node logged about it.
func ztunnelLogFindings(s *Snapshot) []Finding {
	return ztunnelFindings(s.Ztunnel, func(line int) string { return fmt.Sprintf("%s line %d", FileZtunnelLog, line) })
}
