// Package nodeinfo reads the node evidence of a meshed pod: what /proc, the container's cgroup and
// the network sysctls say about the node and the pod's network namespace, as one command printed
// them, and the kubelet's cAdvisor lines of the pod. It is pure: it builds the probe command,
// parses its output and subtracts two samples; running the command is the caller's business.
package nodeinfo

import (
	"strconv"
	"strings"
)

// The files the probe reads, relative to the root of a container's file system. /proc/stat and
// /proc/diskstats are not namespaced, so from any container they show the node; cpu.stat is the
// container's own cgroup (v2 first, then v1's two usual mount points); /proc/sys/net is the pod's
// network namespace.
const (
	PathStat          = "proc/stat"
	PathDiskstats     = "proc/diskstats"
	PathPressureCPU   = "proc/pressure/cpu"
	PathPressureIO    = "proc/pressure/io"
	PathPressureMem   = "proc/pressure/memory"
	PathCgroupV2      = "sys/fs/cgroup/cpu.stat"
	PathCgroupV1      = "sys/fs/cgroup/cpu/cpu.stat"
	PathCgroupV1Acct  = "sys/fs/cgroup/cpu,cpuacct/cpu.stat"
	PathFileNr        = "proc/sys/fs/file-nr"
	PathConntrackNow  = "proc/sys/net/netfilter/nf_conntrack_count"
	PathConntrackMax  = "proc/sys/net/netfilter/nf_conntrack_max"
	sysctlPathPrefix  = "proc/sys/"
	headerOpen        = "==> "
	headerClose       = " <=="
	pressurePathStart = "proc/pressure/"
)

// Sysctl names the kernel settings the probe reads.
const (
	SysctlFileMax      = "fs.file-max"
	SysctlConntrackMax = "net.netfilter.nf_conntrack_max"
	SysctlTWReuse      = "net.ipv4.tcp_tw_reuse"
	SysctlPortRange    = "net.ipv4.ip_local_port_range"
	SysctlKeepaliveT   = "net.ipv4.tcp_keepalive_time"
	SysctlKeepaliveI   = "net.ipv4.tcp_keepalive_intvl"
	SysctlKeepaliveP   = "net.ipv4.tcp_keepalive_probes"
	SysctlSomaxconn    = "net.core.somaxconn"
)

// Tuning is one sysctl of the node tuning this project recommends, with the value it sets.
type Tuning struct {
	Name, Value string
}

// SeedTuning is the node tuning of the seeds (../shared/ENVOY-FACTS.md): the values a node that
// carries meshed traffic should have.
var SeedTuning = []Tuning{
	{SysctlFileMax, "2097152"},
	{SysctlConntrackMax, "131072"},
	{SysctlTWReuse, "1"},
	{SysctlPortRange, "1024 65535"},
	{SysctlKeepaliveT, "600"},
	{SysctlKeepaliveI, "60"},
	{SysctlKeepaliveP, "3"},
}

// SysctlPath is the /proc/sys file of a sysctl, relative to the root ("net.ipv4.tcp_tw_reuse" is
// proc/sys/net/ipv4/tcp_tw_reuse).
func SysctlPath(name string) string {
	return sysctlPathPrefix + strings.ReplaceAll(name, ".", "/")
}

// ProbeFiles lists the files the probe reads, each prefixed with root: "/" in a container, ""
// for paths relative to a working directory (a replay), "/proc/1/root/" to read another
// container's view from a debug container that shares its process namespace.
func ProbeFiles(root string) []string {
	paths := []string{PathStat, PathDiskstats, PathPressureCPU, PathPressureIO, PathPressureMem,
		PathCgroupV2, PathCgroupV1, PathCgroupV1Acct, PathFileNr, PathConntrackNow, PathConntrackMax}
	for _, t := range SeedTuning {
		if p := SysctlPath(t.Name); p != PathConntrackMax {
			paths = append(paths, p)
		}
	}
	paths = append(paths, SysctlPath(SysctlSomaxconn))
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = root + p
	}
	return out
}

// ProbeCommand is the command that prints every probe file once: `tail -n +1 FILE...`. Both GNU
// and busybox tail put a "==> FILE <==" header before each file, go on past a missing file (it
// costs a line on stderr and a non-zero exit) and need no shell, so it runs in any sidecar image
// that has tail.
func ProbeCommand(root string) []string {
	return append([]string{"tail", "-n", "+1"}, ProbeFiles(root)...)
}

// Below reports whether a sysctl's value falls short of the recommended one: a narrower
// port range, lower limits, a later or slower keep-alive, TIME_WAIT reuse off or loopback-only.
func (t Tuning) Below(have string) bool {
	if t.Name == SysctlPortRange {
		wl, wh, _ := strings.Cut(t.Value, " ")
		hl, hh, ok := strings.Cut(have, " ")
		return !ok || width(hl, hh) < width(wl, wh)
	}
	want, err1 := strconv.ParseFloat(t.Value, 64)
	got, err2 := strconv.ParseFloat(have, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	switch t.Name {
	case SysctlKeepaliveT, SysctlKeepaliveI, SysctlKeepaliveP:
		return got > want
	case SysctlTWReuse:
		return got != want
	}
	return got < want
}

func width(lo, hi string) int {
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || h < l {
		return 0
	}
	return h - l + 1
}
