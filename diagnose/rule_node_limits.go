package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Thresholds of the node limits rule.
const (
	// conntrackWarnRatio: the table drops new flows once full (kubernetes#71261), and it fills
	// in bursts (a retry storm, a scan): at 80% there is little headroom left.
	conntrackWarnRatio = 0.8
	// conntrackErrorRatio: at 95% new connections are being, or about to be, dropped.
	conntrackErrorRatio = 0.95
	// fileNrWarnRatio, fileNrErrorRatio: the same headroom for the node's file handles; every
	// connection Envoy holds is one, twice for a proxied one.
	fileNrWarnRatio  = 0.8
	fileNrErrorRatio = 0.95
	// linuxDefaultPorts is the width of Linux's default ephemeral range, 32768-60999: narrower
	// than that is a range someone cut down, and Envoy's upstream connections to one
	// destination run out of source ports sooner (connect errors, EADDRNOTAVAIL).
	linuxDefaultPorts = 60999 - 32768 + 1
)

// NodeLimitsRule reports kernel tables near full and sysctls below the recommended tuning.
type NodeLimitsRule struct{}

// Meta describes the rule.
func (NodeLimitsRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "NodeLimitsRule",
		Description: "Compares the kernel's tables with their limits as the sidecar sees them — conntrack entries with nf_conntrack_max, file handles with file-max — and the sysctls with the node tuning this project recommends (ephemeral port range, TIME_WAIT reuse, keep-alive).",
		Codes:       []Code{CodeConntrackFull, CodeFileHandlesFull, CodeSysctlBelowTuning},
		Needs:       []Input{InputNode},
	}
}

// Check runs the rule.
func (NodeLimitsRule) Check(s *Snapshot) []Finding {
	n, file := s.latestNode(), s.latestNodeFile()
	var out []Finding
	if c := n.Conntrack; c != nil && c.Max > 0 && c.Count/c.Max >= conntrackWarnRatio {
		f := NewFinding(CodeConntrackFull, s.nodeSubject())
		ratio := c.Count / c.Max
		if ratio >= conntrackErrorRatio {
			f.Severity = SeverityError
		}
		f.Title = fmt.Sprintf("The conntrack table is %.0f%% full: new connections are dropped when it fills", 100*ratio)
		f.Evidence = []Evidence{
			{Label: "conntrack entries", Value: c.Count, Unit: UnitCount, Source: file + " /proc/sys/net/netfilter/nf_conntrack_count"},
			{Label: "conntrack limit", Value: c.Max, Unit: UnitCount, Source: file + " /proc/sys/net/netfilter/nf_conntrack_max"},
			{Label: "table used", Value: round(100*ratio, 1), Unit: UnitPercent, Source: file + " nf_conntrack_count / nf_conntrack_max"},
		}
		want := max(131072, 2*c.Max)
		f.Explanation = "Every connection through the pod's network namespace, Envoy's redirected ones included, takes a conntrack entry until it closes and its TIME_WAIT or timeout ends. When the table is full the kernel drops the first packet of new connections (\"nf_conntrack: table full, dropping packet\" in the node's kernel log), which clients see as connect timeouts and SYN retries of one, three and seven seconds (kubernetes#71261)."
		f.Fix = Fix{
			Summary: fmt.Sprintf("Raise the node's nf_conntrack_max (kube-proxy sets it from conntrack.maxPerCore × CPUs at start; set maxPerCore in its configuration, or 0 to leave a sysctl alone), and look for what opens so many connections: connection reuse in the app and `connectionPool` limits keep the count down. %d is twice the current limit.", int64(want)),
			Command: fmt.Sprintf("kubectl debug node/%s -it --image=busybox:1.36 --profile=sysadmin -- sysctl -w net.netfilter.nf_conntrack_max=%d    # lasts until reboot; persist it in the node image or a privileged DaemonSet", s.nodeName(), int64(want)),
		}
		out = append(out, s.withNode(f))
	}
	if fn := n.FileNr; fn != nil && fn.Max > 0 && fn.Allocated/fn.Max >= fileNrWarnRatio {
		ratio := fn.Allocated / fn.Max
		f := NewFinding(CodeFileHandlesFull, s.nodeSubject())
		if ratio >= fileNrErrorRatio {
			f.Severity = SeverityError
		}
		f.Title = fmt.Sprintf("The node has allocated %.0f%% of its file handles (fs.file-max)", 100*ratio)
		f.Evidence = []Evidence{
			{Label: "file handles allocated", Value: fn.Allocated, Unit: UnitCount, Source: file + " /proc/sys/fs/file-nr (first field)"},
			{Label: "file handle limit", Value: fn.Max, Unit: UnitCount, Source: file + " /proc/sys/fs/file-nr (third field, fs.file-max)"},
		}
		f.Explanation = "Every socket is a file handle; a proxied connection costs Envoy two. When the node reaches fs.file-max, accept() and connect() fail with ENFILE (\"Too many open files in system\") for every process on the node, and Envoy counts them as connect failures and resets."
		f.Fix = Fix{
			Summary: "Raise fs.file-max on the node to the recommended 2097152 or more, and find the process that holds the handles (a connection leak).",
			Command: fmt.Sprintf("kubectl debug node/%s -it --image=busybox:1.36 --profile=sysadmin -- sysctl -w fs.file-max=%d    # lasts until reboot; persist it in the node image or a privileged DaemonSet", s.nodeName(), int64(max(2097152, 2*fn.Max))),
		}
		out = append(out, s.withNode(f))
	}
	if f, ok := s.sysctlsBelowTuning(n, file); ok {
		out = append(out, s.withNode(f))
	}
	return out
}

// sysctlsBelowTuning compares the sysctls read with nodeinfo.SeedTuning.
func (s *Snapshot) sysctlsBelowTuning(n *nodeinfo.Sample, file string) (Finding, bool) {
	f := NewFinding(CodeSysctlBelowTuning, s.nodeSubject())
	f.Severity = SeverityInfo
	var pod, node []string // sysctl=value to set, in the pod's network namespace or on the node
	for _, t := range nodeinfo.SeedTuning {
		have, ok := n.Sysctls[t.Name]
		if !ok || !t.Below(have) {
			continue
		}
		f.Evidence = append(f.Evidence, Evidence{Label: t.Name + " (recommended " + t.Value + ")", Text: have, Source: file + " /" + nodeinfo.SysctlPath(t.Name)})
		if strings.HasPrefix(t.Name, "net.ipv4.") {
			pod = append(pod, t.Name+"="+t.Value)
		} else {
			node = append(node, t.Name+"="+t.Value)
		}
	}
	if len(f.Evidence) == 0 {
		return Finding{}, false
	}
	lo, hi, ok := n.PortRange()
	narrow := ok && hi-lo+1 < linuxDefaultPorts
	if narrow {
		f.Severity = SeverityWarning
		f.Title = fmt.Sprintf("The ephemeral port range %d-%d leaves %d source ports per destination, fewer than Linux's default", lo, hi, hi-lo+1)
	} else {
		f.Title = fmt.Sprintf("%d sysctls differ from the recommended node tuning", len(f.Evidence))
	}
	f.Explanation = "The recommended tuning for nodes that carry meshed traffic: a wide ephemeral port range and TIME_WAIT reuse, so Envoy's many upstream connections to one destination do not run out of source ports; keep-alive probes after 10 minutes, so idle connections through NATs and load balancers are not dropped silently; room in the conntrack table and for file handles. The net.ipv4 values were read in the pod's network namespace and apply to it; fs and nf_conntrack_max are the node's."
	var cmds []string
	if len(pod) > 0 {
		var y strings.Builder
		y.WriteString("spec:\n  template:\n    spec:\n      securityContext:\n        sysctls:\n")
		for _, kv := range pod {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&y, "        - name: %s\n          value: %q\n", k, v)
		}
		f.Fix.YAML = y.String()
		cmds = append(cmds, fmt.Sprintf("kubectl patch %s -n %s --patch-file sysctls.yaml    # the YAML below, saved; tcp_keepalive_* and tcp_tw_reuse are safe sysctls from Kubernetes 1.29, others need the kubelet's --allowed-unsafe-sysctls", s.workloadRef(), s.podNamespace()))
	}
	if len(node) > 0 {
		cmds = append(cmds, fmt.Sprintf("kubectl debug node/%s -it --image=busybox:1.36 --profile=sysadmin -- sysctl -w %s    # lasts until reboot; persist it in the node image or a privileged DaemonSet", s.nodeName(), strings.Join(node, " ")))
	}
	f.Fix.Summary = "Set the pod's network sysctls in its securityContext (they apply per pod) and the node's own in its image or a privileged DaemonSet."
	f.Fix.Command = strings.Join(cmds, "\n")
	return f, true
}
