package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Exit codes scripts rely on: 0 ran, 1 findings, 2 usage or unreadable input.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{UsageError("bad flag %q", "x"), 2},
		{fmt.Errorf("wrapped: %w", UsageError("bad")), 2},
		{errors.New("a failure with no code of its own"), ExitUsage},
		{&ExitError{Code: ExitFindings}, ExitFindings}, // findings at or above --fail-on: 1, never 2
	} {
		if got := Code(tc.err); got != tc.want {
			t.Errorf("Code(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOutputFormats(t *testing.T) {
	for _, o := range []string{"", "json", "yaml"} {
		if err := ValidateOutput(o); err != nil {
			t.Errorf("%q: %v", o, err)
		}
	}
	if err := ValidateOutput("xml"); err == nil || Code(err) != 2 {
		t.Errorf("xml: %v", err)
	}
	v := map[string]any{"name": "web-0", "n": 2}
	for format, want := range map[string]string{"json": `"name": "web-0"`, "yaml": "name: web-0"} {
		var b bytes.Buffer
		done, err := PrintStructured(&b, format, v)
		if !done || err != nil || !strings.Contains(b.String(), want) {
			t.Errorf("%s: %v %v %q", format, done, err, b.String())
		}
	}
	if done, _ := PrintStructured(&bytes.Buffer{}, "", v); done {
		t.Error("text output was printed as structured")
	}
}
