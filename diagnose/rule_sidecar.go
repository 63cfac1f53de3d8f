package diagnose

import (
	"fmt"
	"strings"
	"time"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
)

// Thresholds of the sidecar rule.
const (
	// sidecarStartGrace: a sidecar is not ready for its first seconds while istiod configures it.
	sidecarStartGrace = 30 * time.Second
	// oomRecent: an OOM kill older than this (lastState keeps it until the next restart) is
	// reported as a warning, not an error.
	oomRecent = 24 * time.Hour
	// proxyCPULimitWarnMillis: a CPU limit under one core throttles Envoy within each 100 ms
	// period as soon as a burst comes.
	proxyCPULimitWarnMillis = 1000
	// proxyCPULimitNoteMillis: from two cores on (what this project installs) a limit is left
	// unreported; between one and two cores it is a note.
	proxyCPULimitNoteMillis = 2000
)

const proxyContainer = "istio-proxy"

// SidecarRule checks the istio-proxy container in the pod: not ready, OOM-killed, or held back
// by a CPU limit. A pod without istio-proxy gets no finding from it: the other rules' evidence
// (no proxy stats, no config dump) and the capture's warnings already say the pod is not meshed,
// and a finding per missing sidecar would repeat that.
type SidecarRule struct{}

// Meta describes the rule.
func (SidecarRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "SidecarRule",
		Description: "Checks the istio-proxy container: not ready (with the reason from its state and the pod's events), OOM-killed, or with a CPU limit that throttles Envoy.",
		Codes:       []Code{CodeSidecarNotReady, CodeSidecarOOMKilled, CodeSidecarCPULimit},
		Needs:       []Input{InputPod},
	}
}

// Check runs the rule.
func (SidecarRule) Check(s *Snapshot) []Finding {
	pod := s.Pod
	c, st := istioProxyContainer(pod)
	if c == nil {
		return nil
	}
	var out []Finding
	if f, ok := sidecarNotReady(s, st); ok {
		out = append(out, f)
	}
	if f, ok := sidecarOOMKilled(s, c, st); ok {
		out = append(out, f)
	}
	if f, ok := sidecarCPULimit(s, c); ok {
		out = append(out, f)
	}
	return out
}

// istioProxyContainer finds istio-proxy as a container or as a native sidecar (an init
// container with restartPolicy Always), with its status when the pod has one.
func istioProxyContainer(pod *corev1.Pod) (*corev1.Container, *corev1.ContainerStatus) {
	find := func(cs []corev1.ContainerStatus) *corev1.ContainerStatus {
		for i := range cs {
			if cs[i].Name == proxyContainer {
				return &cs[i]
			}
		}
		return nil
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == proxyContainer {
			return &pod.Spec.Containers[i], find(pod.Status.ContainerStatuses)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.Name == proxyContainer && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			return c, find(pod.Status.InitContainerStatuses)
		}
	}
	return nil, nil
}

// readyCount is kubectl's READY column: ready containers (native sidecars included) of all.
func readyCount(pod *corev1.Pod) string {
	ready, total := 0, len(pod.Spec.Containers)
	sidecars := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
			total++
		}
	}
	for _, st := range pod.Status.ContainerStatuses {
		if st.Ready {
			ready++
		}
	}
	for _, st := range pod.Status.InitContainerStatuses {
		if st.Ready && sidecars[st.Name] {
			ready++ // a completed init container reports ready too, but is not counted
		}
	}
	return fmt.Sprintf("%d/%d", ready, total)
}

func sidecarNotReady(s *Snapshot, st *corev1.ContainerStatus) (Finding, bool) {
	pod := s.Pod
	if st == nil || st.Ready || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return Finding{}, false
	}
	if !s.Now.IsZero() {
		// An age below zero is a clock that disagrees with the API server's (or a replay):
		// it says nothing about the pod being young.
		within := func(t time.Time) bool { age := s.Now.Sub(t); return !t.IsZero() && age >= 0 && age < sidecarStartGrace }
		young := within(pod.CreationTimestamp.Time)
		if r := st.State.Running; r != nil && within(r.StartedAt.Time) {
			young = true
		}
		if young {
			return Finding{}, false
		}
	}
	src := "pod.yaml status.containerStatuses[istio-proxy]"
	f := NewFinding(CodeSidecarNotReady, Subject{Kind: SubjectPod, Name: pod.Namespace + "/" + pod.Name})
	f.Evidence = []Evidence{
		{Label: "containers ready", Text: readyCount(pod), Source: "pod.yaml status"},
		{Label: "istio-proxy restarts", Value: float64(st.RestartCount), Unit: UnitCount, Source: src + ".restartCount"},
	}
	if t := st.LastTerminationState.Terminated; t != nil {
		f.Evidence = append(f.Evidence, Evidence{Label: "last exit", Text: fmt.Sprintf("%s, exit code %d, at %s", orDefault(t.Reason, "unknown reason"), t.ExitCode, t.FinishedAt.UTC().Format(time.RFC3339)), Source: src + ".lastState.terminated"})
	}
	ns, name := pod.Namespace, pod.Name
	logs := fmt.Sprintf("kubectl logs -n %s %s -c istio-proxy --tail=100", ns, name)
	switch {
	case st.State.Waiting != nil:
		w := st.State.Waiting
		f.Evidence = append(f.Evidence, Evidence{Label: "state", Text: strings.TrimSpace("waiting: " + w.Reason + " " + clip(oneLine(w.Message), 200)), Source: src + ".state.waiting"})
		switch w.Reason {
		case "CrashLoopBackOff":
			f.Title = fmt.Sprintf("istio-proxy keeps crashing (%d restarts)", st.RestartCount)
			f.Explanation = "The sidecar exits soon after it starts and Kubernetes waits longer before each restart. Its previous log says why: most often it cannot reach istiod, its bootstrap is invalid, or it is OOM-killed (then the last exit says OOMKilled)."
			logs += " --previous"
		case "ImagePullBackOff", "ErrImagePull", "InvalidImageName":
			f.Title = "The istio-proxy image cannot be pulled"
			f.Explanation = "The node cannot pull the proxy image: the registry in the injection template (global.hub) is unreachable from the node, needs an imagePullSecret, or the tag does not exist for this Istio version."
			logs = fmt.Sprintf("kubectl describe pod -n %s %s | grep -A3 -i 'image'", ns, name)
		case "PodInitializing", "ContainerCreating":
			f.Title = "istio-proxy has not started: the pod is still initializing"
			f.Explanation = "The sidecar waits for the pod's init containers (istio-init or istio-validation with the CNI plugin) or its volumes. A failing istio-init means the iptables setup failed; istio-validation failing means the CNI plugin did not set up the pod's traffic redirection."
			logs = fmt.Sprintf("kubectl describe pod -n %s %s\nkubectl logs -n %s %s -c istio-validation    # or -c istio-init", ns, name, ns, name)
		default:
			f.Title = "istio-proxy is not running: " + w.Reason
			f.Explanation = "The container is waiting to run; the reason and message above come from the kubelet."
			logs = fmt.Sprintf("kubectl describe pod -n %s %s", ns, name)
		}
	case st.State.Terminated != nil:
		t := st.State.Terminated
		f.Evidence = append(f.Evidence, Evidence{Label: "state", Text: fmt.Sprintf("terminated: %s, exit code %d", orDefault(t.Reason, "unknown reason"), t.ExitCode), Source: src + ".state.terminated"})
		f.Title = fmt.Sprintf("istio-proxy has exited (%s, exit code %d)", orDefault(t.Reason, "unknown reason"), t.ExitCode)
		f.Explanation = "The sidecar stopped while the pod runs on, so the pod sends and receives no mesh traffic. Its log says why it exited."
		logs += " --previous"
	default:
		f.Title = "istio-proxy runs but is not ready"
		f.Evidence = append(f.Evidence, Evidence{Label: "state", Text: "running, readiness probe failing", Source: src + ".state.running"})
		f.Explanation = "Envoy runs but fails its readiness check (:15021/healthz/ready), which passes only once the proxy has received and accepted its configuration from istiod. So the proxy is not configured: it cannot reach istiod (network policy, istiod down, a wrong discovery address), istiod has not pushed to it, or it rejected what it got. While it is not ready the pod gets no traffic from services."
		if s.Config != nil && len(s.Config.Rejected) > 0 {
			f.Explanation += " The config dump shows rejected configuration (see the config-rejected finding)."
		}
		if t := st.LastTerminationState.Terminated; t != nil && st.RestartCount > 0 {
			f.Explanation += fmt.Sprintf(" It has also restarted %d times, the last time after it was %s: every restart leaves the pod without a ready proxy until istiod has configured the new one, so fix what ends it first.", st.RestartCount, orDefault(t.Reason, "terminated"))
			if t.Reason == "OOMKilled" {
				f.Explanation = strings.Replace(f.Explanation, "fix what ends it first.", "fix the OOM kills first (see MESH1302).", 1)
			}
		}
		logs = fmt.Sprintf("istioctl proxy-status %s.%s\n%s | grep -iE 'warn|error|xds'", name, ns, logs)
	}
	addProxyEvents(s, &f)
	f.Fix = Fix{Summary: "Read the sidecar's log and istiod's view of this proxy; the reason is there.", Command: logs}
	return f, true
}

func sidecarOOMKilled(s *Snapshot, c *corev1.Container, st *corev1.ContainerStatus) (Finding, bool) {
	if st == nil {
		return Finding{}, false
	}
	t := st.LastTerminationState.Terminated
	if cur := st.State.Terminated; cur != nil && cur.Reason == "OOMKilled" {
		t = cur
	}
	if t == nil || t.Reason != "OOMKilled" {
		return Finding{}, false
	}
	pod := s.Pod
	src := "pod.yaml status.containerStatuses[istio-proxy]"
	f := NewFinding(CodeSidecarOOMKilled, Subject{Kind: SubjectPod, Name: pod.Namespace + "/" + pod.Name})
	f.Evidence = []Evidence{
		{Label: "OOM-killed at", Text: t.FinishedAt.UTC().Format(time.RFC3339), Source: src + ".lastState.terminated"},
		{Label: "istio-proxy restarts", Value: float64(st.RestartCount), Unit: UnitCount, Source: src + ".restartCount"},
	}
	if !s.Now.IsZero() && !t.FinishedAt.IsZero() && s.Now.Sub(t.FinishedAt.Time) > oomRecent {
		f.Severity = SeverityWarning
	}
	limit := c.Resources.Limits.Memory()
	newLimit := "1Gi"
	annotations := map[string]string{}
	if limit != nil && !limit.IsZero() {
		f.Title = "istio-proxy was OOM-killed at its memory limit of " + limit.String()
		f.Evidence = append(f.Evidence, Evidence{Label: "memory limit of istio-proxy", Text: limit.String(), Source: "pod.yaml spec.containers[istio-proxy].resources.limits.memory"})
		newLimit = fmt.Sprintf("%dMi", 2*limit.Value()>>20)
		annotations["sidecar.istio.io/proxyMemoryLimit"] = newLimit
		f.Explanation = "Envoy used more memory than its limit and the kernel killed it. Its memory grows with the configuration it holds — every service and endpoint of the mesh unless a Sidecar resource narrows them — and with connections and buffered requests. While it restarts the pod has no mesh traffic."
	} else {
		f.Title = "istio-proxy was OOM-killed without a memory limit of its own"
		annotations["sidecar.istio.io/proxyMemory"] = "256Mi"
		f.Explanation = "istio-proxy has no memory limit, so it was killed when the node ran out of memory. A memory request makes the scheduler reserve memory for it; a Sidecar resource that narrows the services the proxy knows shrinks its configuration."
	}
	if r := c.Resources.Requests.Memory(); r != nil && !r.IsZero() {
		f.Evidence = append(f.Evidence, Evidence{Label: "memory request of istio-proxy", Text: r.String(), Source: "pod.yaml spec.containers[istio-proxy].resources.requests.memory"})
	}
	f.Fix = Fix{
		Summary: "Give the proxy more memory through its pod-template annotation (patching the template restarts the pods), and limit the configuration it holds with a Sidecar resource (egress hosts it calls).",
		Command: fmt.Sprintf("kubectl patch %s -n %s --patch-file proxy-memory.yaml    # the YAML below, saved", s.workloadRef(), pod.Namespace),
		YAML:    podTemplateAnnotationsYAML(annotations),
	}
	return f, true
}

func sidecarCPULimit(s *Snapshot, c *corev1.Container) (Finding, bool) {
	limit := c.Resources.Limits.Cpu()
	if limit == nil || limit.IsZero() || limit.MilliValue() >= proxyCPULimitNoteMillis {
		return Finding{}, false
	}
	pod := s.Pod
	f := NewFinding(CodeSidecarCPULimit, Subject{Kind: SubjectPod, Name: pod.Namespace + "/" + pod.Name})
	milli := limit.MilliValue()
	if milli >= proxyCPULimitWarnMillis {
		f.Severity = SeverityInfo
	}
	f.Title = "istio-proxy has a CPU limit of " + limit.String() + ": bursts are throttled"
	f.Evidence = []Evidence{{Label: "CPU limit of istio-proxy", Value: float64(milli), Unit: "millicores", Source: "pod.yaml spec.containers[istio-proxy].resources.limits.cpu"}}
	if r := c.Resources.Requests.Cpu(); r != nil && !r.IsZero() {
		f.Evidence = append(f.Evidence, Evidence{Label: "CPU request of istio-proxy", Value: float64(r.MilliValue()), Unit: "millicores", Source: "pod.yaml spec.containers[istio-proxy].resources.requests.cpu"})
	}
	if v := pod.Annotations[annotation.SidecarProxyCPULimit.Name]; v != "" {
		f.Evidence = append(f.Evidence, Evidence{Label: "set by the annotation sidecar.istio.io/proxyCPULimit", Text: v, Source: "pod.yaml metadata.annotations"})
	}
	if pod.Status.QOSClass != "" {
		f.Evidence = append(f.Evidence, Evidence{Label: "pod QoS class", Text: string(pod.Status.QOSClass), Source: "pod.yaml status.qosClass"})
	}
	if s.ServerInfo != nil && s.ServerInfo.Concurrency > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "Envoy worker threads", Value: float64(s.ServerInfo.Concurrency), Unit: UnitCount, Source: "server_info.json command_line_options.concurrency"})
	}
	f.Explanation = fmt.Sprintf("The kernel's CFS quota lets istio-proxy use %d ms of CPU per 100 ms period. A burst of requests spends that in a few milliseconds and Envoy's threads then stall until the next period, adding up to tens of milliseconds to requests that arrive meanwhile — latency spikes that average CPU graphs do not show. Istio also sizes Envoy's worker threads from the limit (istio#33283).", milli/10)
	f.Fix = Fix{
		Summary: "Raise the proxy's CPU limit (or drop it and keep only a request), through its pod-template annotation; patching the template restarts the pods. Confirm throttling first with nr_throttled in the proxy's cpu.stat.",
		Command: fmt.Sprintf("%s\nkubectl patch %s -n %s --patch-file proxy-cpu.yaml    # the YAML below, saved", s.proxyCommand("cat /sys/fs/cgroup/cpu.stat"), s.workloadRef(), pod.Namespace),
		YAML:    podTemplateAnnotationsYAML(map[string]string{annotation.SidecarProxyCPULimit.Name: "2000m"}),
	}
	return f, true
}
