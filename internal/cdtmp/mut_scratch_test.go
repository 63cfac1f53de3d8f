package envoyadmin

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/captures"
)

func TestScratchMutate(t *testing.T) {
	files := captures.Files(t, "config_dump")
	r := rand.New(rand.NewSource(1))
	var seeds [][]byte
	for _, p := range files {
		rel, _ := filepath.Rel(captures.Dir(t), p)
		seeds = append(seeds, captures.Read(t, rel))
	}
	deadline := time.Now().Add(20 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		d := append([]byte(nil), seeds[r.Intn(len(seeds))]...)
		for k := r.Intn(8) + 1; k > 0; k-- {
			if len(d) == 0 {
				break
			}
			i := r.Intn(len(d))
			switch r.Intn(5) {
			case 0:
				d[i] = byte(r.Intn(256))
			case 1:
				d = append(d[:i], d[min(len(d), i+r.Intn(20)+1):]...)
			case 2:
				j := r.Intn(len(d))
				a, b := min(i, j), max(i, j)
				chunk := append([]byte(nil), d[a:min(b, a+200)]...)
				d = append(d[:i], append(chunk, d[i:]...)...)
			case 3:
				d[i] = "{}[]\",:\\"[r.Intn(8)]
			case 4:
				d = d[:i]
			}
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(3 * time.Second):
				os.WriteFile("/tmp/cdscratch/hang.json", d, 0o644)
				panic("hang")
			}
		}()
		start := time.Now()
		c0 := procCPU()
		ParseConfigDump(d)
		close(done)
		if cpu := procCPU() - c0; cpu > 100*time.Millisecond {
			t.Logf("cpu %v", cpu)
		}
		if el := time.Since(start); el > 300*time.Millisecond {
			t.Logf("slow input %d bytes: %v", len(d), el); if el > time.Second { os.WriteFile("/tmp/cdscratch/slow.json", d, 0o644) }
		}
		n++
	}
	t.Logf("%d inputs", n)
}
