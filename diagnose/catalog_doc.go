package diagnose

import (
	"fmt"
	"io"
	"strings"
)

// writeFindingsDoc writes docs/findings.md: every code of the catalog, by category, with its
// severity, title and what to do. Findings link to its anchors (CodeInfo.Doc).
func writeFindingsDoc(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Findings\n\n")
	b.WriteString("<!-- Generated from diagnose/catalog.go by `UPDATE_GOLDEN=1 go test ./diagnose`; do not edit. -->\n\n")
	b.WriteString("Every finding `kubectl mesh` reports has a code. Codes are stable: a code keeps its meaning and is never reused. The severity is the usual one; a rule may raise or lower it from the evidence.\n\n")
	b.WriteString("| code | category | severity | title |\n|---|---|---|---|\n")
	for _, c := range catalog {
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | %s |\n", c.Code, c.Code, c.Category, c.Severity, mdCell(c.Title))
	}
	for _, cat := range categories {
		var codes []CodeInfo
		for _, c := range catalog {
			if c.Category == cat {
				codes = append(codes, c)
			}
		}
		if len(codes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n", cat)
		for _, c := range codes {
			fmt.Fprintf(&b, "\n<a id=\"%s\"></a>\n### %s: %s\n\n", c.Code, c.Code, c.Title)
			fmt.Fprintf(&b, "Severity: %s.", c.Severity)
			if c.Retired {
				b.WriteString(" Retired: no longer reported.")
			}
			fmt.Fprintf(&b, "\n\nWhat to do: %s\n", c.Hint)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
