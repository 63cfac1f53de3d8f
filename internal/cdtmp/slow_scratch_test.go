package envoyadmin

import (
	"os"
	"testing"
	"time"
)

func TestScratchSlow(t *testing.T) {
	d, _ := os.ReadFile("/tmp/cdscratch/slow.json")
	for range 5 {
		start := time.Now()
		s, err := ParseConfigDump(d)
		t.Logf("%v err=%v", time.Since(start), err)
		if s != nil {
			t.Logf("warnings %d clusters %d", len(s.Warnings), len(s.Clusters))
		}
	}
}
