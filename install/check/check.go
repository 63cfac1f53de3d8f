// Package check holds the checks `kubectl mesh install --check` and `kubectl mesh status` run:
// data (a category, an outcome, what was found, what to do), rendered as text with a mark per
// check and the fix under each that is not ok, or as JSON and YAML from the same list.
package check

import (
	"fmt"
	"io"

	"github.com/fatih/color"
)

// Status is the outcome of one check.
type Status string

// Outcomes.
const (
	OK      Status = "ok"
	Warning Status = "warning"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// Check is one check: what was checked, what was found, and what to do when it is not ok.
type Check struct {
	Category string `json:"category"`
	Status   Status `json:"status"`
	Message  string `json:"message"`
	Fix      string `json:"fix,omitempty"`
}

// AnyFailed reports whether any check failed.
func AnyFailed(checks []Check) bool {
	for _, c := range checks {
		if c.Status == Failed {
			return true
		}
	}
	return false
}

// Render prints the checks grouped by category in their order, a mark for each (✓ ok, ! warning,
// ✗ failed, - skipped), the fix under every check that is not ok, and a last line that counts
// them. Colour only when asked (terminals, without NO_COLOR).
func Render(w io.Writer, title string, checks []Check, useColor bool) error {
	paint := func(c *color.Color, s string) string {
		if !useColor {
			return s
		}
		c.EnableColor()
		return c.Sprint(s)
	}
	marks := map[Status]string{
		OK: paint(color.New(color.FgGreen), "✓"), Warning: paint(color.New(color.FgYellow), "!"),
		Failed: paint(color.New(color.FgRed), "✗"), Skipped: "-",
	}
	if title != "" {
		fmt.Fprintln(w, title)
	}
	last := ""
	count := map[Status]int{}
	for _, c := range checks {
		if c.Category != last {
			fmt.Fprintln(w, c.Category)
			last = c.Category
		}
		count[c.Status]++
		fmt.Fprintf(w, "  %s %s\n", marks[c.Status], c.Message)
		if c.Fix != "" && c.Status != OK {
			fmt.Fprintf(w, "      fix: %s\n", c.Fix)
		}
	}
	_, err := fmt.Fprintf(w, "\n%d ok, %d warnings, %d failed, %d skipped.\n", count[OK], count[Warning], count[Failed], count[Skipped])
	return err
}
