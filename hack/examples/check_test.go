package main

import (
	"strings"
	"testing"
)

const (
	report = `{"target": "pod default/productpage", "findings": [{"code": "MESH0101"}, {"code": "MESH0601"}]}`
	sweep  = `{"scope": "namespace default", "pods": [{"pod": "a", "report": {"findings": [{"code": "MESH0802"}]}}, {"pod": "b", "report": {"findings": [{"code": "MESH0501"}]}}]}`
)

func TestCheck(t *testing.T) {
	diagnosis := Example{Args: []string{"why-slow", "--from", "x"}, Top: []string{"MESH0101"}}
	text := Result{Stdout: "1. ERROR MESH0101 [timeout] ...\n"}
	json := func(stdout string, exit int) *Result { return &Result{Stdout: stdout, Exit: exit} }
	cases := []struct {
		name string
		ex   Example
		o    Outcome
		want []string // each a mismatch's line; none when all is as expected
	}{
		{name: "exit code as expected", ex: Example{Args: []string{"version"}}, o: Outcome{Text: Result{Stdout: "kubectl-mesh dev\n"}}},
		{name: "a non-zero exit as expected", ex: Example{Args: []string{"nodes"}, Exit: 1}, o: Outcome{Text: Result{Exit: 1}}},
		{name: "top finding as expected", ex: diagnosis, o: Outcome{Text: text, JSON: json(report, 0)}},
		{name: "the sweep's first pod", ex: Example{Args: []string{"why-slow", "-n", "default"}, Top: []string{"MESH0802"}},
			o: Outcome{Text: Result{Stdout: "default  a  error  MESH0802  ...\n"}, JSON: json(sweep, 0)}},
		{name: "either of two tied codes", ex: Example{Args: []string{"why-slow", "pod/p"}, Top: []string{"MESH0601", "MESH0101"}}, o: Outcome{Text: text, JSON: json(report, 0)}},

		{name: "exit code differs", ex: Example{Args: []string{"nodes", "--window", "2s"}, Exit: 1}, o: Outcome{Text: Result{Exit: 0}},
			want: []string{"kubectl mesh nodes --window 2s: exit code: expected 1, got 0"}},
		{name: "killed after the timeout", ex: Example{Args: []string{"status"}}, o: Outcome{Text: Result{Exit: -1, TimedOut: true}},
			want: []string{"kubectl mesh status: exit code: expected 0, got killed after the timeout"}},
		{name: "a stack trace", ex: Example{Args: []string{"status"}}, o: Outcome{Text: Result{Stderr: "panic: runtime error\n\ngoroutine 1 [running]:\n", Exit: 2}},
			want: []string{"kubectl mesh status: exit code: expected 0, got 2", "kubectl mesh status: stderr: expected no stack trace, got a panic or a goroutine dump"}},
		{name: "top finding differs", ex: Example{Args: diagnosis.Args, Top: []string{"MESH0401"}}, o: Outcome{Text: text, JSON: json(report, 0)},
			want: []string{"kubectl mesh why-slow --from x: top finding: expected MESH0401, got MESH0101"}},
		{name: "not among the tied codes", ex: Example{Args: diagnosis.Args, Top: []string{"MESH1101", "MESH1105"}}, o: Outcome{Text: text, JSON: json(report, 0)},
			want: []string{"kubectl mesh why-slow --from x: top finding: expected MESH1101 or MESH1105, got MESH0101"}},
		{name: "no finding", ex: diagnosis, o: Outcome{Text: Result{Stdout: "No finding.\n"}, JSON: json(`{"findings": []}`, 0)},
			want: []string{"kubectl mesh why-slow --from x: top finding: expected MESH0101, got no finding"}},
		{name: "the sweep's first pod differs", ex: Example{Args: []string{"why-slow", "-n", "default"}, Top: []string{"MESH0501"}}, o: Outcome{Text: text, JSON: json(sweep, 0)},
			want: []string{"kubectl mesh why-slow -n default: top finding: expected MESH0501, got MESH0802"}},
		{name: "the -o json run exits otherwise", ex: diagnosis, o: Outcome{Text: text, JSON: json(report, 2)},
			want: []string{"kubectl mesh why-slow --from x: exit code with -o json: expected 0, got 2"}},
		{name: "-o json is not JSON", ex: diagnosis, o: Outcome{Text: text, JSON: json("Diagnosis of ...", 0)},
			want: []string{"kubectl mesh why-slow --from x: top finding: expected MESH0101, got unreadable -o json output (invalid character 'D' looking for beginning of value)"}},
		{name: "the text run does not show it", ex: diagnosis, o: Outcome{Text: Result{Stdout: "1. ERROR MESH0601 ...\n"}, JSON: json(report, 0)},
			want: []string{"kubectl mesh why-slow --from x: top finding in the text output: expected MESH0101, got a text output without MESH0101"}},
		{name: "no -o json run", ex: diagnosis, o: Outcome{Text: text},
			want: []string{"kubectl mesh why-slow --from x: top finding: expected MESH0101, got no -o json run"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, m := range check(tc.ex, "kubectl mesh "+strings.Join(tc.ex.Args, " "), tc.o) {
				got = append(got, m.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
