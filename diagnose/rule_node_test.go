package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// fxNodeSample is a healthy node as the sidecar sees it: 4 CPUs mostly idle, one fast disk, no
// pressure, istio-proxy rarely throttled, tables far from full, the recommended sysctls.
func fxNodeSample() *nodeinfo.Sample {
	s := &nodeinfo.Sample{
		CPU:   &nodeinfo.CPUTimes{User: 100000, System: 20000, Idle: 900000, IOWait: 1000, Steal: 500},
		CPUs:  4,
		Disks: []nodeinfo.Disk{{Name: "nvme0n1", Reads: 50000, ReadMs: 40000, Writes: 80000, WriteMs: 90000, IOTicksMs: 60000}},
		Pressure: map[string]nodeinfo.Pressure{
			"io":  {Some: &nodeinfo.PSI{Avg10: 0.5, Avg60: 0.4, TotalUsec: 1e6}, Full: &nodeinfo.PSI{Avg10: 0.1}},
			"cpu": {Some: &nodeinfo.PSI{Avg10: 2, Avg60: 2, TotalUsec: 5e6}},
		},
		Cgroup:    &nodeinfo.CgroupCPU{Periods: 10000, Throttled: 20, ThrottledUsec: 1e5, Version: 2},
		FileNr:    &nodeinfo.FileNr{Allocated: 3000, Max: 2097152},
		Conntrack: &nodeinfo.Conntrack{Count: 900, Max: 131072},
		Sysctls:   map[string]string{},
	}
	for _, t := range nodeinfo.SeedTuning {
		s.Sysctls[t.Name] = t.Value
	}
	return s
}

// fxNode returns a snapshot of a meshed pod with two node samples 10 s apart: the second is the
// first plus what change adds to it (4 CPUs × 10 s = 4000 jiffies, mostly idle, unless changed).
func fxNode(change func(a, b *nodeinfo.Sample)) *Snapshot {
	s := fxMeshedPod(nil)
	s.Pod.Spec.NodeName = "node-a"
	a, b := fxNodeSample(), fxNodeSample()
	b.CPU.User += 400
	b.CPU.Idle += 3600
	b.Disks[0].Reads += 100
	b.Disks[0].ReadMs += 100
	b.Disks[0].IOTicksMs += 100
	b.Cgroup.Periods += 100
	b.Pressure["io"].Some.TotalUsec += 1000
	if change != nil {
		change(a, b)
	}
	s.Node, s.Node2, s.NodeFile, s.NodeWindow = a, b, FileNode, 10*time.Second
	return s
}

func TestNodeRules(t *testing.T) {
	type check func(t *testing.T, fs []Finding)
	evidence := func(label string, want float64) check {
		return func(t *testing.T, fs []Finding) {
			for _, e := range fs[0].Evidence {
				if e.Label == label {
					if e.Value != want {
						t.Errorf("%s = %v, want %v", label, e.Value, want)
					}
					if !strings.Contains(e.Source, "node.txt") && !strings.Contains(e.Source, "node-2.txt") && !strings.Contains(e.Source, "cadvisor") {
						t.Errorf("%s: source %q names no node file", label, e.Source)
					}
					return
				}
			}
			t.Errorf("no evidence %q in %+v", label, fs[0].Evidence)
		}
	}
	severity := func(want Severity) check {
		return func(t *testing.T, fs []Finding) {
			if fs[0].Severity != want {
				t.Errorf("severity %s, want %s", fs[0].Severity, want)
			}
		}
	}
	cases := []struct {
		name   string
		rule   Rule
		snap   *Snapshot
		want   []string
		checks []check
	}{
		{"steal: healthy node", NodeCPUStealRule{}, fxNode(nil), nil, nil},
		{"steal: 12% is a warning", NodeCPUStealRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.CPU.Steal += 480; b.CPU.Idle -= 480 }),
			[]string{"MESH1501"}, []check{severity(SeverityWarning), evidence("CPU steal", 12)}},
		{"steal: 35% is an error, with the node named", NodeCPUStealRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.CPU.Steal += 1400; b.CPU.Idle -= 1400 }),
			[]string{"MESH1501"}, []check{severity(SeverityError), func(t *testing.T, fs []Finding) {
				if !strings.Contains(fs[0].Fix.Command, "kubectl cordon node-a") || !strings.Contains(fs[0].Evidence[0].Source, "node.txt and node-2.txt /proc/stat cpu steal, over 10s") {
					t.Errorf("fix %q, source %q", fs[0].Fix.Command, fs[0].Evidence[0].Source)
				}
			}}},
		{"steal: one sample is not a rate", NodeCPUStealRule{}, func() *Snapshot {
			s := fxNode(func(a, b *nodeinfo.Sample) { a.CPU.Steal = 1e9 })
			s.Node2 = nil
			return s
		}(), nil, nil},
		{"steal: counters that went back (reboot) are ignored", NodeCPUStealRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.CPU.Steal = 0 }), nil, nil},

		{"io: healthy node", NodeIORule{}, fxNode(nil), nil, nil},
		{"io: iowait 25%", NodeIORule{}, fxNode(func(a, b *nodeinfo.Sample) { b.CPU.IOWait += 1000; b.CPU.Idle -= 1000 }),
			[]string{"MESH1601"}, []check{evidence("CPU iowait", 25)}},
		{"io: 250 ms per I/O is an error", NodeIORule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Disks[0].WriteMs += 25000 - 100 }),
			[]string{"MESH1602"}, []check{severity(SeverityError), evidence("average time per I/O on nvme0n1", 250)}},
		{"io: a few slow I/Os are not a slow disk", NodeIORule{}, fxNode(func(a, b *nodeinfo.Sample) {
			b.Disks[0].Reads = a.Disks[0].Reads + 3
			b.Disks[0].ReadMs += 3000
		}), nil, nil},
		{"io: PSI over the window", NodeIORule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Pressure["io"].Some.TotalUsec = a.Pressure["io"].Some.TotalUsec + 3e6 }),
			[]string{"MESH1603"}, []check{severity(SeverityWarning), evidence("I/O pressure (some tasks stalled)", 30)}},
		{"io: PSI from one sample's avg60", NodeIORule{}, func() *Snapshot {
			s := fxNode(nil)
			s.Node2 = nil
			s.Node.Pressure["io"] = nodeinfo.Pressure{Some: &nodeinfo.PSI{Avg60: 55}}
			return s
		}(), []string{"MESH1603"}, []check{severity(SeverityError)}},
		{"io: a node without PSI", NodeIORule{}, fxNode(func(a, b *nodeinfo.Sample) { a.Pressure, b.Pressure = nil, nil }), nil, nil},

		{"limits: healthy node", NodeLimitsRule{}, fxNode(nil), nil, nil},
		{"limits: conntrack 99% full", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Conntrack.Count = 130000 }),
			[]string{"MESH1701"}, []check{severity(SeverityError), evidence("table used", 99.2), func(t *testing.T, fs []Finding) {
				if !strings.Contains(fs[0].Fix.Command, "nf_conntrack_max=262144") {
					t.Errorf("fix %q", fs[0].Fix.Command)
				}
			}}},
		{"limits: conntrack 85% is a warning", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Conntrack.Count = 111411 }),
			[]string{"MESH1701"}, []check{severity(SeverityWarning)}},
		{"limits: no conntrack module", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Conntrack = nil }), nil, nil},
		{"limits: file handles", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.FileNr.Allocated = 0.9 * b.FileNr.Max }),
			[]string{"MESH1702"}, []check{severity(SeverityWarning)}},
		{"limits: a huge file-max", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.FileNr.Max = 9223372036854775807 }), nil, nil},
		{"limits: Linux defaults are a note", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) {
			b.Sysctls[nodeinfo.SysctlPortRange] = "32768 60999"
			b.Sysctls[nodeinfo.SysctlKeepaliveT] = "7200"
			b.Sysctls[nodeinfo.SysctlTWReuse] = "2"
		}), []string{"MESH1703"}, []check{severity(SeverityInfo), func(t *testing.T, fs []Finding) {
			f := fs[0]
			if len(f.Evidence) != 4 || !strings.Contains(f.Fix.YAML, "name: net.ipv4.ip_local_port_range\n          value: \"1024 65535\"") {
				t.Errorf("evidence %+v\nyaml %s", f.Evidence, f.Fix.YAML)
			}
		}}},
		{"limits: a port range cut down is a warning", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) { b.Sysctls[nodeinfo.SysctlPortRange] = "50000 51000" }),
			[]string{"MESH1703"}, []check{severity(SeverityWarning), func(t *testing.T, fs []Finding) {
				if !strings.Contains(fs[0].Title, "1001 source ports") {
					t.Errorf("title %q", fs[0].Title)
				}
			}}},
		{"limits: more than recommended is fine", NodeLimitsRule{}, fxNode(func(a, b *nodeinfo.Sample) {
			b.Sysctls[nodeinfo.SysctlFileMax] = "9223372036854775807"
			b.Sysctls[nodeinfo.SysctlKeepaliveT] = "300"
		}), nil, nil},

		{"throttling: healthy proxy", CPUThrottlingRule{}, fxNode(nil), nil, nil},
		{"throttling: istio-proxy throttled in 60% of periods", CPUThrottlingRule{}, fxNode(func(a, b *nodeinfo.Sample) {
			b.Cgroup.Throttled = a.Cgroup.Throttled + 60
			b.Cgroup.ThrottledUsec = a.Cgroup.ThrottledUsec + 3e6
		}), []string{"MESH1403"}, []check{severity(SeverityError), evidence("periods throttled", 60), evidence("time throttled per second", 300)}},
		{"throttling: few throttled periods are noise", CPUThrottlingRule{}, fxNode(func(a, b *nodeinfo.Sample) {
			b.Cgroup.Periods = a.Cgroup.Periods + 4
			b.Cgroup.Throttled = a.Cgroup.Throttled + 4
		}), nil, nil},
		{"throttling: the app from cAdvisor", CPUThrottlingRule{}, func() *Snapshot {
			s := fxMeshedPod(nil)
			s.NodeWindow = 10 * time.Second
			s.Cadvisor = &nodeinfo.Cadvisor{Containers: map[string]*nodeinfo.ContainerCPU{
				"reviews":     {HasCFS: true, Periods: 1000, Throttled: 100, ThrottledSeconds: 10},
				"istio-proxy": {HasCFS: true, Periods: 1000, Throttled: 1},
			}}
			s.Cadvisor2 = &nodeinfo.Cadvisor{Containers: map[string]*nodeinfo.ContainerCPU{
				"reviews":     {HasCFS: true, Periods: 1100, Throttled: 130, ThrottledSeconds: 11},
				"istio-proxy": {HasCFS: true, Periods: 1100, Throttled: 2},
			}}
			return s
		}(), []string{"MESH1404"}, []check{severity(SeverityWarning), evidence("periods throttled", 30), func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Fix.Command, "kubectl set resources deployment/reviews-7d4b9c6f5 -n default -c reviews") && !strings.Contains(fs[0].Fix.Command, "-c reviews --limits=cpu=") {
				t.Errorf("fix %q", fs[0].Fix.Command)
			}
		}}},
		{"throttling: one cAdvisor read counts since start", CPUThrottlingRule{}, func() *Snapshot {
			s := fxMeshedPod(nil)
			s.Cadvisor = &nodeinfo.Cadvisor{Containers: map[string]*nodeinfo.ContainerCPU{"istio-proxy": {HasCFS: true, Periods: 1000, Throttled: 300}}}
			return s
		}(), []string{"MESH1403"}, []check{func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Title, "since it started") {
				t.Errorf("title %q", fs[0].Title)
			}
		}}},
		{"throttling: a container without a limit", CPUThrottlingRule{}, func() *Snapshot {
			s := fxMeshedPod(nil)
			s.Cadvisor = &nodeinfo.Cadvisor{Containers: map[string]*nodeinfo.ContainerCPU{"reviews": {UsageSeconds: 100}}}
			return s
		}(), nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, tc.rule, tc.snap)
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			for _, c := range tc.checks {
				c(t, fs)
			}
		})
	}
}

// TestNodeRulesWithoutEvidence: hollow node samples (every file missing) give no finding and no
// panic, and the rules are skipped without node evidence.
func TestNodeRulesWithoutEvidence(t *testing.T) {
	rules := []Rule{CPUThrottlingRule{}, NodeCPUStealRule{}, NodeIORule{}, NodeLimitsRule{}}
	hollow := &Snapshot{Node: &nodeinfo.Sample{}, Node2: &nodeinfo.Sample{}, NodeFile: FileNode, NodeWindow: time.Second,
		Cadvisor: &nodeinfo.Cadvisor{}, Cadvisor2: &nodeinfo.Cadvisor{}, Pod: &corev1.Pod{}}
	for _, s := range []*Snapshot{{}, hollow} {
		rep := Diagnose(s, rules)
		if len(rep.Findings) > 0 || len(rep.Warnings) > 0 {
			t.Errorf("findings %+v, warnings %v", rep.Findings, rep.Warnings)
		}
	}
	if rep := Diagnose(&Snapshot{}, rules); len(rep.Skipped) != len(rules) {
		t.Errorf("skipped %+v, want every node rule", rep.Skipped)
	}
}
