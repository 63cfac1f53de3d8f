package diagnose

import (
	"fmt"

	"istio.io/api/annotation"
	"istio.io/api/label"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// The values of the label and annotation (istio.io/api label and annotation) that decide
// whether the ambient mesh takes a pod's traffic.
const (
	dataplaneAmbient   = "ambient"
	dataplaneNone      = "none"
	redirectionEnabled = "enabled"
	redirectionPending = "pending"
)

var ambientEnrollmentSource = FilePod + " metadata.annotations[" + annotation.AmbientRedirection.Name + "]"

// AmbientRule explains a pod of the ambient mesh: whether the mesh takes its traffic (a pod
// its namespace or itself asks for ambient, which istio-cni has not marked redirected), and what
// the ztunnel on its node logged about its connections.
type AmbientRule struct{}

// Meta describes the rule.
func (AmbientRule) Meta() RuleMeta {
	codes := []Code{CodeAmbientNotEnrolled, CodeWaypointMissing, CodeZtunnelUnawareOfPod, CodeL7PolicyAtZtunnel, CodeProxyThrottled}
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
	out := append(enrollment(s), waypointFindings(s)...)
	out = append(out, ztunnelViewFindings(s)...)
	out = append(out, l7PolicyFindings(s)...)
	out = append(out, ztunnelThrottling(s)...)
	return append(out, withMetrics(ztunnelLogFindings(s), s)...)
}

// enrollment reports a pod that should be enrolled and is not.
func enrollment(s *Snapshot) []Finding {
	p := s.Pod
	if evidence.HasSidecar(p) || p.Spec.HostNetwork {
		return nil // a sidecar serves it; a host-network pod is never redirected
	}
	podMode, nsMode := p.Labels[label.IoIstioDataplaneMode.Name], s.Meta.NamespaceLabels[label.IoIstioDataplaneMode.Name]
	if podMode == dataplaneNone || podMode != dataplaneAmbient && nsMode != dataplaneAmbient {
		return nil
	}
	red := p.Annotations[annotation.AmbientRedirection.Name]
	if red == redirectionEnabled {
		return nil
	}
	ns, pod := s.podRef()
	f := NewFinding(CodeAmbientNotEnrolled, Subject{Kind: SubjectPod, Name: ns + "/" + pod})
	asked := Evidence{Label: "asked for by", Text: label.IoIstioDataplaneMode.Name + "=" + podMode, Source: FilePod + " metadata.labels"}
	if podMode != dataplaneAmbient {
		asked = Evidence{Label: "asked for by its namespace", Text: label.IoIstioDataplaneMode.Name + "=" + nsMode, Source: FileMeta + " namespaceLabels"}
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

// ztunnelLogFindings explain what the ztunnel on an ambient pod's node logged about it.
func ztunnelLogFindings(s *Snapshot) []Finding {
	return ztunnelFindings(s.Ztunnel, func(line int) string { return fmt.Sprintf("%s line %d", FileZtunnelLog, line) })
}

// boundWaypoint is the waypoint an ambient pod's traffic is bound to, and what binds it: the
// istio.io/use-waypoint label (with istio.io/use-waypoint-namespace) of the pod, else of a
// Service that selects it, else of the namespace; "none" opts out.
func boundWaypoint(s *Snapshot) (ns, name, by string) {
	p := s.Pod
	pick := func(labels map[string]string, what string) bool {
		if n := labels[label.IoIstioUseWaypoint.Name]; n != "" {
			ns, name, by = orDefault(labels[label.IoIstioUseWaypointNamespace.Name], p.Namespace), n, what
			return true
		}
		return false
	}
	if pick(p.Labels, "the pod's label") {
		return
	}
	for _, svc := range s.Services {
		if pick(svc.Labels, "the label of Service "+svc.Name) {
			return
		}
	}
	pick(s.Meta.NamespaceLabels, "its namespace's label")
	return
}

// waypointFindings report the waypoint an ambient pod's traffic is bound to when the capture
// read the namespace's waypoints and it is not among them, or istiod has not programmed it.
func waypointFindings(s *Snapshot) []Finding {
	p := s.Pod
	if evidence.HasSidecar(p) || s.Istio == nil {
		return nil
	}
	ns, name, by := boundWaypoint(s)
	if name == "" || name == "none" || ns != p.Namespace {
		return nil // no waypoint, or one in a namespace whose waypoints the capture did not read
	}
	bound := Evidence{Label: "bound by " + by, Text: label.IoIstioUseWaypoint.Name + "=" + name, Source: FilePod + " / " + FileServices + " / " + FileMeta + " labels"}
	var found *Waypoint
	for i := range s.Istio.Waypoints {
		if w := &s.Istio.Waypoints[i]; w.Namespace == ns && w.Name == name {
			found = w
		}
	}
	f := NewFinding(CodeWaypointMissing, Subject{Kind: SubjectPod, Name: p.Namespace + "/" + p.Name})
	wns, wname := ns, name
	if !kubeName(wns) || !kubeName(wname) {
		wns, wname = "NAMESPACE", "NAME"
	}
	switch {
	case found == nil:
		f.Title = fmt.Sprintf("The waypoint %s/%s its traffic is bound to does not exist", ns, name)
		f.Evidence = []Evidence{bound, {Label: "waypoints (Gateways of class istio-waypoint) in " + ns, Value: float64(len(s.Istio.Waypoints)), Unit: UnitCount, Source: FileIstio}}
		f.Explanation = "The traffic bound to a waypoint goes through it, and ztunnel has no waypoint of that name to send it to: connections fail (ztunnel logs \"unknown waypoint\" or \"no healthy upstream\"). The label names a waypoint that was never made, was deleted, or lives in another namespace than istio.io/use-waypoint-namespace says."
		f.Fix = Fix{Summary: "Create the waypoint, or fix or remove the label that binds the traffic to it.", Command: fmt.Sprintf("kubectl mesh waypoint %s --name %s", wns, wname)}
	default:
		ok, why := found.Programmed()
		if ok {
			return nil
		}
		if why == "" {
			why = "istiod has written no Programmed condition (is it running, in ambient mode?)"
		}
		f.Title = fmt.Sprintf("The waypoint %s/%s its traffic is bound to is not programmed", ns, name)
		f.Evidence = []Evidence{bound, {Label: "Programmed", Text: why, Source: FileIstio + " Gateway " + ns + "/" + name + " status.conditions"}}
		f.Explanation = "istiod has not made the waypoint ready (its Programmed condition is not true), so traffic bound to it has nowhere to go until it is. AddressNotUsable or AddressNotAssigned mean its Service or Deployment is not there yet; a waypoint that stays so has pods that do not start."
		f.Fix = Fix{Summary: "See why in the Gateway's status and its Deployment's pods.", Command: fmt.Sprintf("kubectl describe gateway -n %s %s\nkubectl get pods -n %s -l gateway.networking.k8s.io/gateway-name=%s", wns, wname, wns, wname)}
	}
	return []Finding{f}
}

// ServingWaypoint is the waypoint that serves an ambient pod's traffic, as namespace and name,
// when one is bound and the capture found it programmed; "" otherwise.
func (s *Snapshot) ServingWaypoint() (ns, name string) {
	if s.Pod == nil || evidence.HasSidecar(s.Pod) || s.Istio == nil {
		return "", ""
	}
	ns, name, _ = boundWaypoint(s)
	if name == "" || name == "none" {
		return "", ""
	}
	for i := range s.Istio.Waypoints {
		if w := &s.Istio.Waypoints[i]; w.Namespace == ns && w.Name == name {
			if ok, _ := w.Programmed(); ok {
				return ns, name
			}
		}
	}
	return "", ""
}
