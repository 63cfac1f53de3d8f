package diagnose

import (
	"fmt"
	"sort"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Thresholds of the node rules: /proc/stat and /proc/diskstats over the window, PSI.
const (
	// stealWarnPct: above 10% of CPU time taken by the hypervisor for other guests, every thread
	// on the node, Envoy's included, runs noticeably slower and in bursts; cloud providers'
	// own guidance treats sustained steal over 10% as an oversubscribed host.
	stealWarnPct = 10
	// stealErrorPct: a quarter of the node's CPU time gone is latency everybody sees.
	stealErrorPct = 25
	// iowaitWarnPct: iowait is idle time with I/O outstanding, so it says the node waits on its
	// disks rather than how slow they are; above a fifth of CPU time the node is I/O-bound.
	iowaitWarnPct = 20
	// awaitWarnMs: an SSD answers in about a millisecond and a network disk in a few; 50 ms per
	// I/O means a saturated or throttled volume (cloud disks out of IOPS or burst credits).
	awaitWarnMs = 50
	// awaitErrorMs: at 200 ms per I/O, anything that writes (logs, the app's files) stalls.
	awaitErrorMs = 200
	// awaitMinIOs: fewer I/Os than this in the window are too few for an average: one slow
	// flush is not a slow disk.
	awaitMinIOs = 20
	// ioPressureWarnPct: PSI io "some" is the share of time at least one task waited for I/O;
	// a fifth of the time is the level at which systemd-oomd-style policies start acting.
	ioPressureWarnPct = 20
	// ioPressureErrorPct: half the time stalled on I/O.
	ioPressureErrorPct = 50
)

// NodeCPUStealRule reports CPU time the node's hypervisor gave to other guests.
type NodeCPUStealRule struct{}

// Meta describes the rule.
func (NodeCPUStealRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "NodeCPUStealRule",
		Description: "Measures the node's CPU steal over the window from two /proc/stat samples read in the sidecar: time the hypervisor ran other guests while this node's threads, Envoy's included, were ready to run.",
		Codes:       []Code{CodeNodeCPUSteal},
		Needs:       []Input{InputNodeInterval},
	}
}

// Check runs the rule.
func (NodeCPUStealRule) Check(s *Snapshot) []Finding {
	iv := s.nodeInterval()
	if iv == nil || iv.CPU == nil || iv.CPU.StealPct < stealWarnPct {
		return nil
	}
	c := iv.CPU
	f := NewFinding(CodeNodeCPUSteal, s.nodeSubject())
	if c.StealPct >= stealErrorPct {
		f.Severity = SeverityError
	}
	f.Title = fmt.Sprintf("The node lost %.0f%% of its CPU time to steal: the hypervisor runs other guests on its CPUs", c.StealPct)
	f.Evidence = []Evidence{
		{Label: "CPU steal", Value: round(c.StealPct, 1), Unit: UnitPercent, Source: s.nodeSource("/proc/stat cpu steal")},
		{Label: "CPU busy (user, system, irq)", Value: round(c.BusyPct, 1), Unit: UnitPercent, Source: s.nodeSource("/proc/stat cpu")},
	}
	if n := s.Node.CPUs; n > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "CPUs of the node", Value: float64(n), Unit: UnitCount, Source: s.NodeFile + " /proc/stat cpuN lines"})
	}
	if p, ok := iv.Pressure["cpu"]; ok {
		f.Evidence = append(f.Evidence, Evidence{Label: "CPU pressure (some)", Value: round(p.SomePct, 1), Unit: UnitPercent, Source: s.nodeSource("/proc/pressure/cpu some total")})
	}
	f.Explanation = fmt.Sprintf("Steal is time a virtual CPU was ready to run but the hypervisor ran another guest instead. /proc/stat is not namespaced, so the sidecar sees the node's: %.0f%% of all CPU time over the window went to other tenants of the host. Every thread on the node runs slower and in bursts, so Envoy's event loops stall and requests through the proxy gain latency that neither the app nor the mesh configuration explains. Burstable instance types out of CPU credits show the same.", c.StealPct)
	node := s.nodeName()
	f.Fix = Fix{
		Summary: "Move the pod off this node and stop scheduling onto it until the host is fixed; for a lasting fix use instance types with dedicated CPUs (not burstable or oversubscribed ones) for the node pool.",
		Command: fmt.Sprintf("kubectl cordon %s\nkubectl delete pod -n %s %s    # its controller recreates it on another node", node, s.podNamespace(), s.podName()),
	}
	return []Finding{s.withNode(f)}
}

// NodeIORule reports a node waiting on its disks: iowait, slow I/Os, I/O pressure.
type NodeIORule struct{}

// Meta describes the rule.
func (NodeIORule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "NodeIORule",
		Description: "Reads the node's disks from the sidecar: iowait from /proc/stat and average I/O time per disk from /proc/diskstats over the window, and I/O stall time from /proc/pressure/io.",
		Codes:       []Code{CodeNodeIOWait, CodeNodeDiskAwait, CodeNodeIOPressure},
		Needs:       []Input{InputNode},
	}
}

// Check runs the rule.
func (NodeIORule) Check(s *Snapshot) []Finding {
	var out []Finding
	iv := s.nodeInterval()
	if iv != nil && iv.CPU != nil && iv.CPU.IOWaitPct >= iowaitWarnPct {
		f := NewFinding(CodeNodeIOWait, s.nodeSubject())
		f.Title = fmt.Sprintf("The node's CPUs spent %.0f%% of their time waiting for I/O", iv.CPU.IOWaitPct)
		f.Evidence = []Evidence{{Label: "CPU iowait", Value: round(iv.CPU.IOWaitPct, 1), Unit: UnitPercent, Source: s.nodeSource("/proc/stat cpu iowait")}}
		f.Explanation = "iowait is CPU time with nothing to run but I/O outstanding: the node's workloads are held up by its disks. Envoy itself hardly touches the disk, but the application does, and container logs (access logs included) are written to the node's disk by the runtime; requests wait behind them."
		f.Fix = s.diskFix()
		out = append(out, s.withNode(f))
	}
	if iv != nil {
		if f, ok := s.diskAwait(iv); ok {
			out = append(out, s.withNode(f))
		}
	}
	if f, ok := s.ioPressure(iv); ok {
		out = append(out, s.withNode(f))
	}
	return out
}

func (s *Snapshot) diskAwait(iv *nodeinfo.Interval) (Finding, bool) {
	var slow []nodeinfo.DiskInterval
	for _, d := range iv.Disks {
		if d.IOs >= awaitMinIOs && d.AwaitMs >= awaitWarnMs {
			slow = append(slow, d)
		}
	}
	if len(slow) == 0 {
		return Finding{}, false
	}
	sort.Slice(slow, func(i, j int) bool { return slow[i].AwaitMs > slow[j].AwaitMs })
	worst := slow[0]
	f := NewFinding(CodeNodeDiskAwait, s.nodeSubject())
	if worst.AwaitMs >= awaitErrorMs {
		f.Severity = SeverityError
	}
	f.Title = fmt.Sprintf("The node's disk %s takes %.0f ms per I/O", worst.Name, worst.AwaitMs)
	for _, d := range slow {
		f.Evidence = append(f.Evidence,
			Evidence{Label: "average time per I/O on " + d.Name, Value: round(d.AwaitMs, 1), Unit: UnitMillis, Source: s.nodeSource("/proc/diskstats " + d.Name + " ms reading+writing / reads+writes completed")},
			Evidence{Label: "I/Os completed on " + d.Name, Value: d.IOs, Unit: UnitCount, Source: s.nodeSource("/proc/diskstats " + d.Name + " reads+writes completed")},
			Evidence{Label: "utilisation of " + d.Name, Value: round(d.UtilPct, 1), Unit: UnitPercent, Source: s.nodeSource("/proc/diskstats " + d.Name + " ms doing I/O")})
	}
	f.Explanation = fmt.Sprintf("Each read or write on %s took %.0f ms on average over the window, queueing included (an SSD takes about 1 ms, a network volume a few). The volume is saturated or throttled: cloud disks that ran out of IOPS or burst credits look like this. Whatever writes on the node waits — the application, the container runtime writing every container's log, the kubelet — and requests through the proxy wait with them.", worst.Name, worst.AwaitMs)
	f.Fix = s.diskFix()
	return f, true
}

func (s *Snapshot) ioPressure(iv *nodeinfo.Interval) (Finding, bool) {
	var pct float64
	var src string
	if iv != nil {
		if p, ok := iv.Pressure["io"]; ok {
			pct, src = p.SomePct, s.nodeSource("/proc/pressure/io some total")
		}
	}
	if src == "" {
		p, ok := s.latestNode().Pressure["io"]
		if !ok || p.Some == nil {
			return Finding{}, false
		}
		pct, src = p.Some.Avg60, s.latestNodeFile()+" /proc/pressure/io some avg60"
	}
	if pct < ioPressureWarnPct {
		return Finding{}, false
	}
	f := NewFinding(CodeNodeIOPressure, s.nodeSubject())
	if pct >= ioPressureErrorPct {
		f.Severity = SeverityError
	}
	f.Title = fmt.Sprintf("Tasks on the node stalled on I/O %.0f%% of the time (pressure stall information)", pct)
	f.Evidence = []Evidence{{Label: "I/O pressure (some tasks stalled)", Value: round(pct, 1), Unit: UnitPercent, Source: src}}
	if p, ok := s.latestNode().Pressure["io"]; ok && p.Full != nil {
		f.Evidence = append(f.Evidence, Evidence{Label: "I/O pressure (all tasks stalled), last 10 s", Value: p.Full.Avg10, Unit: UnitPercent, Source: s.latestNodeFile() + " /proc/pressure/io full avg10"})
	}
	f.Explanation = "The kernel's pressure stall information counts the time runnable tasks waited for I/O. Unlike iowait it measures lost work directly: for this share of the time some task on the node could not proceed because its I/O had not completed. Log writes, the application's files and image pulls compete for the same disk."
	f.Fix = s.diskFix()
	return f, true
}

// diskFix is the advice for a node short of disk throughput.
func (s *Snapshot) diskFix() Fix {
	node := s.nodeName()
	return Fix{
		Summary: "Find what saturates the node's disk and give the node a faster or provisioned volume (more IOPS, no burst credits); meanwhile move the pod to another node.",
		Command: fmt.Sprintf("kubectl debug node/%s -it --image=busybox:1.36 -- sh -c 'cat /proc/pressure/io; cat /proc/diskstats'    # then iotop on the node finds the writer\nkubectl cordon %s && kubectl delete pod -n %s %s", node, node, s.podNamespace(), s.podName()),
	}
}

// nodeInterval pairs the node samples; nil without two.
func (s *Snapshot) nodeInterval() *nodeinfo.Interval {
	if !s.Has(InputNodeInterval) {
		return nil
	}
	return nodeinfo.NewInterval(s.Node, s.Node2, s.NodeWindow.Seconds())
}

// latestNode is the later node sample, or the only one.
func (s *Snapshot) latestNode() *nodeinfo.Sample {
	if s.Node2 != nil {
		return s.Node2
	}
	return s.Node
}

func (s *Snapshot) latestNodeFile() string {
	if s.Node2 != nil {
		return FileNode2
	}
	return orDefault(s.NodeFile, FileNode)
}

// nodeSource names the node files and the field a figure over the window came from.
func (s *Snapshot) nodeSource(field string) string {
	if s.Has(InputNodeInterval) {
		return fmt.Sprintf("%s and %s %s, over %s", s.NodeFile, FileNode2, field, roundWindow(s.NodeWindow))
	}
	return s.latestNodeFile() + " " + field
}

// nodeSubject is the subject of a node finding: the pod, whose node is in the evidence (the
// closed set of subject kinds has no node; the pod is what the user asked about).
func (s *Snapshot) nodeSubject() Subject {
	return Subject{Kind: SubjectPod, Name: s.podNamespace() + "/" + s.podName()}
}

// withNode appends the pod's node to a finding's evidence, when pod.yaml names it.
func (s *Snapshot) withNode(f Finding) Finding {
	if s.Pod != nil && s.Pod.Spec.NodeName != "" {
		f.Evidence = append(f.Evidence, Evidence{Label: "node", Text: s.Pod.Spec.NodeName, Source: "pod.yaml spec.nodeName"})
	}
	return f
}

func (s *Snapshot) nodeName() string {
	if s.Pod != nil && s.Pod.Spec.NodeName != "" {
		return s.Pod.Spec.NodeName
	}
	return "<node>"
}

func (s *Snapshot) podNamespace() string { ns, _ := s.podRef(); return ns }
func (s *Snapshot) podName() string      { _, p := s.podRef(); return p }
