package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

func TestConfigRejectedRule(t *testing.T) {
	rejected := &envoyadmin.ConfigSummary{Rejected: []envoyadmin.RejectedResource{{
		Kind: "listener", Name: "0.0.0.0_8080",
		Details: "Error adding/updating listener(s) 0.0.0.0_8080: Didn't find a registered implementation for 'envoy.filters.http.foo' with type URL: ''",
		When:    fxNow.Add(-2 * time.Minute),
	}}}
	cases := []struct {
		name  string
		snap  func(t *testing.T) *Snapshot
		want  []string
		sev   Severity
		check func(t *testing.T, f Finding)
	}{
		{"real capture: Emissary's LDS rejections since start", func(t *testing.T) *Snapshot {
			return fxOne(fxCaptureStats(t, "stats_text/emissary-envoy-stats-with-histograms.txt"))
		}, []string{"MESH1001"}, SeverityWarning, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Title, "LDS (listeners) 17") || f.Evidence[0].Source != "stats.prom listener_manager_lds_update_rejected" && !strings.Contains(f.Evidence[0].Source, "lds") {
				t.Errorf("title %q evidence %+v", f.Title, f.Evidence)
			}
		}},
		{"a resource in error now, with Envoy's reason", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(map[string]float64{"listener_manager_lds_update_rejected": 4}, nil))
			s.Config = rejected
			return s
		}, []string{"MESH1001"}, SeverityError, func(t *testing.T, f Finding) {
			found := false
			for _, e := range f.Evidence {
				found = found || strings.Contains(e.Text, "envoy.filters.http.foo")
			}
			if !found || !strings.Contains(f.Title, "listener 0.0.0.0_8080") || !strings.Contains(f.Explanation, "registered implementation") {
				t.Errorf("title %q evidence %+v", f.Title, f.Evidence)
			}
		}},
		{"rejections during the window", func(t *testing.T) *Snapshot {
			return fxTwo(fxSample(map[string]float64{"cluster_manager_cds_update_rejected": 3}, nil), fxSample(map[string]float64{"cluster_manager_cds_update_rejected": 5}, nil))
		}, []string{"MESH1001"}, SeverityError, nil},
		{"old rejections, none during the window", func(t *testing.T) *Snapshot {
			s := fxTwo(fxSample(map[string]float64{"http_inbound_0_0_0_0_8080_rds_inbound_8080___update_rejected": 2}, nil), fxSample(map[string]float64{"http_inbound_0_0_0_0_8080_rds_inbound_8080___update_rejected": 2}, nil))
			s.Config = &envoyadmin.ConfigSummary{}
			return s
		}, []string{"MESH1001"}, SeverityWarning, func(t *testing.T, f Finding) {
			if !strings.Contains(f.Title, "RDS (routes) 2") {
				t.Errorf("title %q", f.Title)
			}
		}},
		{"rejected endpoints of one cluster", func(t *testing.T) *Snapshot {
			return fxOne(fxSample(nil, map[string]fxCluster{fxReviews: {values: map[string]float64{"update_rejected": 1}}}))
		}, []string{"MESH1001"}, SeverityWarning, nil},
		{"healthy: nothing rejected", func(t *testing.T) *Snapshot {
			s := fxOne(fxSample(map[string]float64{"cluster_manager_cds_update_rejected": 0, "listener_manager_lds_update_success": 12}, nil))
			s.Config = &envoyadmin.ConfigSummary{}
			return s
		}, nil, "", nil},
		{"no evidence", func(t *testing.T) *Snapshot { return &Snapshot{} }, nil, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, ConfigRejectedRule{}, tc.snap(t))
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if len(fs) == 0 {
				return
			}
			if fs[0].Severity != tc.sev {
				t.Errorf("severity %s, want %s", fs[0].Severity, tc.sev)
			}
			if tc.check != nil {
				tc.check(t, fs[0])
			}
		})
	}
}
