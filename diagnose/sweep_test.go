package diagnose

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

func sweepPod(ns, name string, sev Severity, impact float64) PodDiagnosis {
	pd := PodDiagnosis{Namespace: ns, Pod: name, Report: &Report{Findings: []Finding{}}}
	if sev != "" {
		pd.Report.Findings = append(pd.Report.Findings, Finding{Code: "MESH0" + string(sev[0]), Severity: sev, Title: name + " " + string(sev), Impact: impact})
	}
	return pd
}

// TestRankPods checks the order a sweep prints: errors, warnings, unknowns, notes, healthy.
func TestRankPods(t *testing.T) {
	refused := sweepPod("default", "refused", "", 0)
	refused.Partial = "Envoy admin API not read: port-forward to default/refused is forbidden"
	refusedButNotReady := sweepPod("default", "refused-not-ready", SeverityWarning, 0)
	refusedButNotReady.Partial = refused.Partial
	pods := []PodDiagnosis{
		sweepPod("default", "healthy", "", 0),
		sweepPod("default", "note", SeverityInfo, 50),
		{Namespace: "default", Pod: "gone", Error: "reading pod default/gone: not found"},
		refused,
		sweepPod("default", "warn-small", SeverityWarning, 1),
		refusedButNotReady,
		sweepPod("default", "error", SeverityError, 0.1),
		sweepPod("default", "warn-big", SeverityWarning, 9),
	}
	RankPods(pods)
	var got []string
	for _, p := range pods {
		got = append(got, p.Pod)
	}
	want := "error warn-big warn-small refused-not-ready gone refused note healthy"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	for _, p := range pods {
		if p.Healthy() != (p.Pod == "healthy") {
			t.Errorf("%s: Healthy() = %v", p.Pod, p.Healthy())
		}
	}
}

// TestRenderSweepText pins the summary table: a refusal that hit every pod is one line, and a
// pod whose sidecar could not be read is not counted healthy.
func TestRenderSweepText(t *testing.T) {
	var pods []PodDiagnosis
	for _, name := range []string{"web-0", "web-1", "web-2"} {
		pd := sweepPod("shop", name, "", 0)
		pd.Partial = "Envoy admin API not read: port-forward to shop/" + name + " is forbidden: reading the sidecar's admin API needs get and create on pods/portforward in namespace shop"
		pd.Report.Warnings = []string{pd.Partial, "events.yaml not captured: listing events is forbidden; it needs list on events in namespace shop"}
		pods = append(pods, pd)
	}
	pods = append(pods, sweepPod("shop", "cart-0", SeverityError, 3), sweepPod("shop", "cart-1", "", 0),
		PodDiagnosis{Namespace: "shop", Pod: "cart-2", Error: "reading pod shop/cart-2: pods \"cart-2\" not found"})
	r := &SweepReport{Scope: "namespace shop", WindowSeconds: 10, Pods: pods}
	RankPods(r.Pods)
	var buf bytes.Buffer
	if err := RenderSweepText(&buf, r, SweepTextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"1 with findings, 4 of unknown health, 1 healthy", "  - 1 pod: not diagnosed: reading pod shop/POD: pods \"POD\" not found", "  - 3 pods: Envoy admin API not read: port-forward to shop/POD is forbidden", "  - 3 pods: events.yaml not captured"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	golden.Check(t, filepath.Join("testdata", "golden", "sweep-refused.txt"), buf.Bytes())
}
