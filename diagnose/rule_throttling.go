package diagnose

import (
	"fmt"

	"istio.io/api/annotation"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Thresholds of the CPU throttling rule.
const (
	// throttledWarnRatio: the kubernetes-mixin alert CPUThrottlingHigh fires at 25% of CFS
	// periods throttled; past that, bursts of requests regularly wait for the next period.
	throttledWarnRatio = 0.25
	// throttledErrorRatio: in half the periods the container ran out of quota.
	throttledErrorRatio = 0.5
	// throttledMinPeriods: fewer throttled periods than this in the window is noise.
	throttledMinPeriods = 5
)

// CPUThrottlingRule measures CFS throttling of istio-proxy and of the application containers.
type CPUThrottlingRule struct{}

// Meta describes the rule.
func (CPUThrottlingRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "CPUThrottlingRule",
		Description: "Measures CFS throttling over the window: istio-proxy's from its cgroup cpu.stat read in the sidecar (or from the kubelet's cAdvisor), the application containers' from cAdvisor.",
		Codes:       []Code{CodeProxyThrottled, CodeAppThrottled},
		AnyOf:       []Input{InputNodeInterval, InputCadvisor},
	}
}

// throttling is one container's throttling and where it was read: source names the file and
// the field of each figure, ratio (throttled / periods), count (throttled) or time.
type throttling struct {
	nodeinfo.CgroupInterval
	source   func(figure string) string
	interval bool
}

// cgroupFields and cadvisorFields name the fields of each figure.
var (
	cgroupFields   = map[string]string{"ratio": "nr_throttled / nr_periods", "count": "nr_throttled", "time": "throttled_usec"}
	cgroupV1       = map[string]string{"ratio": "nr_throttled / nr_periods", "count": "nr_throttled", "time": "throttled_time"}
	cadvisorFields = map[string]string{
		"ratio": "container_cpu_cfs_throttled_periods_total / container_cpu_cfs_periods_total",
		"count": "container_cpu_cfs_throttled_periods_total", "time": "container_cpu_cfs_throttled_seconds_total",
	}
)

// Check runs the rule.
func (CPUThrottlingRule) Check(s *Snapshot) []Finding {
	byContainer := s.cadvisorThrottling()
	if iv := s.nodeInterval(); iv != nil && iv.Cgroup != nil {
		file, fields := "/"+nodeinfo.PathCgroupV2, cgroupFields
		if s.Node.Cgroup.Version == 1 {
			file, fields = "/"+nodeinfo.PathCgroupV1, cgroupV1
		}
		byContainer[proxyContainer] = throttling{CgroupInterval: *iv.Cgroup, interval: true,
			source: func(figure string) string { return s.nodeSource(file + " " + fields[figure]) }}
	}
	var out []Finding
	for _, name := range sortedKeys(byContainer) {
		t := byContainer[name]
		if t.Throttled < throttledMinPeriods || t.ThrottledRatio < throttledWarnRatio {
			continue
		}
		out = append(out, s.throttlingFinding(name, t))
	}
	return out
}

// cadvisorThrottling is each container's throttling from cAdvisor: over the window with two
// samples, else since the container started.
func (s *Snapshot) cadvisorThrottling() map[string]throttling {
	out := map[string]throttling{}
	if s.Cadvisor == nil {
		return out
	}
	if s.Cadvisor2 != nil && s.NodeWindow > 0 {
		for name, ci := range nodeinfo.CadvisorInterval(s.Cadvisor, s.Cadvisor2, s.NodeWindow.Seconds()) {
			out[name] = throttling{CgroupInterval: ci, interval: true, source: func(figure string) string {
				return fmt.Sprintf("%s and %s %s{container=%q}, over %s", FileCadvisor, FileCadvisor2, cadvisorFields[figure], name, roundWindow(s.NodeWindow))
			}}
		}
		return out
	}
	for name, c := range s.Cadvisor.Containers {
		if !c.HasCFS || c.Periods <= 0 || c.Throttled > c.Periods {
			continue
		}
		out[name] = throttling{CgroupInterval: nodeinfo.CgroupInterval{Periods: c.Periods, Throttled: c.Throttled, ThrottledRatio: c.Throttled / c.Periods},
			source: func(figure string) string {
				return fmt.Sprintf("%s %s{container=%q}, since the container started", FileCadvisor, cadvisorFields[figure], name)
			}}
	}
	return out
}

func (s *Snapshot) throttlingFinding(container string, t throttling) Finding {
	code := CodeAppThrottled
	if container == proxyContainer {
		code = CodeProxyThrottled
	}
	f := NewFinding(code, Subject{Kind: SubjectPod, Name: s.podNamespace() + "/" + s.podName()})
	if t.ThrottledRatio >= throttledErrorRatio {
		f.Severity = SeverityError
	}
	when := "over the window"
	if !t.interval {
		when = "since it started"
	}
	f.Title = fmt.Sprintf("%s was CPU-throttled in %.0f%% of its CFS periods %s", container, 100*t.ThrottledRatio, when)
	f.Evidence = []Evidence{
		{Label: "periods throttled", Value: round(100*t.ThrottledRatio, 1), Unit: UnitPercent, Source: t.source("ratio")},
		{Label: "throttled periods", Value: t.Throttled, Unit: UnitCount, Source: t.source("count")},
	}
	if t.interval {
		f.Evidence = append(f.Evidence, Evidence{Label: "time throttled per second", Value: round(1000*t.ThrottledPerSecond, 1), Unit: "ms/s", Source: t.source("time")})
	}
	limit := ""
	if s.Pod != nil {
		for _, c := range append(append(s.Pod.Spec.Containers[:0:0], s.Pod.Spec.Containers...), s.Pod.Spec.InitContainers...) {
			if c.Name == container {
				if q := c.Resources.Limits.Cpu(); q != nil && !q.IsZero() {
					limit = q.String()
					f.Evidence = append(f.Evidence, Evidence{Label: "CPU limit of " + container, Value: float64(q.MilliValue()), Unit: "millicores", Source: "pod.yaml spec.containers[" + container + "].resources.limits.cpu"})
				}
			}
		}
	}
	f.Explanation = fmt.Sprintf("The container's CPU limit is a CFS quota per 100 ms period. In %.0f%% of the periods %s used its quota before the period ended and all its threads waited for the next one", 100*t.ThrottledRatio, container)
	if container == proxyContainer {
		f.Explanation += ": every request through the proxy that arrived meanwhile was held up to the rest of the period, latency that average CPU use does not show. Istio also sizes Envoy's worker threads from the limit, so more threads share the same quota (istio#33283)."
		f.Fix = Fix{
			Summary: "Raise istio-proxy's CPU limit (or drop it and keep a request) through the pod-template annotation; patching the template restarts the pods.",
			Command: fmt.Sprintf("kubectl patch %s -n %s --patch-file proxy-cpu.yaml    # the YAML below, saved", s.workloadRef(), s.podNamespace()),
			YAML:    podTemplateAnnotationsYAML(map[string]string{annotation.SidecarProxyCPULimit.Name: "2000m"}),
		}
	} else {
		f.Explanation += ": the application answers late, and the proxy's latency for requests to it includes the wait. The mesh cannot fix this; the application's CPU limit can."
		newLimit := "2"
		if limit != "" {
			newLimit = "<twice " + limit + ">"
		}
		f.Fix = Fix{
			Summary: "Raise the application container's CPU limit (or remove it and keep the request), or make it use less CPU per request.",
			Command: fmt.Sprintf("kubectl set resources %s -n %s -c %s --limits=cpu=%s", s.workloadRef(), s.podNamespace(), container, newLimit),
		}
	}
	return f
}
