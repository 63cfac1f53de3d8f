package startupgc

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// gcPercent reads GOGC (SetGCPercent is the only way to read it).
func gcPercent() int {
	p := debug.SetGCPercent(Percent)
	debug.SetGCPercent(p)
	return p
}

// The first collection's end puts Go's default back, whenever that collection comes.
func TestFirstCollectionRestoresTheDefault(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set: the package leaves it alone")
	}
	runtime.GC()
	for deadline := time.Now().Add(5 * time.Second); gcPercent() != 100; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d 5 s after a collection, want 100", gcPercent())
		}
	}
}
