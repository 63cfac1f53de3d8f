package install

import (
	"bufio"
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

// render prints everything a profile renders, as a YAML stream: each chart's values, the
// IstioOperator and the Telemetry.
func render(t *testing.T, p *Profile) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, c := range p.Charts() {
		v, err := p.HelmValues(c.Name)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("# values of chart " + c.Name + ", release " + c.Release + " in " + c.Namespace + "\n" + string(y) + "---\n")
	}
	for _, o := range [][]byte{mustYAML(t, p.IstioOperator().Object), mustYAML(t, p.Telemetry().Object)} {
		b.Write(o)
		b.WriteString("---\n")
	}
	return b.Bytes()
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	y, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// TestRenderGolden pins what each profile renders, both ways.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct{ name, profile, revision string }{
		{"minimal", ProfileMinimal, ""},
		{"default", ProfileDefault, ""},
		{"default-revision", ProfileDefault, "1-30"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewProfile(tc.profile, "")
			if err != nil {
				t.Fatal(err)
			}
			p.Revision = tc.revision
			golden.Check(t, filepath.Join("testdata", "golden", tc.name+".yaml"), render(t, p))
		})
	}
}

// TestProfileSettings checks the seeds' production settings where they land, so a golden file
// refreshed by mistake cannot drop one.
func TestProfileSettings(t *testing.T) {
	p, err := NewProfile(ProfileDefault, "")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := p.HelmValues(ChartIstiod)
	y := string(mustYAML(t, v))
	for _, want := range []string{
		"cpu: 500m", "memory: 2048Mi", // istiod requests
		"cpu: 100m", "memory: 128Mi", "cpu: 2000m", "memory: 1024Mi", // proxy requests and limits
		"holdApplicationUntilProxyStarts: true", "sampling: 1", "traceSampling: 1",
		"tag: " + DefaultVersion,
	} {
		if !strings.Contains(y, want) {
			t.Errorf("istiod values lack %q:\n%s", want, y)
		}
	}
	tel := string(mustYAML(t, p.Telemetry().Object))
	if !strings.Contains(tel, "expression: response.code >= 400") || !strings.Contains(tel, "name: envoy") {
		t.Errorf("Telemetry does not keep access logs for failed requests only:\n%s", tel)
	}
	if _, err := NewProfile("demo", ""); err == nil || !strings.Contains(err.Error(), "not for production") {
		t.Errorf("demo profile: %v", err)
	}
	if _, err := NewProfile(ProfileMinimal, "1.x"); err == nil {
		t.Error("version 1.x accepted")
	}
	for _, bad := range []func(*Profile){func(p *Profile) { p.TracingSampling = 101 }, func(p *Profile) { p.Revision = "1.30" }} {
		q := *p
		bad(&q)
		if q.Validate() == nil {
			t.Errorf("%+v validated", q)
		}
	}
}

// TestStatsInclusionsKeepWhatTheDiagnosisReads checks the proxyStatsMatcher against the real
// /stats captures: every upstream and listener stat the live collection asks for
// (envoyadmin.DefaultStatsFilter) is one the installed sidecars keep, so why-slow sees on a
// mesh installed this way what it reads on the captures.
func TestStatsInclusionsKeepWhatTheDiagnosisReads(t *testing.T) {
	var keep []*regexp.Regexp
	for _, r := range StatsInclusions() {
		keep = append(keep, regexp.MustCompile("^(?:"+r+")$")) // Istio matches the whole name
	}
	filter := regexp.MustCompile(envoyadmin.DefaultStatsFilter)
	checked := 0
	for _, path := range captures.Files(t, "stats_text") {
		sc := bufio.NewScanner(bytes.NewReader(captures.Read(t, filepath.Join("stats_text", filepath.Base(path)))))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			name, _, ok := strings.Cut(sc.Text(), ": ")
			if !ok || !filter.MatchString(name) || !(strings.HasPrefix(name, "cluster.") || strings.HasPrefix(name, "http.") || strings.HasPrefix(name, "listener.")) {
				continue
			}
			if strings.HasPrefix(name, "cluster.xds-grpc.") || strings.HasPrefix(name, "listener.admin.") || strings.HasPrefix(name, "http.admin.") {
				continue // kept by Istio's defaults, or Envoy's own admin listener
			}
			checked++
			kept := false
			for _, k := range keep {
				kept = kept || k.MatchString(name)
			}
			if !kept {
				t.Errorf("%s: the diagnosis reads %s but the profile's proxyStatsMatcher drops it", filepath.Base(path), name)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d stats checked: the captures should hold hundreds", checked)
	}
	// And it does not keep everything: Istio drops per-cluster stats by default for memory.
	for _, name := range []string{"cluster.outbound|9080||reviews.default.svc.cluster.local.lb_zone_cluster_too_small", "cluster.outbound|9080||reviews.default.svc.cluster.local.version"} {
		for _, k := range keep {
			if k.MatchString(name) {
				t.Errorf("%s kept: the matcher should keep only what the diagnosis reads", name)
			}
		}
	}
}

func TestOverrides(t *testing.T) {
	if _, err := NewOverrides(map[string]any{"pilot": map[string]any{}}); err == nil || !strings.Contains(err.Error(), "istiod.pilot") {
		t.Errorf("a chart's key at the top: %v", err)
	}
	o, err := NewOverrides(map[string]any{
		ChartIstiod: map[string]any{"pilot": map[string]any{"autoscaleMin": 2, "resources": map[string]any{"limits": nil}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewProfile(ProfileMinimal, "")
	p.Istiod.LimitCPU = "4"
	base, _ := p.HelmValues(ChartIstiod)
	got, err := o.Merge(ChartIstiod, base)
	if err != nil {
		t.Fatal(err)
	}
	pilot := got["pilot"].(map[string]any)
	res := pilot["resources"].(map[string]any)
	if pilot["autoscaleMin"] != 2.0 || res["requests"] == nil || res["limits"] != nil || pilot["traceSampling"] != 1.0 {
		t.Errorf("merged pilot values %v: want autoscaleMin added, limits removed by null, the rest kept", pilot)
	}
	if base["pilot"].(map[string]any)["resources"].(map[string]any)["limits"] == nil {
		t.Error("Merge changed the profile's values")
	}
}

// TestProxyRequests checks that the sidecar requests the capacity check counts are the merged
// ones: the profile's, a --set on the istiod chart, or the IstioOperator's values for istioctl.
func TestProxyRequests(t *testing.T) {
	p, _ := NewProfile(ProfileDefault, "")
	requests := func(ov map[string]any) (string, string, error) {
		t.Helper()
		o, err := NewOverrides(ov)
		if err != nil {
			t.Fatal(err)
		}
		return p.ProxyRequests(o)
	}
	reqs := func(cpu any) map[string]any {
		return map[string]any{"global": map[string]any{"proxy": map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": cpu}}}}}
	}
	if cpu, mem, err := requests(nil); err != nil || cpu != p.Proxy.RequestCPU || mem != p.Proxy.RequestMemory {
		t.Errorf("no overrides: %s %s %v, want the profile's %s %s", cpu, mem, err, p.Proxy.RequestCPU, p.Proxy.RequestMemory)
	}
	if cpu, mem, err := requests(map[string]any{ChartIstiod: reqs("250m")}); err != nil || cpu != "250m" || mem != p.Proxy.RequestMemory {
		t.Errorf("--set istiod.global.proxy.resources.requests.cpu=250m: %s %s %v", cpu, mem, err)
	}
	if cpu, _, err := requests(map[string]any{ChartIstiod: reqs(1)}); err != nil || cpu != "1" {
		t.Errorf("a number of cores: %s %v", cpu, err)
	}
	if cpu, _, err := requests(map[string]any{ChartIstiod: reqs(nil)}); err != nil || cpu != "" {
		t.Errorf("a null removes the request: %q %v", cpu, err)
	}
	if cpu, _, err := requests(map[string]any{KeyOperator: map[string]any{"values": reqs("300m")}}); err != nil || cpu != "300m" {
		t.Errorf("istioctl's operator.values: %s %v", cpu, err)
	}
	if _, _, err := requests(map[string]any{ChartIstiod: reqs("lots")}); err == nil || !strings.Contains(err.Error(), "not a quantity") {
		t.Errorf("a bad quantity: %v", err)
	}
}
