package diagnose

import (
	"fmt"
	"strings"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
)

// SidecarQoSRule checks what istio-proxy's resources do to the pod's QoS class: a sidecar whose
// requests differ from its limits turns a pod whose application containers are shaped for
// Guaranteed (requests equal to limits) into a Burstable one, and a sidecar without requests
// gets no reserved CPU or memory at all. The CPU limit itself is the SidecarRule's (MESH1401).
type SidecarQoSRule struct{}

// Meta describes the rule.
func (SidecarQoSRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "SidecarQoSRule",
		Description: "Checks whether istio-proxy's resources make a pod shaped for Guaranteed Burstable, or leave the proxy without requests.",
		Codes:       []Code{CodeSidecarLowersQoS},
		Needs:       []Input{InputPod},
	}
}

// Check runs the rule.
func (SidecarQoSRule) Check(s *Snapshot) []Finding {
	pod := s.Pod
	proxy, _ := istioProxyContainer(pod)
	if proxy == nil {
		return nil
	}
	apps := appContainers(pod)
	if len(apps) == 0 {
		return nil
	}
	src := "pod.yaml spec.containers[istio-proxy].resources"
	guaranteedApps := true
	for _, c := range apps {
		guaranteedApps = guaranteedApps && guaranteedShaped(c)
	}
	noRequests := proxy.Resources.Requests.Cpu().IsZero() && proxy.Resources.Requests.Memory().IsZero() &&
		proxy.Resources.Limits.Cpu().IsZero() && proxy.Resources.Limits.Memory().IsZero()
	subject := Subject{Kind: SubjectPod, Name: pod.Namespace + "/" + pod.Name}
	f := NewFinding(CodeSidecarLowersQoS, subject)
	f.Evidence = []Evidence{{Label: "istio-proxy resources", Text: resourcesText(proxy.Resources), Source: src}}
	for _, c := range apps {
		f.Evidence = append(f.Evidence, Evidence{Label: c.Name + " resources", Text: resourcesText(c.Resources), Source: "pod.yaml spec.containers[" + c.Name + "].resources"})
	}
	if pod.Status.QOSClass != "" {
		f.Evidence = append(f.Evidence, Evidence{Label: "pod QoS class", Text: string(pod.Status.QOSClass), Source: "pod.yaml status.qosClass"})
	}
	ann := map[string]string{}
	switch {
	case guaranteedApps && !guaranteedShaped(*proxy):
		f.Title = "istio-proxy makes a pod shaped for Guaranteed Burstable"
		f.Explanation = "Every application container sets requests equal to limits, which alone would make the pod Guaranteed, but istio-proxy's requests differ from its limits (or it has none), so the pod is Burstable. A Burstable pod gets no exclusive cores from the kubelet's static CPU manager and is evicted before Guaranteed pods when the node runs short of memory: what the application's resources were set for does not hold."
		cpu, mem := proxyLimitOrRequest(proxy, corev1.ResourceCPU, "500m"), proxyLimitOrRequest(proxy, corev1.ResourceMemory, "512Mi")
		ann[annotation.SidecarProxyCPU.Name], ann[annotation.SidecarProxyCPULimit.Name] = cpu, cpu
		ann["sidecar.istio.io/proxyMemory"], ann["sidecar.istio.io/proxyMemoryLimit"] = mem, mem
		f.Fix.Summary = "Give istio-proxy requests equal to its limits through the pod-template annotations (patching the template restarts the pods), so the pod is Guaranteed as its application containers intend."
	case noRequests:
		f.Severity = SeverityInfo
		f.Title = "istio-proxy has no resource requests"
		f.Explanation = "istio-proxy sets neither requests nor limits, so the scheduler reserves no CPU or memory for it: under load on a busy node Envoy competes for CPU with whatever runs there, which shows as latency in the proxy, and it is among the first to go when memory runs short. Istio's injection normally gives it 100m CPU and 128Mi; something (global.proxy.resources, an annotation or a custom template) removed them."
		ann[annotation.SidecarProxyCPU.Name], ann["sidecar.istio.io/proxyMemory"] = "100m", "128Mi"
		f.Fix.Summary = "Give istio-proxy requests through the pod-template annotations (patching the template restarts the pods)."
	default:
		return nil
	}
	f.Fix.Command = fmt.Sprintf("kubectl patch %s -n %s --patch-file proxy-resources.yaml    # the YAML below, saved", s.workloadRef(), pod.Namespace)
	f.Fix.YAML = podTemplateAnnotationsYAML(ann)
	return []Finding{f}
}

// appContainers returns the pod's containers other than istio-proxy.
func appContainers(pod *corev1.Pod) []corev1.Container {
	var out []corev1.Container
	for _, c := range pod.Spec.Containers {
		if c.Name != proxyContainer {
			out = append(out, c)
		}
	}
	return out
}

// guaranteedShaped reports whether a container's CPU and memory limits are set and its requests
// equal them (an unset request defaults to the limit), as the Guaranteed QoS class requires.
func guaranteedShaped(c corev1.Container) bool {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		limit, ok := c.Resources.Limits[r]
		if !ok || limit.IsZero() {
			return false
		}
		if req, ok := c.Resources.Requests[r]; ok && req.Cmp(limit) != 0 {
			return false
		}
	}
	return true
}

// proxyLimitOrRequest picks the value to make the proxy's request and limit equal: its limit,
// else its request, else def.
func proxyLimitOrRequest(c *corev1.Container, r corev1.ResourceName, def string) string {
	if q, ok := c.Resources.Limits[r]; ok && !q.IsZero() {
		return q.String()
	}
	if q, ok := c.Resources.Requests[r]; ok && !q.IsZero() {
		return q.String()
	}
	return def
}

// resourcesText prints requests and limits of CPU and memory in one line.
func resourcesText(r corev1.ResourceRequirements) string {
	var parts []string
	for _, x := range []struct {
		what string
		list corev1.ResourceList
	}{{"requests", r.Requests}, {"limits", r.Limits}} {
		var vals []string
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := x.list[name]; ok {
				vals = append(vals, string(name)+" "+q.String())
			}
		}
		if len(vals) > 0 {
			parts = append(parts, x.what+" "+strings.Join(vals, ", "))
		}
	}
	return orDefault(strings.Join(parts, "; "), "none")
}
