package diagnose

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func fxPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name + "-7d4b9c6f5-x2x9k", Namespace: "default",
		Labels:          map[string]string{"app": name, "pod-template-hash": "7d4b9c6f5"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: name + "-7d4b9c6f5"}},
	}}
}

func TestStatsDisabledRule(t *testing.T) {
	istioDefault := []string{"prefix:reporter=", "prefix:cluster_manager", "prefix:listener_manager", "prefix:server", "prefix:cluster.xds-grpc", "prefix:wasm", "suffix:rbac.allowed"}
	withMatcher := func(patterns ...string) *envoyadmin.ConfigSummary {
		return &envoyadmin.ConfigSummary{StatsMatcherSet: true, StatsInclusions: patterns,
			Clusters: []envoyadmin.ClusterConfig{{Name: envoyadmin.ParseClusterName(fxReviews)}}}
	}
	full := map[string]fxCluster{fxReviews: {values: map[string]float64{"upstream_rq_total": 100, "membership_healthy": 2}}, "xds-grpc": {values: map[string]float64{"upstream_cx_total": 1}}}
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		check func(t *testing.T, f Finding)
	}{
		{"real capture: Istio 1.5 sidecar with the default inclusions", func(t *testing.T) *Snapshot {
			return fxOne(fxCaptureStats(t, "stats_prometheus/datadog-istio-1.5-sidecar-excerpt.prom"))
		}, []string{"MESH1201"}, func(t *testing.T, f Finding) {
			if f.Evidence[0].Value != 0 || !strings.Contains(f.Fix.YAML, `- ".*upstream_rq_time.*"`) || !strings.Contains(f.Fix.YAML, "proxy.istio.io/config: |") {
				t.Errorf("%+v\n%s", f.Evidence, f.Fix.YAML)
			}
		}},
		{"real capture: Istio's default matcher in the config dump", func(t *testing.T) *Snapshot {
			cfg, err := envoyadmin.ParseConfigDump(captures.Read(t, "config_dump/istio-echo-sidecar-2020-v3-mixed.json"))
			if err != nil {
				t.Fatal(err)
			}
			return &Snapshot{Now: fxNow, Config: cfg}
		}, []string{"MESH1201"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Evidence[1].Text, "upstream_rq_time") || !strings.Contains(f.Fix.Command, "-n apps-1-99281") {
				t.Errorf("%+v %q", f.Evidence, f.Fix.Command)
			}
		}},
		{"matcher leaving out some stats", func(t *testing.T) *Snapshot {
			return &Snapshot{Now: fxNow, Config: withMatcher(append(istioDefault, "regex:.*upstream_rq_time.*", "regex:.*upstream_rq_total.*")...)}
		}, []string{"MESH1201"}, func(t *testing.T, f Finding) {
			if strings.Contains(f.Evidence[1].Text, "upstream_rq_time") || !strings.Contains(f.Evidence[1].Text, "upstream_cx_connect_fail") {
				t.Errorf("missing stats %q", f.Evidence[1].Text)
			}
		}},
		{"matcher covering every stat the diagnosis reads", func(t *testing.T) *Snapshot {
			var patterns []string
			for _, r := range statsMatcherRegexps {
				patterns = append(patterns, "regex:"+r)
			}
			return &Snapshot{Now: fxNow, Config: withMatcher(append(istioDefault, patterns...)...)}
		}, nil, nil},
		{"a pattern that cannot be evaluated: say nothing", func(t *testing.T) *Snapshot {
			return &Snapshot{Now: fxNow, Config: withMatcher("prefix:cluster_manager", "weird-pattern")}
		}, nil, nil},
		{"pod template patch names the deployment; an existing proxy config is merged", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, map[string]fxCluster{"xds-grpc": {values: map[string]float64{"upstream_cx_total": 1}}}))
			s.Pod = fxPod("reviews")
			s.Config = &envoyadmin.ConfigSummary{Proxy: envoyadmin.ProxyInfo{ProxyConfig: "holdApplicationUntilProxyStarts: true"}}
			return s
		}, []string{"MESH1201"}, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Fix.Command, "kubectl patch deployment/reviews -n default") || !strings.Contains(f.Fix.Summary, "merge") {
				t.Errorf("%q / %q", f.Fix.Command, f.Fix.Summary)
			}
		}},
		{"healthy: per-cluster stats recorded", func(t *testing.T) *Snapshot { return fxOne(fxSample(nil, full)) }, nil, nil},
		{"healthy: no matcher, Envoy records everything", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(nil, full))
			s.Config = &envoyadmin.ConfigSummary{}
			return s
		}, nil, nil},
		{"no evidence", func(t *testing.T) *Snapshot { return &Snapshot{} }, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, StatsDisabledRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs[0])
			}
		})
	}
}
