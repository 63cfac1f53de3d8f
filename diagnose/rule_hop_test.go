package diagnose

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const hopUpstream = "outbound|9080||reviews.default.svc.cluster.local"

// hopSnapshot is a client that sent n requests to reviews in 30 s, each taking clientMs, and a
// hop to two reviews pods whose applications took appMs and whose sidecars held each request
// heldMs (0: no downstream histogram).
func hopSnapshot(n int, clientMs, appMs, heldMs float64) *Snapshot {
	empty := map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist()}
	a := fxSample(nil, map[string]fxCluster{hopUpstream: {hists: empty}})
	b := fxSample(nil, map[string]fxCluster{hopUpstream: {hists: map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxRepeat(clientMs, n)...)}}})
	s := fxTwo(a, b)
	s.Hop = &Hop{Upstream: hopUpstream, ServiceNamespace: "default", ServiceName: "reviews", Port: 9080, Window: 30 * time.Second}
	for _, pod := range []string{"reviews-v1-a", "reviews-v2-b"} {
		prev := fxSample(nil, map[string]fxCluster{"inbound|9080||": {hists: empty}})
		cur := fxSample(nil, map[string]fxCluster{"inbound|9080||": {hists: map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxRepeat(appMs, n)...)}}})
		if heldMs > 0 {
			prev.Histograms["http_inbound_0_0_0_0_9080_downstream_rq_time"] = fxHist()
			cur.Histograms["http_inbound_0_0_0_0_9080_downstream_rq_time"] = fxHist(fxRepeat(heldMs, n)...)
			// Another port's connection manager must not be read as this one.
			cur.Histograms["http_inbound_0_0_0_0_8080_downstream_rq_time"] = fxHist(fxRepeat(5000, n)...)
		}
		s.Hop.Pods = append(s.Hop.Pods, HopPod{Namespace: "default", Pod: pod, StatsFile: "hop-x.prom",
			Interval: envoyadmin.NewStatsInterval(prev, cur, s.Hop.Window)})
	}
	return s
}

func TestLatencyAttributionRule(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		n                       int
		clientMs, appMs, heldMs float64
		want                    string // code, or "" for silence
		wantIn                  string // in the title
	}{
		{"time between the pods", 100, 400, 25, 27, "MESH1105", "373 of the 400 ms"},
		{"no downstream histogram: the server's time is its app's", 100, 400, 25, 0, "MESH1105", "375 of the 400 ms"},
		{"the upstream's app is slow", 100, 400, 360, 365, "MESH1106", "takes 360 of the 400 ms"},
		{"fast upstream: nothing to split", 100, 30, 20, 21, "", ""},
		{"too few requests", 10, 400, 25, 27, "", ""},
		{"mixed: neither dominates", 100, 400, 150, 220, "", ""},
		{"the upstream's sidecars hold the requests", 100, 400, 30, 380, "MESH1107", "350 of the 400 ms this proxy waits on reviews.default on average are spent in the upstream's sidecars"},
		{"the upstream's sidecars add a little: silent", 100, 400, 150, 250, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fxRun(t, LatencyAttributionRule{}, hopSnapshot(tc.n, tc.clientMs, tc.appMs, tc.heldMs))
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("findings %v, want none", fxCodes(got))
				}
				return
			}
			if len(got) != 1 || got[0].Code != tc.want || !strings.Contains(got[0].Title, tc.wantIn) {
				t.Fatalf("findings %+v, want one %s with %q in the title", got, tc.want, tc.wantIn)
			}
			if got[0].Subject.Name != hopUpstream || got[0].Impact <= 0 {
				t.Errorf("subject %v impact %v", got[0].Subject, got[0].Impact)
			}
		})
	}
}

// TestNetworkLatencyIncident reads the incident whose hop was followed from its folder: the
// attribution names the time between the pods, and the latency finding no longer presumes the
// upstream's application is slow.
func TestNetworkLatencyIncident(t *testing.T) {
	s, err := LoadDir("../testdata/incidents/network-latency", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Hop == nil || len(s.Hop.Pods) != 1 || s.Hop.Port != 9080 {
		t.Fatalf("hop = %+v, warnings %v", s.Hop, s.Warnings)
	}
	r := Diagnose(s, Rules())
	var attribution, latency *Finding
	for i := range r.Findings {
		f := &r.Findings[i]
		switch {
		case f.Code == string(CodeLatencyBetweenPods):
			attribution = f
		case f.Code == string(CodeHighUpstreamLatency) && f.Subject.Name == hopUpstream:
			latency = f
		}
	}
	if attribution == nil || latency == nil {
		t.Fatalf("findings %v, want MESH1105 and MESH1101 on %s", fxCodes(r.Findings), hopUpstream)
	}
	if strings.Contains(latency.Explanation, "upstream application's own work") {
		t.Errorf("MESH1101 still presumes the application is slow: %s", latency.Explanation)
	}
}

func TestLoadHopRejectsPathsOutsideTheFolder(t *testing.T) {
	s, err := LoadFS(fsOf(map[string]string{
		"stats.prom": "# TYPE envoy_server_uptime gauge\nenvoy_server_uptime 10\n",
		FileHops:     `{"upstream":"u","port":9080,"windowSeconds":10,"pods":[{"namespace":"d","pod":"p","stats":"../x.prom","stats2":"y.prom"}]}`,
	}), "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Hop != nil || !strings.Contains(strings.Join(s.Warnings, "\n"), "must be in the evidence folder") {
		t.Errorf("hop %+v warnings %v", s.Hop, s.Warnings)
	}
}

func fsOf(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, content := range files {
		m[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return m
}

func TestChooseHop(t *testing.T) {
	slow := map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxRepeat(300, 50)...)}
	fast := map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxRepeat(5, 50)...)}
	few := map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist(fxRepeat(900, 3)...)}
	empty := map[string]*envoyadmin.Histogram{"upstream_rq_time": fxHist()}
	clusters := func(h1, h2, h3 map[string]*envoyadmin.Histogram) map[string]fxCluster {
		return map[string]fxCluster{
			"outbound|9080||reviews.default.svc.cluster.local": {hists: h1},
			"outbound|9080||details.default.svc.cluster.local": {hists: h2},
			"outbound|443||api.example.com":                    {hists: h3},
		}
	}
	s := fxTwo(fxSample(nil, clusters(empty, empty, empty)), fxSample(nil, clusters(slow, fast, few)))
	got, ok := ChooseHop(s, nil)
	if !ok || got.ServiceName != "reviews" || got.ServiceNamespace != "default" || got.ServicePort != 9080 {
		t.Errorf("ChooseHop = %+v %v, want the slowest in-mesh service, reviews", got, ok)
	}
	r := &Report{Findings: []Finding{{Category: CategoryTimeout, Subject: Subject{Kind: SubjectCluster, Name: "outbound|9080||details.default.svc.cluster.local"}}}}
	if got, ok := ChooseHop(s, r); !ok || got.ServiceName != "details" {
		t.Errorf("ChooseHop with a timeout on details = %+v, want details", got)
	}
	quiet := fxTwo(fxSample(nil, clusters(empty, empty, empty)), fxSample(nil, clusters(empty, empty, few)))
	if got, ok := ChooseHop(quiet, nil); ok {
		t.Errorf("ChooseHop without traffic to a Service = %+v, want none", got)
	}
}
