package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// maxLines is how much of an output the doc shows.
const maxLines = 80

var port = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// doc is docs/examples.md being written: paragraphs and one console block per example,
// with what varies from machine to machine (the repository's path, temporary paths, ports)
// replaced.
type doc struct {
	strings.Builder
	root    string
	tmpPath *regexp.Regexp
}

func newDoc(root string) *doc {
	tmp := filepath.Clean(os.TempDir())
	return &doc{root: root, tmpPath: regexp.MustCompile(regexp.QuoteMeta(tmp) + `/[A-Za-z0-9_./-]+`)}
}

func (d *doc) para(s string) { d.WriteString(s + "\n\n") }

// command is `kubectl mesh ARGS` as the doc shows it: paths relative to the repository,
// temporary paths and the injector's address elided, quoted where a shell needs it.
func (d *doc) command(args []string) string {
	shown := make([]string, len(args))
	for i, a := range args {
		a = strings.ReplaceAll(a, filepath.Join(filepath.Dir(d.root), "shared"), "../shared")
		a = strings.ReplaceAll(a, d.root, ".")
		if strings.Contains(a, " ") || strings.Contains(a, "%") {
			a = "'" + a + "'"
		}
		a = d.tmpPath.ReplaceAllString(a, "/tmp/...")
		if strings.HasPrefix(a, "istiod.istiodRemote.") || strings.Contains(a, ".base.validation") {
			a = a[:strings.IndexByte(a, '=')+1] + "..."
		}
		shown[i] = a
	}
	return "kubectl mesh " + strings.Join(shown, " ")
}

// example writes the command and what its text run printed, stderr then stdout, as a
// terminal shows it (the progress on stderr comes as it happens, before the result), and
// the exit code when it is not 0.
func (d *doc) example(ex Example, r Result) {
	fmt.Fprintf(d, "```console\n$ %s\n", d.command(ex.Args))
	out := r.Stderr + r.Stdout
	if ex.Abridge != nil {
		out = ex.Abridge(out)
	}
	out = strings.ReplaceAll(out, d.root, ".")
	out = d.tmpPath.ReplaceAllString(out, "/tmp/...")
	out = port.ReplaceAllString(out, "127.0.0.1:PORT")
	if lines := strings.Split(out, "\n"); len(lines) > maxLines {
		out = strings.Join(lines[:maxLines], "\n") + fmt.Sprintf("\n... (%d more lines)\n", len(lines)-maxLines)
	}
	d.WriteString(out)
	if !strings.HasSuffix(out, "\n") {
		d.WriteString("\n")
	}
	if r.Exit != 0 {
		fmt.Fprintf(d, "$ echo $?\n%d\n", r.Exit)
	}
	d.WriteString("```\n\n")
}
