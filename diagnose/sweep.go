package diagnose

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// PodDiagnosis is the diagnosis of one pod of a sweep, or why there is none.
type PodDiagnosis struct {
	Namespace string  `json:"namespace"`
	Pod       string  `json:"pod"`
	Report    *Report `json:"report,omitempty"`
	// Error says why the pod could not be diagnosed at all.
	Error string `json:"error,omitempty"`
}

// Top returns the pod's most important finding, or nil.
func (p *PodDiagnosis) Top() *Finding {
	if p.Report == nil || len(p.Report.Findings) == 0 {
		return nil
	}
	return &p.Report.Findings[0]
}

// SweepReport is the diagnosis of a set of pods, worst first.
type SweepReport struct {
	// Scope names the set: "namespace demo", "all namespaces", "deploy/reviews-v2 in default".
	Scope         string  `json:"scope"`
	WindowSeconds float64 `json:"windowSeconds"`
	// Pods are ranked: pods with worse top findings first, then more affected requests,
	// then pods that could not be read, then healthy pods.
	Pods []PodDiagnosis `json:"pods"`
	// Unmeshed names the pods in scope without an istio-proxy sidecar, which were skipped.
	Unmeshed []string `json:"unmeshed,omitempty"`
}

// RankPods orders pods worst first: by the severity of their top finding, then by its
// impact (affected requests per second), then pods that could not be diagnosed (an unknown
// is worse than a known healthy pod), then by namespace and name.
func RankPods(pods []PodDiagnosis) {
	key := func(p *PodDiagnosis) (int, float64) {
		if t := p.Top(); t != nil {
			return 2 + t.Severity.Rank(), t.Impact
		}
		if p.Error != "" {
			return 1, 0
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

// RenderSweepText prints the ranked summary table of a sweep: one row per pod with findings
// or errors, its worst finding and how many more it has, then a count of healthy pods and
// the command that shows one pod in full.
func RenderSweepText(w io.Writer, r *SweepReport, opts SweepTextOptions) error {
	p := newPalette(opts.Color)
	ew := &errWriter{w: w}
	var healthy, failed, shown, withFindings int
	tw := tabwriter.NewWriter(ew, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOD\tSEVERITY\tCODE\tTOP FINDING\tMORE")
	for i := range r.Pods {
		pd := &r.Pods[i]
		top := pd.Top()
		switch {
		case top == nil && pd.Error == "":
			healthy++
			continue
		case top == nil:
			failed++
		default:
			withFindings++
		}
		if opts.Top > 0 && shown >= opts.Top {
			continue
		}
		shown++
		if top == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pd.Namespace, pd.Pod, "-", "-", "not diagnosed: "+pd.Error, "")
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
	ew.printf("\n%s in %s over a %.0f s window: %d with findings, %d not diagnosed, %d healthy",
		plural(len(r.Pods), "meshed pod"), r.Scope, r.WindowSeconds, withFindings, failed, healthy)
	if hidden := withFindings + failed - shown; hidden > 0 {
		ew.printf(" (%d more not shown: raise --top)", hidden)
	}
	ew.printf(".\n")
	if n := len(r.Unmeshed); n > 0 {
		ew.printf("Skipped %s without an istio-proxy sidecar.\n", plural(n, "pod"))
	}
	for i := range r.Pods {
		if r.Pods[i].Top() != nil {
			ew.printf("Details of the worst: kubectl mesh why-slow pod/%s -n %s\n", r.Pods[i].Pod, r.Pods[i].Namespace)
			break
		}
	}
	return ew.err
}
