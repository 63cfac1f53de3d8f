package diagnose

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fatih/color"
)

// TextOptions control the human rendering.
type TextOptions struct {
	// Color turns on ANSI colours; the caller decides (NO_COLOR, terminal or not).
	Color bool
	// Verbose adds the rules skipped for missing evidence.
	Verbose bool
}

type palette struct {
	err, warn, info, bold, dim *color.Color
}

func newPalette(on bool) palette {
	mk := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if on {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	return palette{
		err:  mk(color.FgRed, color.Bold),
		warn: mk(color.FgYellow, color.Bold),
		info: mk(color.FgCyan),
		bold: mk(color.Bold),
		dim:  mk(color.Faint),
	}
}

func (p palette) severity(s Severity) *color.Color {
	switch s {
	case SeverityError:
		return p.err
	case SeverityWarning:
		return p.warn
	}
	return p.info
}

// RenderText writes a report for people: each finding with its evidence, explanation and fix,
// most likely cause first.
func RenderText(w io.Writer, r *Report, opts TextOptions) error {
	r = r.forTerminal()
	p := newPalette(opts.Color)
	bw := bufio.NewWriterSize(w, 32<<10) // one write for the report, not one per line
	defer bw.Flush()
	tw := &errWriter{w: bw}
	tw.printf("%s %s\n", p.bold.Sprint("Diagnosis of"), r.Target)
	tw.printf("%s\n", p.dim.Sprint("Numbers: "+r.Basis))
	for _, warn := range r.Warnings {
		tw.printf("%s %s\n", p.warn.Sprint("!"), warn)
	}
	tw.printf("\n")
	switch {
	case len(r.Findings) == 0 && r.Unexplained != "":
		tw.printf("%s %s\n", p.warn.Sprint("?"), r.Unexplained)
	case len(r.Findings) == 0:
		tw.printf("%s No problems found in the evidence.\n", p.info.Sprint("✓"))
	}
	for i, f := range r.Findings {
		renderFinding(tw, p, i+1, f)
	}
	if opts.Verbose && len(r.Skipped) > 0 {
		tw.printf("%s\n", p.dim.Sprint("Rules skipped for missing evidence:"))
		for _, s := range r.Skipped {
			tw.printf("  %s (needs %s)\n", s.Rule, joinInputs(s.Missing))
		}
		tw.printf("\n")
	}
	tw.printf("%s\n", summaryLine(r))
	if tw.err != nil {
		return tw.err
	}
	return bw.Flush()
}

func renderFinding(tw *errWriter, p palette, n int, f Finding) {
	sev := p.severity(f.Severity)
	tw.printf("%d. %s %s [%s] %s\n", n, sev.Sprint(strings.ToUpper(string(f.Severity))), f.Code, f.Category, p.bold.Sprint(f.Subject.String()))
	tw.printf("   %s\n", f.Title)
	if len(f.Evidence) > 0 {
		tw.printf("   Evidence:\n")
		for _, e := range f.Evidence {
			tw.printf("     - %s: %s   %s\n", e.Label, formatValue(e), p.dim.Sprint("["+e.Source+"]"))
		}
	}
	if f.Explanation != "" {
		tw.printf("   Why: %s\n", f.Explanation)
	}
	if f.Fix.Summary != "" {
		tw.printf("   Fix: %s\n", f.Fix.Summary)
	}
	if f.Fix.Command != "" {
		tw.printf("%s\n", indent(f.Fix.Command, "     $ "))
	}
	if f.Fix.YAML != "" {
		tw.printf("%s\n", indent(strings.TrimRight(f.Fix.YAML, "\n"), "     "))
	}
	tw.printf("   %s\n\n", p.dim.Sprint("Docs: "+f.Doc))
}

// formatValue prints a figure with its unit the way a person reads it.
func formatValue(e Evidence) string {
	if e.Text != "" {
		return e.Text
	}
	v := strconv.FormatFloat(e.Value, 'f', -1, 64)
	if e.Unit == UnitMillis && e.Value >= 10000 && e.Value == math.Trunc(e.Value) {
		// 3600000 ms reads better as 1h: long timeouts come from config in whole seconds.
		return v + " ms (" + shortDuration(time.Duration(e.Value)*time.Millisecond) + ")"
	}
	switch e.Unit {
	case "", UnitCount:
		return v
	case UnitPerSecond, UnitPercent:
		return v + e.Unit
	}
	return v + " " + e.Unit
}

func summaryLine(r *Report) string {
	counts := map[Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	return fmt.Sprintf("%s, %s, %s.", plural(counts[SeverityError], "error"), plural(counts[SeverityWarning], "warning"), plural(counts[SeverityInfo], "note"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func joinInputs(in []Input) string {
	s := make([]string, len(in))
	for i, x := range in {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

func indent(s, prefix string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if i > 0 && strings.HasPrefix(prefix, "     $") {
			lines[i] = "       " + l
			continue
		}
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// errWriter keeps the first write error so rendering code stays linear.
type errWriter struct {
	w   io.Writer
	err error
}

// Write lets a tab writer print through e; after the first error it writes nothing.
func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, a...)
}
