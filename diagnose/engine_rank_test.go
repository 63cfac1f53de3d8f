package diagnose

import "testing"

// TestRankTiesImpactsOfTheSameRequests: a rate rounded for display and the same rate computed
// from a count over the window differ in the fourth decimal; the code order decides between
// them, whatever the window's rounding.
func TestRankTiesImpactsOfTheSameRequests(t *testing.T) {
	for _, delta := range []float64{-0.0004, 0, 0.0004} {
		fs := []Finding{
			{Code: string(CodeLatencyBetweenPods), Severity: SeverityWarning, Impact: 12.345 + delta},
			{Code: string(CodeHighUpstreamLatency), Severity: SeverityWarning, Impact: 12.345},
		}
		Rank(fs)
		if fs[0].Code != string(CodeHighUpstreamLatency) {
			t.Errorf("delta %v: %s ranked first; want %s on the tie", delta, fs[0].Code, CodeHighUpstreamLatency)
		}
	}
	fs := []Finding{{Code: "MESH1105", Severity: SeverityWarning, Impact: 13}, {Code: "MESH1101", Severity: SeverityWarning, Impact: 12}}
	if Rank(fs); fs[0].Code != "MESH1105" {
		t.Error("a larger impact no longer ranks first")
	}
}
