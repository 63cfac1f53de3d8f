// Package golden compares test output with files under testdata, and rewrites them when the
// environment says so: UPDATE_GOLDEN=1 go test ./... (an environment variable reaches every
// test binary, where a flag would have to be declared in each).
package golden

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// EnvUpdate names the environment variable that makes Check rewrite golden files.
const EnvUpdate = "UPDATE_GOLDEN"

// Updating reports whether golden files are being rewritten.
func Updating() bool { return os.Getenv(EnvUpdate) == "1" }

// Check compares got with the golden file at path and shows the lines that differ, or rewrites
// the file when UPDATE_GOLDEN=1.
func Check(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if Updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (create it with %s=1 go test)", err, EnvUpdate)
	}
	if !bytes.Equal(got, want) {
		tb.Errorf("%s differs (check the change, then rewrite it with %s=1 go test):\n%s", path, EnvUpdate, Diff(string(want), string(got)))
	}
}

// Diff shows the first lines that differ between want and got, enough to see what changed.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 8; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	if shown == 0 && len(want) != len(got) {
		fmt.Fprintf(&b, "the same lines, %d bytes against %d (line endings or a final newline)\n", len(want), len(got))
	}
	return b.String()
}
