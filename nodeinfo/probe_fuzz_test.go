package nodeinfo

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseProbe feeds the parser arbitrary text, seeded with the fixtures and the incidents'
// node samples: it must not panic, and what it returns must be usable by the interval.
func FuzzParseProbe(f *testing.F) {
	for _, name := range []string{"gnu-cgroupv1.txt", "busybox-cgroupv2.txt"} {
		f.Add(readFixture(f, name))
	}
	incidents, _ := filepath.Glob(filepath.Join("..", "testdata", "incidents", "*", "node*.txt"))
	for _, p := range incidents {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("==> /proc/stat <==\ncpu 1 2 3 4 5 6 7 8\n==> /proc/diskstats <==\n 8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseProbe(text)
		if err != nil {
			if s != nil {
				t.Error("a sample with an error")
			}
			return
		}
		iv := NewInterval(s, s, 1)
		if iv == nil {
			t.Fatal("no interval of a sample with itself")
		}
		if c := iv.CPU; c != nil && (math.IsNaN(c.StealPct) || c.StealPct != 0) {
			t.Errorf("steal of a sample against itself: %v", c.StealPct)
		}
		for _, d := range iv.Disks {
			if d.IOs != 0 || math.IsNaN(d.AwaitMs) {
				t.Errorf("disk %+v", d)
			}
		}
	})
}

func FuzzCadvisor(f *testing.F) {
	f.Add([]byte(readFixture(f, "cadvisor.prom")))
	f.Add([]byte("container_cpu_cfs_periods_total{container=\"a\",namespace=\"n\",pod=\"p\"} 1 1000\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		for key, lines := range SplitCadvisor(text) {
			ns, pod, _ := strings.Cut(key, "/")
			if got := FilterCadvisor(text, ns, pod); string(got) != string(lines) {
				t.Fatalf("FilterCadvisor and SplitCadvisor differ for %s", key)
			}
			c, err := ParseCadvisor(lines)
			if err != nil {
				continue
			}
			for name, iv := range CadvisorInterval(c, c, 10) {
				// One reading twice: no interval with timestamps, an empty one without.
				if c.Containers[name].TimestampMs > 0 || iv.Periods != 0 || iv.Throttled != 0 || iv.ThrottledPerSecond != 0 {
					t.Errorf("a reading against itself gave %s an interval: %+v", name, iv)
				}
			}
		}
	})
}
