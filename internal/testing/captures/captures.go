// Package captures locates the real Envoy admin outputs in ../shared/captures for tests.
//
// The captures are not part of this repository (their licences and size keep them outside), so
// tests read them in place. MESH_CAPTURES_DIR moves the folder. When it is missing, tests fail in
// CI (CI=true), where a silent skip would hide that nothing was tested, and skip elsewhere.
package captures

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

// Dir returns the captures folder, or ends the test when it is missing.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("MESH_CAPTURES_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		// internal/testing/captures/captures.go -> repository root -> ../shared/captures
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "shared", "captures")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		msg := "real Envoy captures not found at " + dir + ": put the shared folder beside the repository or set MESH_CAPTURES_DIR"
		if os.Getenv("CI") == "true" || Fuzzing() {
			// A fuzz run is asked for: one without its seeds would pass having tested nothing.
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return dir
}

// Fuzzing reports whether this test binary runs a fuzz target (go test -fuzz), not only its
// seeds as regression tests.
func Fuzzing() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != ""
}

// MaxFuzzSeed bounds the seeds a fuzz run starts from: the fuzzer runs every seed before it
// mutates, and a seed of hundreds of KiB would take all of a short run (make fuzz gives each
// target seconds). Larger captures stay seeds of the plain test run, where they are the
// regression tests.
const MaxFuzzSeed = 16 << 10

// Seed adds data to a fuzz target's seeds, unless a fuzz run is on and it is over MaxFuzzSeed.
func Seed(f *testing.F, data []byte) {
	if Fuzzing() && len(data) > MaxFuzzSeed {
		return
	}
	f.Add(data)
}

// Files returns the files of one endpoint's folder ("config_dump", "stats_text", ...), sorted.
// It fails the test when the folder holds none, since a test over zero files proves nothing.
func Files(tb testing.TB, endpoint string) []string {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(Dir(tb), endpoint, "*"))
	if err != nil {
		tb.Fatal(err)
	}
	var files []string
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		tb.Fatalf("no captures in %s/%s", Dir(tb), endpoint)
	}
	sort.Strings(files)
	return files
}

// Path returns the path of one capture file, relative to the captures folder.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(Dir(tb), rel)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("capture %s: %v", rel, err)
	}
	return p
}

// Read returns the content of one capture file.
func Read(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, rel))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
