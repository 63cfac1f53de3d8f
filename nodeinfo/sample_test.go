package nodeinfo

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseProbeGNU reads GNU tail's output on a cgroup v1 machine, where two of the three
// cpu.stat paths are missing (tail said so on stderr, which is not part of the output).
func TestParseProbeGNU(t *testing.T) {
	s, err := ParseProbe(readFixture(t, "gnu-cgroupv1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) > 0 {
		t.Errorf("problems: %v", s.Problems)
	}
	want := CPUTimes{User: 910860, System: 114993, Idle: 799426, IOWait: 3654, SoftIRQ: 2137, Steal: 1385}
	if s.CPU == nil || *s.CPU != want || s.CPUs != 2 {
		t.Errorf("cpu %+v (%d CPUs), want %+v", s.CPU, s.CPUs, want)
	}
	if len(s.Disks) != 1 || s.Disks[0].Name != "vda" || s.Disks[0].Reads != 225758 || s.Disks[0].WriteMs != 336310 || s.Disks[0].IOTicksMs != 80448 {
		t.Errorf("disks %+v, want vda only (loop and zram are not disks)", s.Disks)
	}
	if p := s.Pressure["cpu"]; p.Some == nil || p.Some.Avg10 != 76.57 || p.Full == nil {
		t.Errorf("cpu pressure %+v", p)
	}
	if c := s.Cgroup; c == nil || c.Version != 1 || c.Periods != 0 || !strings.HasSuffix(c.Path, PathCgroupV1) {
		t.Errorf("cgroup %+v", c)
	}
	if s.FileNr == nil || *s.FileNr != (FileNr{Allocated: 751, Max: 2465610}) {
		t.Errorf("file-nr %+v", s.FileNr)
	}
	if s.Conntrack == nil || *s.Conntrack != (Conntrack{Count: 0, Max: 262144}) {
		t.Errorf("conntrack %+v", s.Conntrack)
	}
	if lo, hi, ok := s.PortRange(); !ok || lo != 32768 || hi != 60999 {
		t.Errorf("port range %d-%d %v", lo, hi, ok)
	}
	if s.Sysctls[SysctlTWReuse] != "2" || s.Sysctls[SysctlSomaxconn] != "4096" || s.Sysctls[SysctlPortRange] != "32768 60999" {
		t.Errorf("sysctls %v", s.Sysctls)
	}
}

func TestParseProbeBusyboxCgroupV2(t *testing.T) {
	s, err := ParseProbe(readFixture(t, "busybox-cgroupv2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range s.Disks {
		names = append(names, d.Name)
	}
	// nvme0n10 is a namespace of its own, not partition 0 of nvme0n1.
	if want := []string{"nvme0n1", "nvme0n10", "sda"}; !reflect.DeepEqual(names, want) {
		t.Errorf("disks %v, want %v", names, want)
	}
	if c := s.Cgroup; c == nil || c.Version != 2 || c.Throttled != 402113 || c.ThrottledUsec != 91245113042 {
		t.Errorf("cgroup %+v", c)
	}
	if p := s.Pressure["cpu"]; p.Some == nil || p.Full != nil {
		t.Errorf("cpu pressure %+v: an older kernel has no full line for cpu", p)
	}
	if s.FileNr.Max != 9223372036854775807 {
		t.Errorf("file-max %v", s.FileNr.Max)
	}
}

func TestParseProbeLenient(t *testing.T) {
	cases := []struct {
		name, text string
		err        bool
		problems   int
		check      func(t *testing.T, s *Sample)
	}{
		{"not tail output", "cpu 1 2 3 4\n", true, 0, nil},
		{"empty", "", true, 0, nil},
		{"busybox with one file opened prints no header", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", true, 0, nil},
		{"relative paths of a replay", "==> proc/stat <==\ncpu 1 0 1 10 0 0 0 2\n\n==> proc/sys/net/netfilter/nf_conntrack_count <==\n5\n", false, 0,
			func(t *testing.T, s *Sample) {
				if s.CPU == nil || s.CPU.Steal != 2 || s.Conntrack == nil || s.Conntrack.Count != 5 {
					t.Errorf("%+v %+v", s.CPU, s.Conntrack)
				}
			}},
		{"a debug container's view through /proc/1/root", "==> /proc/1/root/sys/fs/cgroup/cpu.stat <==\nnr_periods 10\nnr_throttled 4\nthrottled_usec 100\n", false, 0,
			func(t *testing.T, s *Sample) {
				if s.Cgroup == nil || s.Cgroup.Throttled != 4 {
					t.Errorf("%+v", s.Cgroup)
				}
			}},
		{"cgroup v2 without the cpu controller", "==> /sys/fs/cgroup/cpu.stat <==\nusage_usec 5\n", false, 0,
			func(t *testing.T, s *Sample) {
				if s.Cgroup != nil {
					t.Errorf("%+v", s.Cgroup)
				}
			}},
		{"garbage in files", "==> /proc/stat <==\nintr 1\n==> /proc/pressure/io <==\nsome avg10=x\n==> /proc/sys/fs/file-nr <==\n1 2\n==> /proc/diskstats <==\n 8 0 sda 1 2\n==> /etc/passwd <==\nroot:x:0:0\n", false, 5, nil},
		{"NaN and negative counts are not counts", "==> /proc/stat <==\ncpu NaN 0 1 10\n==> /proc/sys/net/netfilter/nf_conntrack_count <==\n-1\n", false, 2, nil},
		{"CRLF line ends", "==> /proc/sys/net/ipv4/ip_local_port_range <==\r\n1024\t65535\r\n", false, 0,
			func(t *testing.T, s *Sample) {
				if lo, hi, ok := s.PortRange(); !ok || lo != 1024 || hi != 65535 {
					t.Errorf("%d %d %v", lo, hi, ok)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseProbe(tc.text)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if len(s.Problems) != tc.problems {
				t.Errorf("problems %q, want %d", s.Problems, tc.problems)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestInterval(t *testing.T) {
	a, err := ParseProbe(readFixture(t, "busybox-cgroupv2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseProbe(readFixture(t, "busybox-cgroupv2.txt"))
	// 10 s on 2 CPUs is 2000 jiffies: 600 steal, 200 iowait, 800 busy, 400 idle.
	b.CPU.User += 800
	b.CPU.Steal += 600
	b.CPU.IOWait += 200
	b.CPU.Idle += 400
	b.Disks[0].Reads += 100
	b.Disks[0].Writes += 100
	b.Disks[0].ReadMs += 5000
	b.Disks[0].WriteMs += 15000
	b.Disks[0].IOTicksMs += 9000
	b.Cgroup.Periods += 100
	b.Cgroup.Throttled += 40
	b.Cgroup.ThrottledUsec += 2.5e6
	b.Pressure["io"] = Pressure{Some: &PSI{Avg10: 31, TotalUsec: a.Pressure["io"].Some.TotalUsec + 3e6}}
	b.Disks[2].Reads-- // counters that went down: left out

	iv := NewInterval(a, b, 10)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if c := iv.CPU; c == nil || !near(c.StealPct, 30) || !near(c.IOWaitPct, 10) || !near(c.BusyPct, 40) {
		t.Errorf("cpu %+v", iv.CPU)
	}
	if len(iv.Disks) != 2 || iv.Disks[0].Name != "nvme0n1" || !near(iv.Disks[0].AwaitMs, 100) || !near(iv.Disks[0].UtilPct, 90) || iv.Disks[1].IOs != 0 {
		t.Errorf("disks %+v", iv.Disks)
	}
	if c := iv.Cgroup; c == nil || !near(c.ThrottledRatio, 0.4) || !near(c.ThrottledPerSecond, 0.25) {
		t.Errorf("cgroup %+v", iv.Cgroup)
	}
	if p := iv.Pressure["io"]; !near(p.SomePct, 30) || p.Avg10 != 31 {
		t.Errorf("io pressure %+v", p)
	}
	if NewInterval(a, b, 0) != nil || NewInterval(nil, b, 10) != nil {
		t.Error("an interval without time or a first sample")
	}
}

func TestCadvisor(t *testing.T) {
	text := []byte(readFixture(t, "cadvisor.prom"))
	kept := FilterCadvisor(text, "default", "productpage-v1-6c5b8d6b9f-k7x2m")
	if strings.Contains(string(kept), "details") || strings.Contains(string(kept), "machine_cpu_cores") {
		t.Errorf("another pod's or the machine's lines kept:\n%s", kept)
	}
	if !strings.Contains(string(kept), "# TYPE container_cpu_cfs_periods_total counter\n") {
		t.Errorf("TYPE lines dropped:\n%s", kept)
	}
	if FilterCadvisor(text, "other", "productpage-v1-6c5b8d6b9f-k7x2m") != nil {
		t.Error("the pod name alone matched: the namespace must match too")
	}
	c, err := ParseCadvisor(kept)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Names(); !reflect.DeepEqual(got, []string{"istio-proxy", "productpage"}) {
		t.Fatalf("containers %v (the pod-level series has no container name)", got)
	}
	app := c.Containers["productpage"]
	if !app.HasCFS || app.Throttled != 21000 || app.ThrottledSeconds != 1630.2 || app.UsageSeconds != 2101.7 || app.QuotaCores != 0.5 {
		t.Errorf("productpage %+v", app)
	}
	if c.Containers["istio-proxy"].QuotaCores != 2 {
		t.Errorf("istio-proxy %+v", c.Containers["istio-proxy"])
	}

	if app.TimestampMs != 1713276131000 {
		t.Errorf("timestamp %d, want the series' 1713276131000", app.TimestampMs)
	}
	later, _ := ParseCadvisor(kept)
	later.Containers["productpage"].Periods += 100
	later.Containers["productpage"].Throttled += 60
	later.Containers["productpage"].ThrottledSeconds += 3
	later.Containers["productpage"].TimestampMs += 10_000
	later.Containers["istio-proxy"].Periods -= 1 // restarted
	later.Containers["istio-proxy"].TimestampMs += 10_000
	iv := CadvisorInterval(c, later, 10)
	if got := iv["productpage"]; got.ThrottledRatio != 0.6 || got.ThrottledPerSecond != 0.3 || got.Periods != 100 {
		t.Errorf("productpage interval %+v", got)
	}
	if _, ok := iv["istio-proxy"]; ok {
		t.Error("a restarted container's counters went down; it has no interval")
	}
	// Scraped 10 s apart, but cAdvisor's readings are 15 s apart: the rate is over its 15 s.
	later.Containers["productpage"].TimestampMs += 5_000
	if got := CadvisorInterval(c, later, 10)["productpage"]; got.ThrottledPerSecond != 0.2 {
		t.Errorf("interval over cAdvisor's timestamps: %+v, want 3 s throttled over 15 s", got)
	}
	// One reading scraped twice is no interval at all.
	same, _ := ParseCadvisor(kept)
	if iv := CadvisorInterval(c, same, 10); len(iv) != 0 {
		t.Errorf("one cAdvisor reading twice gave an interval: %+v", iv)
	}
	// Without timestamps, the scrapes' window is the interval.
	noTS, _ := ParseCadvisor(kept)
	later.Containers["productpage"].TimestampMs, noTS.Containers["productpage"].TimestampMs = 0, 0
	if got := CadvisorInterval(noTS, later, 10)["productpage"]; got.ThrottledPerSecond != 0.3 {
		t.Errorf("interval without timestamps: %+v", got)
	}

	split := SplitCadvisor(text)
	if len(split) != 2 || !bytes.Equal(split[PodKey("default", "productpage-v1-6c5b8d6b9f-k7x2m")], kept) {
		t.Errorf("split into %d pods; the productpage pod's lines differ from FilterCadvisor's", len(split))
	}
	details, err := ParseCadvisor(split[PodKey("default", "details-v1-5f4d584748-9lqkz")])
	if err != nil || details.Containers["details"] == nil {
		t.Errorf("details pod from the split: %v %+v", err, details)
	}
	if _, err := ParseCadvisor([]byte("container_cpu_cfs_periods_total{container=\"a\" 1\n")); err == nil {
		t.Error("malformed text parsed")
	}
}

func TestProbeCommand(t *testing.T) {
	cmd := ProbeCommand("/")
	if strings.Join(cmd[:3], " ") != "tail -n +1" || cmd[3] != "/proc/stat" {
		t.Errorf("command %v", cmd)
	}
	seen := map[string]bool{}
	for _, f := range cmd[3:] {
		if seen[f] {
			t.Errorf("%s read twice", f)
		}
		seen[f] = true
	}
	for _, tu := range SeedTuning {
		if !seen["/"+SysctlPath(tu.Name)] {
			t.Errorf("the probe does not read %s", tu.Name)
		}
	}
	if got := ProbeFiles("")[0]; got != "proc/stat" {
		t.Errorf("relative root: %s", got)
	}
}
