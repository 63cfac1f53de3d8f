package diagnose

import (
	"fmt"
	"strings"
	"unicode"
)

// Everything a report prints may have come from a stranger's evidence: pod and cluster names,
// config dump fields, pasted text. Before text output, control characters (ESC sequences that
// set a terminal's title or clear its screen, BEL, C1 controls) and the Unicode formatting
// characters that reorder a line (bidi overrides) are written as visible escapes. JSON and YAML
// output escape them by themselves.

// termSafe escapes what a terminal would act on; newline and tab are kept where multiline is
// true (commands and YAML), escaped elsewhere.
func termSafe(s string, multiline bool) string {
	if !needsEscape(s, multiline) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case (r == '\n' || r == '\t') && multiline:
			b.WriteRune(r)
		case r == unicode.ReplacementChar:
			b.WriteString(`\ufffd`)
		case unsafeRune(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func needsEscape(s string, multiline bool) bool {
	// Printable ASCII, nearly all of what is printed, is checked a byte at a time; the rest
	// rune by rune from the first byte that is not.
	i := 0
	for ; i < len(s) && s[i] >= 0x20 && s[i] < 0x7f; i++ {
	}
	for _, r := range s[i:] {
		if unsafeRune(r) && !((r == '\n' || r == '\t') && multiline) {
			return true
		}
	}
	return false
}

// unsafeRune reports C0 and C1 controls, DEL, and the bidi and other invisible formatting
// characters (category Cf).
func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Cf, r)
}

// TermSafe makes a line from input safe to print to a terminal (errors, warnings).
func TermSafe(s string) string { return termSafe(s, false) }

// forTerminal returns a copy of the report whose strings are safe to print.
func (r *Report) forTerminal() *Report {
	c := *r
	one := func(s string) string { return termSafe(s, false) }
	c.Target, c.Basis, c.Unexplained = one(r.Target), one(r.Basis), one(r.Unexplained)
	c.Warnings = make([]string, len(r.Warnings))
	for i, w := range r.Warnings {
		c.Warnings[i] = one(w)
	}
	c.Findings = make([]Finding, len(r.Findings))
	for i, f := range r.Findings {
		c.Findings[i] = f.forTerminal()
	}
	return &c
}

func (f Finding) forTerminal() Finding {
	one := func(s string) string { return termSafe(s, false) }
	f.Title, f.Explanation, f.Subject.Name, f.Doc = one(f.Title), one(f.Explanation), one(f.Subject.Name), one(f.Doc)
	ev := make([]Evidence, len(f.Evidence))
	for i, e := range f.Evidence {
		e.Label, e.Text, e.Source, e.Unit = one(e.Label), one(e.Text), one(e.Source), one(e.Unit)
		ev[i] = e
	}
	f.Evidence = ev
	f.Fix.Summary = one(f.Fix.Summary)
	f.Fix.Command, f.Fix.YAML = termSafe(f.Fix.Command, true), termSafe(f.Fix.YAML, true)
	return f
}

// forTerminal returns a copy of the sweep whose strings are safe to print.
func (r *SweepReport) forTerminal() *SweepReport {
	c := *r
	one := func(s string) string { return termSafe(s, false) }
	c.Scope = one(r.Scope)
	c.Pods = make([]PodDiagnosis, len(r.Pods))
	for i, p := range r.Pods {
		p.Namespace, p.Pod, p.Error, p.Partial = one(p.Namespace), one(p.Pod), one(p.Error), one(p.Partial)
		if p.Report != nil {
			p.Report = p.Report.forTerminal()
		}
		c.Pods[i] = p
	}
	c.Unmeshed = make([]string, len(r.Unmeshed))
	for i, u := range r.Unmeshed {
		c.Unmeshed[i] = one(u)
	}
	return &c
}
