package main

import (
	"os"
	"strings"
	"testing"
)

// version, like every short command, runs no garbage collection: the 3 MB that package inits
// allocate for good (protobuf's and client-go's registries) would otherwise reach Go's first
// collection during init (see internal/startupgc). A new dependency or package-level table that
// brings it back fails here.
func TestVersionRunsNoCollection(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set in the environment, which kubectl-mesh obeys")
	}
	r := runEnv(t, []string{"GODEBUG=gctrace=1"}, "version")
	if r.code != 0 {
		t.Fatalf("version: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "gc ") {
			t.Errorf("version ran a garbage collection: %s", line)
		}
	}
}
