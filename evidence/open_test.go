package evidence

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// readSized must return the file as it is when read, whatever its stat said, and stop one byte
// past the limit.
func TestReadSized(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100) // 1,000 bytes
	for _, tc := range []struct {
		name        string
		size, limit int64
		want        int
	}{
		{"size as stat said", 1000, 4096, 1000},
		{"grew since its stat", 10, 4096, 1000},
		{"shrank since its stat", 3000, 4096, 1000},
		{"no size", 0, 4096, 1000},
		{"over the limit", 1000, 100, 101},
		{"at the limit", 1000, 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := readSized(f, tc.size, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[:tc.want]) {
				t.Errorf("read %d bytes, want the first %d", len(got), tc.want)
			}
		})
	}
}

// A file read whole is one allocation of its own size, not io.ReadAll's growing copies.
func TestReadFileAllocatesOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config_dump.json")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var n int
	allocs := testing.AllocsPerRun(5, func() {
		b, err := ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n = len(b)
	})
	if n != 1<<20 {
		t.Fatalf("read %d bytes, want %d", n, 1<<20)
	}
	// The buffer, the *os.File and its internals, the FileInfo: a handful, not ~20 growths.
	if allocs > 8 {
		t.Errorf("ReadFile of 1 MiB: %.0f allocations, want at most 8", allocs)
	}
}
