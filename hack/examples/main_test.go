package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFinishWritesOnlyWhenAllAsExpected(t *testing.T) {
	mismatch := Mismatch{Command: "kubectl mesh nodes --window 2s", What: "exit code", Want: "1", Got: "0"}
	cases := []struct {
		name       string
		check      bool
		mismatches []Mismatch
		code       int
		doc        string // the doc's content afterwards
		stderr     string
	}{
		{name: "all as expected", code: 0, doc: "new"},
		{name: "all as expected, -check", check: true, code: 0, doc: "old"},
		{name: "a mismatch", mismatches: []Mismatch{mismatch}, code: 1, doc: "old",
			stderr: "kubectl mesh nodes --window 2s: exit code: expected 1, got 0\nexamples: 1 mismatches in 24 examples (1m0s); examples.md was not written\n"},
		{name: "a mismatch, -check", check: true, mismatches: []Mismatch{mismatch}, code: 1, doc: "old",
			stderr: "kubectl mesh nodes --window 2s: exit code: expected 1, got 0\nexamples: 1 mismatches in 24 examples (1m0s)\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			o := options{check: tc.check, out: filepath.Join(root, "examples.md")}
			if err := os.WriteFile(o.out, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			if code := finish(o, root, "new", tc.mismatches, 24, time.Minute, &stdout, &stderr); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if b, _ := os.ReadFile(o.out); string(b) != tc.doc {
				t.Errorf("the doc holds %q, want %q", b, tc.doc)
			}
			if stderr.String() != tc.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), tc.stderr)
			}
		})
	}
}
