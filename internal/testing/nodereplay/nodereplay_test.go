package nodereplay

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

func TestInterpolate(t *testing.T) {
	cases := []struct {
		name, a, b string
		frac       float64
		want       string
	}{
		{"half way", "cpu0 100 0 50\n", "cpu0 200 0 150\n", 0.5, "cpu0 150 0 100\n"},
		{"beyond the window", "nr_throttled 10\n", "nr_throttled 20\n", 3, "nr_throttled 40\n"},
		{"decimals kept", "some avg10=1.00 total=100\n", "some avg10=3.00 total=300\n", 0.25, "some avg10=1.50 total=150\n"},
		{"huge equal limits exact", "4128\t0\t9223372036854775807\n", "4136\t0\t9223372036854775807\n", 0.5, "4132\t0\t9223372036854775807\n"},
		{"never below zero", "5\n", "1\n", 10, "0\n"},
		{"another shape keeps the first", "1 2\n", "1 2 3\n", 0.5, "1 2\n"},
		{"no second", "7\n", "", 0.5, "7\n"},
	}
	for _, tc := range cases {
		if got := Interpolate(tc.a, tc.b, tc.frac); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// readProbe reads the replayed files as the probe would print them.
func readProbe(t *testing.T, dir string) *nodeinfo.Sample {
	t.Helper()
	var b strings.Builder
	for _, p := range nodeinfo.ProbeFiles("") {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("==> " + p + " <==\n" + string(data) + "\n")
	}
	s, err := nodeinfo.ParseProbe(b.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Problems) > 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	return s
}

// TestReplayMeasuresTheIncident: two reads of a replay of node-cpu-steal, any time apart,
// measure the incident's 38% steal.
func TestReplayMeasuresTheIncident(t *testing.T) {
	dir := t.TempDir()
	r, err := Start(context.Background(), "../../../testdata/incidents/node-cpu-steal", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	begin := time.Now()
	first := readProbe(t, dir)
	time.Sleep(500 * time.Millisecond)
	second := readProbe(t, dir)
	iv := nodeinfo.NewInterval(first, second, time.Since(begin).Seconds())
	if iv.CPU == nil || math.Abs(iv.CPU.StealPct-38) > 1 {
		t.Errorf("steal %+v, want about 38%%", iv.CPU)
	}
	if got := second.Sysctls[nodeinfo.SysctlPortRange]; got != "1024 65535" {
		t.Errorf("port range %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "sys/fs/cgroup/cpu.stat")); err != nil {
		t.Error(err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), "../../../testdata/incidents/timeout", t.TempDir()); err == nil || !strings.Contains(err.Error(), "node.txt") {
		t.Errorf("err = %v, want the missing node.txt named", err)
	}
}
