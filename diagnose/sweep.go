package diagnose

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// PodDiagnosis is the diagnosis of one pod of a sweep, or why there is none.
type PodDiagnosis struct {
	Namespace string  `json:"namespace"`
	Pod       string  `json:"pod"`
	Report    *Report `json:"report,omitempty"`
	// Error says why the pod could not be diagnosed at all.
	Error string `json:"error,omitempty"`
	// Partial says why the diagnosis lacks the sidecar's own evidence (its admin API could not
	// be read): its findings come from the pod and the objects around it alone, so a pod
	// without findings is not known to be healthy.
	Partial string `json:"partial,omitempty"`
}

// Top returns the pod's most important finding, or nil.
func (p *PodDiagnosis) Top() *Finding {
	if p.Report == nil || len(p.Report.Findings) == 0 {
		return nil
	}
	return &p.Report.Findings[0]
}

// Unknown says why nothing is known of the pod's health: the reason it was not diagnosed, or
// not read enough to call it healthy. "" when the diagnosis stands.
func (p *PodDiagnosis) Unknown() string {
	switch {
	case p.Error != "":
		return "not diagnosed: " + p.Error
	case p.Partial != "" && p.Top() == nil:
		return "partly read, no finding: " + p.Partial
	}
	return ""
}

// Healthy reports a pod read in full with no finding.
func (p *PodDiagnosis) Healthy() bool { return p.Top() == nil && p.Unknown() == "" }

// SweepReport is the diagnosis of a set of pods, worst first.
type SweepReport struct {
	// Scope names the set: "namespace demo", "all namespaces", "deploy/reviews-v2 in default".
	Scope         string  `json:"scope"`
	WindowSeconds float64 `json:"windowSeconds"`
	// Pods are ranked as RankPods orders them.
	Pods []PodDiagnosis `json:"pods"`
	// Unmeshed names the pods in scope without an istio-proxy sidecar, which were skipped.
	Unmeshed []string `json:"unmeshed,omitempty"`
}

// RankPods orders pods worst first: pods whose top finding is an error, then a warning (the
// more affected requests per second the earlier), then pods whose health is unknown (not
// diagnosed, or read without their sidecar and no finding: an unknown is worse than a note),
// then pods with notes only, then healthy pods; ties by namespace and name.
func RankPods(pods []PodDiagnosis) {
	key := func(p *PodDiagnosis) (int, float64) {
		t := p.Top()
		switch {
		case t != nil && t.Severity.Rank() >= SeverityWarning.Rank():
			return 10 + t.Severity.Rank(), t.Impact
		case p.Unknown() != "":
			return 5, 0
		case t != nil:
			return 1, t.Impact
		}
		return 0, 0
	}
	sort.SliceStable(pods, func(i, j int) bool {
		ri, ii := key(&pods[i])
		rj, ij := key(&pods[j])
		if ri != rj {
			return ri > rj
		}
		if ii != ij {
			return ii > ij
		}
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Pod < pods[j].Pod
	})
}

// SweepTextOptions control the summary table.
type SweepTextOptions struct {
	Color bool
	// Top bounds the rows of pods with findings or errors; 0 shows them all. Healthy pods are
	// counted, not listed.
	Top int
}

// maxSweepWarnings bounds the lines of the summary of what a sweep could not read.
const maxSweepWarnings = 8

// RenderSweepText prints the ranked summary table of a sweep: one row per pod with findings
// or unknown health, its worst finding and how many more it has, then a count of healthy pods,
// what could not be read (each reason once, with how many pods it cost), and the command that
// shows one pod in full.
func RenderSweepText(w io.Writer, r *SweepReport, opts SweepTextOptions) error {
	r = r.forTerminal()
	p := newPalette(opts.Color)
	ew := &errWriter{w: w}
	var healthy, unknown, shown, withFindings int
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tSEVERITY\tCODE\tTOP FINDING\tMORE")
	for i := range r.Pods {
		pd := &r.Pods[i]
		top := pd.Top()
		switch {
		case pd.Healthy():
			healthy++
			continue
		case top == nil:
			unknown++
		default:
			withFindings++
		}
		if opts.Top > 0 && shown >= opts.Top {
			continue
		}
		shown++
		if top == nil {
			// The reason is long and the same for many pods: it is listed once below the table.
			what := "not diagnosed (reason below)"
			if pd.Error == "" {
				what = "unknown: its sidecar was not read (reason below)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pd.Namespace, pd.Pod, "-", "-", what, "")
			continue
		}
		more := ""
		if n := len(pd.Report.Findings) - 1; n > 0 {
			more = fmt.Sprintf("+%d", n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pd.Namespace, pd.Pod,
			p.severity(top.Severity).Sprint(string(top.Severity)), top.Code, top.Title, more)
	}
	if shown > 0 {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	ew.printf("\n%s in %s over a %.0f s window: %d with findings, %d of unknown health, %d healthy",
		plural(len(r.Pods), "meshed pod"), r.Scope, r.WindowSeconds, withFindings, unknown, healthy)
	if hidden := withFindings + unknown - shown; hidden > 0 {
		ew.printf(" (%d more not shown: raise --top)", hidden)
	}
	ew.printf(".\n")
	if n := len(r.Unmeshed); n > 0 {
		ew.printf("Skipped %s without an istio-proxy sidecar.\n", plural(n, "pod"))
	}
	if lines := sweepWarnings(r.Pods); len(lines) > 0 {
		ew.printf("Not read (each reason once; -o json lists every pod's):\n")
		for i, l := range lines {
			if i == maxSweepWarnings {
				ew.printf("  ... and %d more reasons\n", len(lines)-i)
				break
			}
			ew.printf("  - %s: %s\n", plural(l.pods, "pod"), l.text)
		}
	}
	for i := range r.Pods {
		if r.Pods[i].Top() != nil {
			ew.printf("Details of the worst: kubectl mesh why-slow pod/%s -n %s\n", r.Pods[i].Pod, r.Pods[i].Namespace)
			break
		}
	}
	return ew.err
}

// sweepWarning is one reason something could not be read, and how many pods it concerns.
type sweepWarning struct {
	text string
	pods int
}

// sweepWarnings gathers the pods' errors and warnings with each pod's own name written as POD, so that a
// refusal that hit every pod ("port-forward to default/POD is forbidden: ...") is one line;
// most pods first.
func sweepWarnings(pods []PodDiagnosis) []sweepWarning {
	count := map[string]int{}
	var order []string
	for i := range pods {
		pd := &pods[i]
		warnings := []string{}
		if pd.Error != "" {
			warnings = append(warnings, "not diagnosed: "+pd.Error)
		}
		if pd.Report != nil {
			warnings = append(warnings, pd.Report.Warnings...)
		}
		seen := map[string]bool{}
		for _, w := range warnings {
			w = strings.ReplaceAll(w, pd.Namespace+"/"+pd.Pod, pd.Namespace+"/POD")
			w = strings.ReplaceAll(w, pd.Pod, "POD")
			if seen[w] {
				continue
			}
			seen[w] = true
			if count[w] == 0 {
				order = append(order, w)
			}
			count[w]++
		}
	}
	out := make([]sweepWarning, 0, len(order))
	for _, w := range order {
		out = append(out, sweepWarning{text: w, pods: count[w]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].pods > out[j].pods })
	return out
}
