package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Example is one command of docs/examples.md and what it must do.
type Example struct {
	// Args follow `kubectl mesh`.
	Args []string
	// Exit is the exit code the command must end with.
	Exit int
	// Top, for a diagnosis (why-slow, explain, a sweep), lists the codes the first finding of
	// its -o json output may have: one, or those of findings that tie (see liveExamples).
	// Empty for the other commands, which are run once, without -o json.
	Top []string
	// Abridge, when set, shortens the output the doc shows (not what is checked).
	Abridge func(string) string
}

// Result is what one run of the binary did.
type Result struct {
	Stdout, Stderr string
	Exit           int
	// TimedOut is set when the run was killed after the per-command timeout.
	TimedOut bool
}

// Outcome is what an example did: its text run, shown in the doc, and for a diagnosis its
// -o json run, from which the top finding is read.
type Outcome struct {
	Text Result
	JSON *Result
}

// Mismatch is one way an example did not do what it declares.
type Mismatch struct {
	// Command is the command as the doc shows it.
	Command string
	What    string
	Want    string
	Got     string
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s: %s: expected %s, got %s", m.Command, m.What, m.Want, m.Got)
}

// check compares what an example did with what it declares; nil when all is as expected.
// command is the example's command as the doc shows it.
func check(ex Example, command string, o Outcome) []Mismatch {
	var out []Mismatch
	add := func(what, want, got string) {
		out = append(out, Mismatch{Command: command, What: what, Want: want, Got: got})
	}
	runChecks := func(r Result, suffix string) {
		if got := exitText(r); r.TimedOut || r.Exit != ex.Exit {
			add("exit code"+suffix, strconv.Itoa(ex.Exit), got)
		}
		if panicked(r.Stderr) {
			add("stderr"+suffix, "no stack trace", "a panic or a goroutine dump")
		}
	}
	runChecks(o.Text, "")
	if len(ex.Top) == 0 {
		return out
	}
	want := strings.Join(ex.Top, " or ")
	if o.JSON == nil {
		add("top finding", want, "no -o json run")
		return out
	}
	runChecks(*o.JSON, " with -o json")
	top, err := topCode([]byte(o.JSON.Stdout))
	switch {
	case err != nil:
		add("top finding", want, "unreadable -o json output ("+err.Error()+")")
	case top == "":
		add("top finding", want, "no finding")
	case !slices.Contains(ex.Top, top):
		add("top finding", want, top)
	case !strings.Contains(o.Text.Stdout, top):
		// The doc shows the text run: it must show the finding the check read.
		add("top finding in the text output", top, "a text output without "+top)
	}
	return out
}

func exitText(r Result) string {
	if r.TimedOut {
		return "killed after the timeout"
	}
	return strconv.Itoa(r.Exit)
}

// panicked reports a Go stack trace on stderr, which no command may print.
func panicked(stderr string) bool {
	return strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ")
}

// codes is the part of the -o json outputs the check reads: a diagnosis's findings, or a
// sweep's pods, worst first, each with its report.
type codes struct {
	Findings []struct {
		Code string `json:"code"`
	} `json:"findings"`
	Pods []struct {
		Report *codes `json:"report"`
	} `json:"pods"`
}

// topCode returns the code of the first finding of a diagnosis (why-slow, explain) or of the
// first pod of a sweep, as their -o json prints them; "" when there is none.
func topCode(out []byte) (string, error) {
	var c codes
	if err := json.Unmarshal(out, &c); err != nil {
		return "", err
	}
	if c.Pods != nil {
		if len(c.Pods) == 0 || c.Pods[0].Report == nil {
			return "", nil
		}
		c = *c.Pods[0].Report
	}
	if len(c.Findings) == 0 {
		return "", nil
	}
	return c.Findings[0].Code, nil
}
