package nodeinfo

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Section is one file of the probe's output: the path its header named and what followed.
type Section struct {
	Path string
	Body string
}

// SplitSections cuts `tail` output into its files at the "==> PATH <==" headers. Text before the
// first header (busybox prints no header when it could open a single file) is not attributed to
// a file and is dropped.
func SplitSections(text string) []Section {
	var out []Section
	var cur *Section
	var body strings.Builder
	flush := func() {
		if cur != nil {
			cur.Body = body.String()
			out = append(out, *cur)
		}
		body.Reset()
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(trimmed, headerOpen) && strings.HasSuffix(trimmed, headerClose) && len(trimmed) > len(headerOpen)+len(headerClose) {
			flush()
			cur = &Section{Path: trimmed[len(headerOpen) : len(trimmed)-len(headerClose)]}
			continue
		}
		if cur != nil {
			body.WriteString(line)
		}
	}
	flush()
	return out
}

// HasSections reports whether text holds at least one probe file: the probe ran, whatever its
// exit status says about the files it could not open.
func HasSections(text string) bool { return len(SplitSections(text)) > 0 }

// CPUTimes are the jiffies of the `cpu` line of /proc/stat, summed over every CPU since boot.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal float64
}

// Total is the sum of the columns: the time the CPUs were accounted for (guest time is already
// in user and nice).
func (c CPUTimes) Total() float64 {
	return c.User + c.Nice + c.System + c.Idle + c.IOWait + c.IRQ + c.SoftIRQ + c.Steal
}

// Disk is one block device of /proc/diskstats: counters since boot.
type Disk struct {
	Name string
	// Reads and Writes are completed I/Os; ReadMs and WriteMs the milliseconds they took.
	Reads, ReadMs, Writes, WriteMs float64
	// IOTicksMs is the time the device had I/O in flight (its utilisation).
	IOTicksMs float64
}

// PSI is one line of a /proc/pressure file: the share of time (percent) tasks stalled on the
// resource over the last 10 and 60 seconds, and the total stall time in microseconds.
type PSI struct {
	Avg10, Avg60, Avg300 float64
	TotalUsec            float64
}

// Pressure is a /proc/pressure file: Some tasks stalled, or all (Full; absent for cpu on older
// kernels).
type Pressure struct {
	Some, Full *PSI
}

// CgroupCPU is a container's cgroup cpu.stat. v1 reports throttled time in nanoseconds; it is
// converted to microseconds here so both versions read alike.
type CgroupCPU struct {
	Periods, Throttled float64
	ThrottledUsec      float64
	// Version is 1 or 2, from the file's fields.
	Version int
	// Path is the file the section came from.
	Path string
}

// FileNr is /proc/sys/fs/file-nr: file handles allocated, allocated but unused, and the maximum.
type FileNr struct {
	Allocated, Unused, Max float64
}

// Conntrack is the connection-tracking table: entries and the limit, as the pod's network
// namespace sees them.
type Conntrack struct {
	Count, Max float64
}

// Sample is one run of the probe.
type Sample struct {
	CPU *CPUTimes
	// CPUs counts the cpuN lines of /proc/stat.
	CPUs     int
	Disks    []Disk
	Pressure map[string]Pressure // by resource: cpu, io, memory
	Cgroup   *CgroupCPU
	FileNr   *FileNr
	// Conntrack is nil when the netfilter files are absent (no conntrack module loaded).
	Conntrack *Conntrack
	// Sysctls holds every /proc/sys file read, by dotted name, whitespace collapsed.
	Sysctls map[string]string
	// Paths are the files the output held, in order.
	Paths []string
	// Problems say what in the output could not be read.
	Problems []string
}

// Empty reports whether the sample holds nothing the diagnosis can use.
func (s *Sample) Empty() bool {
	return s.CPU == nil && len(s.Disks) == 0 && len(s.Pressure) == 0 && s.Cgroup == nil && s.FileNr == nil && s.Conntrack == nil && len(s.Sysctls) == 0
}

// ParseProbe reads the output of ProbeCommand. It is lenient: a file it does not understand is a
// problem in the sample, not an error; the error is for output that holds no probe file at all.
func ParseProbe(text string) (*Sample, error) {
	sections := SplitSections(text)
	if len(sections) == 0 {
		return nil, fmt.Errorf("no \"==> FILE <==\" section: not the output of tail -n +1 over the probe's files")
	}
	s := &Sample{Pressure: map[string]Pressure{}, Sysctls: map[string]string{}}
	for _, sec := range sections {
		s.Paths = append(s.Paths, sec.Path)
		var err error
		switch p := sec.Path; {
		case strings.HasSuffix(p, PathStat):
			err = s.parseStat(sec.Body)
		case strings.HasSuffix(p, PathDiskstats):
			err = s.parseDiskstats(sec.Body)
		case pressureResource(p) != "":
			err = s.parsePressure(pressureResource(p), sec.Body)
		case strings.HasSuffix(p, PathCgroupV2), strings.HasSuffix(p, PathCgroupV1), strings.HasSuffix(p, PathCgroupV1Acct):
			err = s.parseCgroup(p, sec.Body)
		case sysctlName(p) != "":
			err = s.parseSysctl(sysctlName(p), sec.Body)
		default:
			s.Problems = append(s.Problems, fmt.Sprintf("%s: not a file the probe reads", p))
		}
		if err != nil {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %v", sec.Path, err))
		}
	}
	return s, nil
}

func pressureResource(path string) string {
	for _, r := range []string{"cpu", "io", "memory"} {
		if strings.HasSuffix(path, pressurePathStart+r) {
			return r
		}
	}
	return ""
}

// sysctlName turns ".../proc/sys/net/ipv4/tcp_tw_reuse" into "net.ipv4.tcp_tw_reuse".
func sysctlName(path string) string {
	i := strings.LastIndex(path, sysctlPathPrefix)
	if i < 0 || (i > 0 && path[i-1] != '/') {
		return ""
	}
	rest := path[i+len(sysctlPathPrefix):]
	if rest == "" || strings.Contains(rest, ".") {
		return ""
	}
	return strings.ReplaceAll(rest, "/", ".")
}

func (s *Sample) parseStat(body string) error {
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "cpu":
			v, err := floats(f[1:], 4) // kernels before 2.6 stop at idle
			if err != nil {
				return fmt.Errorf("cpu line: %w", err)
			}
			for len(v) < 8 {
				v = append(v, 0)
			}
			s.CPU = &CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
		case strings.HasPrefix(f[0], "cpu"):
			if _, err := strconv.Atoi(f[0][3:]); err == nil {
				s.CPUs++
			}
		}
	}
	if s.CPU == nil {
		return fmt.Errorf("no cpu line")
	}
	return nil
}

func (s *Sample) parsePressure(resource, body string) error {
	var p Pressure
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		psi := &PSI{}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			n, err := number(v)
			if !ok || err != nil {
				return fmt.Errorf("%q is not key=number", kv)
			}
			switch k {
			case "avg10":
				psi.Avg10 = n
			case "avg60":
				psi.Avg60 = n
			case "avg300":
				psi.Avg300 = n
			case "total":
				psi.TotalUsec = n
			}
		}
		switch f[0] {
		case "some":
			p.Some = psi
		case "full":
			p.Full = psi
		}
	}
	if p.Some == nil {
		return fmt.Errorf("no \"some\" line")
	}
	s.Pressure[resource] = p
	return nil
}

func (s *Sample) parseCgroup(path, body string) error {
	kv := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if n, err := number(f[1]); err == nil {
			kv[f[0]] = n
		}
	}
	c := &CgroupCPU{Periods: kv["nr_periods"], Throttled: kv["nr_throttled"], Path: path}
	_, hasPeriods := kv["nr_periods"]
	switch us, v2 := kv["throttled_usec"]; {
	case v2:
		c.ThrottledUsec, c.Version = us, 2
	case hasPeriods:
		c.ThrottledUsec, c.Version = kv["throttled_time"]/1000, 1
	default:
		// cgroup v2 without the cpu controller enabled has usage but no throttling fields: no
		// quota can throttle it, which is worth nothing here.
		return nil
	}
	if s.Cgroup == nil {
		s.Cgroup = c
	}
	return nil
}

func (s *Sample) parseSysctl(name, body string) error {
	v := strings.Join(strings.Fields(body), " ")
	if v == "" {
		return fmt.Errorf("empty")
	}
	s.Sysctls[name] = v
	switch name {
	case "fs.file-nr":
		n, err := floats(strings.Fields(v), 3)
		if err != nil || len(n) != 3 {
			return fmt.Errorf("want three numbers, got %q", v)
		}
		s.FileNr = &FileNr{Allocated: n[0], Unused: n[1], Max: n[2]}
	case "net.netfilter.nf_conntrack_count", SysctlConntrackMax:
		n, err := number(v)
		if err != nil {
			return err
		}
		if s.Conntrack == nil {
			s.Conntrack = &Conntrack{}
		}
		if name == SysctlConntrackMax {
			s.Conntrack.Max = n
		} else {
			s.Conntrack.Count = n
		}
	}
	return nil
}

// floats parses at least min fields as numbers; it stops at the first field that is not one.
func floats(fields []string, min int) ([]float64, error) {
	out := make([]float64, 0, len(fields))
	for _, f := range fields {
		n, err := number(f)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	if len(out) < min {
		return nil, fmt.Errorf("want at least %d numbers, got %d", min, len(out))
	}
	return out, nil
}

// PortRange returns the ephemeral port range from net.ipv4.ip_local_port_range.
func (s *Sample) PortRange() (lo, hi int, ok bool) {
	f := strings.Fields(s.Sysctls[SysctlPortRange])
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi < lo {
		return 0, 0, false
	}
	return lo, hi, true
}

// number parses a counter or gauge of a kernel file: a finite number that is not negative
// (ParseFloat alone takes "NaN" and "-Inf").
func number(s string) (float64, error) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(n) || math.IsInf(n, 0) || n < 0 {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return n, nil
}
