package diagnose

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Rule is one diagnosis. It reads a snapshot and reports findings; it does no I/O.
type Rule interface {
	Meta() RuleMeta
	Check(s *Snapshot) []Finding
}

// RuleMeta describes a rule and the evidence it needs.
type RuleMeta struct {
	// Name is unique among rules, in CamelCase ("ConnectFailureRule").
	Name        string
	Description string
	// Codes are the catalog codes the rule can report.
	Codes []Code
	// Needs are inputs that must all be present; AnyOf are inputs of which at least one must be.
	// A rule whose inputs are missing is skipped, not failed.
	Needs []Input
	AnyOf []Input
}

// Skipped records a rule that did not run and the evidence it lacked.
type Skipped struct {
	Rule    string  `json:"rule"`
	Missing []Input `json:"missing"`
}

// Report is the result of a diagnosis of one proxy.
type Report struct {
	// Target names what was diagnosed ("pod default/reviews-v2-abc", "folder ./capture").
	Target string `json:"target"`
	// Basis says what the numbers cover: an interval between two samples, or since start.
	Basis string `json:"basis"`
	// WindowSeconds is the time between the two stats samples; 0 with one sample, whose
	// numbers (Cumulative) count since the proxy started, UptimeSeconds ago when known.
	WindowSeconds float64   `json:"windowSeconds"`
	Cumulative    bool      `json:"cumulative"`
	UptimeSeconds float64   `json:"uptimeSeconds,omitempty"`
	Findings      []Finding `json:"findings"`
	Skipped       []Skipped `json:"skipped,omitempty"`
	Warnings      []string  `json:"warnings,omitempty"`
	// Unexplained says that the input shows a failure (a 5xx, a failed gRPC status) but
	// nothing that says why: "no finding" then does not mean nothing is wrong.
	Unexplained string `json:"unexplained,omitempty"`
}

// Worst returns the highest severity among the findings, "" when there are none.
func (r *Report) Worst() Severity {
	var worst Severity
	for _, f := range r.Findings {
		if f.Severity.Rank() > worst.Rank() {
			worst = f.Severity
		}
	}
	return worst
}

// Diagnose runs the rules over a snapshot and ranks the findings.
func Diagnose(s *Snapshot, rules []Rule) *Report {
	r := &Report{
		Basis:    basis(s),
		Findings: []Finding{}, // [] not null in JSON: consumers iterate it
		Warnings: append([]string(nil), s.Warnings...),
	}
	if s.Has(InputStatsInterval) {
		r.WindowSeconds = s.Window.Seconds()
	} else if s.Has(InputStats) {
		r.Cumulative = true
		r.UptimeSeconds = s.Uptime().Seconds()
	}
	for _, rule := range rules {
		meta := rule.Meta()
		if missing := missingInputs(s, meta); len(missing) > 0 {
			r.Skipped = append(r.Skipped, Skipped{Rule: meta.Name, Missing: missing})
			continue
		}
		findings, err := check(rule, s)
		if err != nil {
			r.Warnings = append(r.Warnings, err.Error())
			continue
		}
		for _, f := range findings {
			f.Rule = meta.Name
			r.Findings = append(r.Findings, f)
		}
	}
	r.addWaypoint(s, rules)
	r.finiteNumbers()
	Rank(r.Findings)
	return r
}

// addWaypoint diagnoses the waypoint that serves an ambient pod with the same rules and adds
// its findings, each titled as the waypoint's: its Envoy holds the routes, timeouts and
// retries of the pod's L7 traffic.
func (r *Report) addWaypoint(s *Snapshot, rules []Rule) {
	if s.Waypoint == nil {
		return
	}
	name := "the waypoint"
	if m := s.Waypoint.Meta; m.Pod != "" {
		name = "waypoint " + m.Namespace + "/" + m.Pod
	}
	w := Diagnose(s.Waypoint, rules)
	for _, f := range w.Findings {
		f.Title = "At " + name + ": " + f.Title
		r.Findings = append(r.Findings, f)
	}
	for _, warn := range w.Warnings {
		r.Warnings = append(r.Warnings, name+": "+warn)
	}
}

// finiteNumbers is the last guard behind the parsers' own checks: a figure a rule computed
// that is not a finite number (a rate over a zero window, a quantile of nothing) is dropped
// with a warning, so that no output prints it and -o json never fails on it.
func (r *Report) finiteNumbers() {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for i := range r.Findings {
		f := &r.Findings[i]
		if !finite(f.Impact) {
			f.Impact = 0
		}
		kept := f.Evidence[:0]
		for _, e := range f.Evidence {
			if !finite(e.Value) {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: the figure %q (%s) is not a finite number and is left out", f.Code, e.Label, e.Source))
				continue
			}
			kept = append(kept, e)
		}
		f.Evidence = kept
	}
}

// check runs one rule, turning a panic into an error so one faulty rule on odd evidence costs
// its findings, not the whole diagnosis.
func check(rule Rule, s *Snapshot) (findings []Finding, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("rule %s failed on this evidence and was skipped: %v", rule.Meta().Name, p)
		}
	}()
	return rule.Check(s), nil
}

func missingInputs(s *Snapshot, m RuleMeta) []Input {
	var missing []Input
	for _, in := range m.Needs {
		if !s.Has(in) {
			missing = append(missing, in)
		}
	}
	if len(m.AnyOf) > 0 {
		any := false
		for _, in := range m.AnyOf {
			any = any || s.Has(in)
		}
		if !any {
			missing = append(missing, m.AnyOf...)
		}
	}
	return missing
}

// Rank orders findings so the most likely cause comes first: higher severity, then higher
// affected request rate, then code and subject for a stable order.
func Rank(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		// Impacts are compared to the thousandth: two rules that measure the same requests by
		// different paths (a rate rounded for display, a count over the window) must tie, and
		// the code order then decides, not floating-point noise.
		if ai, bi := round(a.Impact, 3), round(b.Impact, 3); ai != bi {
			return ai > bi
		}
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		return a.Subject.Name < b.Subject.Name
	})
}

func basis(s *Snapshot) string {
	switch {
	case s.Has(InputStatsInterval):
		return fmt.Sprintf("rates over the %s between two stats samples", roundWindow(s.Window))
	case s.Has(InputStats):
		if up := s.Uptime(); up > 0 {
			return fmt.Sprintf("one stats sample: numbers are cumulative since the proxy started (%s ago)", up.Round(1e9))
		}
		return "one stats sample: numbers are cumulative since the proxy started (uptime unknown)"
	}
	return "no stats: configuration and logs only"
}

// roundWindow rounds a measured window for reading: 1.048051032s is 1.05s, 10.2s stays.
func roundWindow(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}
