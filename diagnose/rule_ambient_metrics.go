package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// ztunnel's connection metrics (1.29+ counts failures in connections_failed; before, they close
// with a response flag).
const (
	ztunnelFailed = "istio_tcp_connections_failed_total"
	ztunnelClosed = "istio_tcp_connections_closed_total"
)

// podWorkload is the workload name ztunnel's metrics give the pod: ztunnel's own, from its
// config dump, else the pod's controller as Istio names it (a ReplicaSet's Deployment), else
// the pod.
func podWorkload(s *Snapshot) string {
	p := s.Pod
	if s.ZtunnelDump != nil {
		if w := s.ZtunnelDump.Workload(p.Namespace, p.Name); w != nil && w.WorkloadName != "" {
			return w.WorkloadName
		}
	}
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == "ReplicaSet" {
			if i := strings.LastIndexByte(o.Name, '-'); i > 0 {
				return o.Name[:i]
			}
		}
		return o.Name
	}
	return p.Name
}

// ztunnelMetricEvidence reads the connections of the pod's workload that ztunnel counts as
// failed, by the kind their response flag names: as a client (reporter source) or a server
// (reporter destination), over the window.
func ztunnelMetricEvidence(s *Snapshot) map[ztunnel.Kind]Evidence {
	iv := s.ZtunnelStats
	if iv == nil || s.Pod == nil {
		return nil
	}
	ns, w := s.Pod.Namespace, podWorkload(s)
	metric := ztunnelFailed
	if !iv.IstioWhere(ztunnelFailed, func(map[string]string) bool { return true }).Found {
		metric = ztunnelClosed
	}
	out := map[ztunnel.Kind]Evidence{}
	for _, flag := range ztunnel.Flags() {
		r := iv.IstioWhere(metric, func(l map[string]string) bool {
			return l["response_flags"] == flag &&
				(l["reporter"] == "source" && l["source_workload"] == w && l["source_workload_namespace"] == ns ||
					l["reporter"] == "destination" && l["destination_workload"] == w && l["destination_workload_namespace"] == ns)
		})
		if !r.Found || r.Value <= 0 {
			continue
		}
		kind, _ := ztunnel.FlagKind(flag)
		src := fmt.Sprintf("%s %s{response_flags=%q} of workload %s/%s", FileZtunnelProm, metric, flag, ns, w)
		out[kind] = readingEvidence(r, "connections ztunnel failed with "+flag, src)
	}
	return out
}

// readingEvidence is a counter's reading: a rate over the window, or a count since ztunnel
// started from one sample.
func readingEvidence(r envoyadmin.StatReading, label, source string) Evidence {
	if r.Cumulative {
		return Evidence{Label: label + " since ztunnel started", Value: r.Value, Unit: UnitCount, Source: source + " (one sample)"}
	}
	return Evidence{Label: label, Value: round(r.Rate, 3), Unit: UnitPerSecond, Source: source + " (2 samples)"}
}

// withMetrics adds ztunnel's metric evidence to the findings of its log of the same kind, and
// makes a finding of each kind the metrics show and the log does not.
func withMetrics(fs []Finding, s *Snapshot) []Finding {
	ev := ztunnelMetricEvidence(s)
	for _, kind := range sortedKeys(ev) {
		know := ztunnelKnowledge[kind]
		added := false
		for i := range fs {
			if fs[i].Code == string(know.code) && fs[i].Subject.Name == "ztunnel" {
				fs[i].Evidence = append(fs[i].Evidence, ev[kind])
				added = true
			}
		}
		if added {
			continue
		}
		f := NewFinding(know.code, Subject{Kind: SubjectProxy, Name: "ztunnel"})
		if know.title != "" {
			f.Title = know.title
		}
		ztunnelSeverity(kind, &f)
		f.Evidence = []Evidence{ev[kind]}
		f.Explanation = know.meaning
		f.Fix = know.fix(ztCtx{dstWorkload: s.Pod.Name, dstNS: s.Pod.Namespace})
		fs = append(fs, f)
	}
	return fs
}

// ztunnelThrottling reports the ztunnel on an ambient pod's node CPU-throttled: every
// connection of every ambient pod of the node waits on it (its container is istio-proxy).
func ztunnelThrottling(s *Snapshot) []Finding {
	a, b := s.ZtunnelCadvisor, s.ZtunnelCadvisor2
	if a == nil {
		return nil
	}
	var t nodeinfo.CgroupInterval
	src, when := FileZtunnelCadvisor+" since the container started", "since it started"
	if iv, ok := nodeinfo.CadvisorInterval(a, b, s.NodeWindow.Seconds())[proxyContainer]; ok && b != nil {
		t, src, when = iv, fmt.Sprintf("%s and %s, over %s", FileZtunnelCadvisor, FileZtunnelCadvisor2, roundWindow(s.NodeWindow)), "over the window"
	} else if c, ok := a.Containers[proxyContainer]; ok && c.HasCFS && c.Periods > 0 {
		t = nodeinfo.CgroupInterval{Periods: c.Periods, Throttled: c.Throttled, ThrottledRatio: c.Throttled / c.Periods}
	}
	if t.Throttled < throttledMinPeriods || t.ThrottledRatio < throttledWarnRatio {
		return nil
	}
	f := NewFinding(CodeProxyThrottled, Subject{Kind: SubjectProxy, Name: "ztunnel"})
	if t.ThrottledRatio >= throttledErrorRatio {
		f.Severity = SeverityError
	}
	f.Title = fmt.Sprintf("ztunnel on the pod's node was CPU-throttled in %.0f%% of its CFS periods %s", 100*t.ThrottledRatio, when)
	f.Evidence = []Evidence{
		{Label: "periods throttled", Value: round(100*t.ThrottledRatio, 1), Unit: UnitPercent, Source: src},
		{Label: "throttled periods", Value: t.Throttled, Unit: UnitCount, Source: src},
	}
	f.Explanation = "ztunnel carries the connections of every ambient pod of its node, and its CPU limit stops it for the rest of each 100 ms CFS period once used: connections wait in its queues, which shows as latency on all of them. Istio's ztunnel chart requests 200m and sets no limit; a limit was added by the install's values."
	f.Fix = Fix{Summary: "Remove ztunnel's CPU limit, or raise it well above its peak use (the ztunnel chart's resources.limits.cpu), and give it the CPU it needs with its request.",
		Command: "kubectl get daemonset -A -l app.kubernetes.io/name=ztunnel -o jsonpath='{.items[*].spec.template.spec.containers[0].resources}'"}
	return []Finding{f}
}
