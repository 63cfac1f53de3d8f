package diagnose

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/golden"
)

func TestSettingsFillsEnvoyDefaults(t *testing.T) {
	timeout := 500 * time.Millisecond
	disabled := time.Duration(0)
	cfg := &envoyadmin.ConfigSummary{
		Clusters: []envoyadmin.ClusterConfig{
			{Name: envoyadmin.ParseClusterName("outbound|9080||reviews.default.svc.cluster.local"), DiscoveryType: "EDS", TLSMode: envoyadmin.TLSModeAuto,
				ConnectTimeout: 10 * time.Second, IdleTimeout: 4 * time.Second,
				CircuitBreakers: []envoyadmin.CircuitBreaker{{Priority: "HIGH", MaxConnections: u32(5)}, {Priority: "DEFAULT", MaxConnections: u32(100), MaxPendingRequests: u32(4294967295)}},
				Outlier:         &envoyadmin.OutlierDetection{Consecutive5xx: u32(5), Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: u32(100)}},
			{Name: envoyadmin.ParseClusterName("agent"), DiscoveryType: "STATIC", TLSMode: envoyadmin.TLSModePlaintext},
		},
		Routes: []envoyadmin.RouteConfig{
			{RouteConfigName: "9080", Clusters: []envoyadmin.WeightedCluster{{Name: "outbound|9080||reviews.default.svc.cluster.local", Weight: 100}}, Timeout: &timeout,
				Retry: &envoyadmin.RetryPolicy{RetryOn: "5xx", NumRetries: 2, PerTryTimeout: 200 * time.Millisecond}},
			{RouteConfigName: "reviews.default.svc.cluster.local:9080", Clusters: []envoyadmin.WeightedCluster{{Name: "outbound|9080||reviews.default.svc.cluster.local", Weight: 100}}, Timeout: &disabled},
		},
	}
	got := Settings(cfg)
	if len(got) != 2 || got[0].Cluster.Raw != "agent" {
		t.Fatalf("settings not sorted by name: %+v", got)
	}
	agent, reviews := got[0], got[1]
	for _, c := range []struct{ name, got, want string }{
		{"agent connect timeout", agent.ConnectTimeout.String(), "5s*"},
		{"agent idle", agent.IdleTimeout.String(), "1h*"},
		{"agent max retries", agent.MaxRetries.String(), "3*"},
		{"agent outlier", outlierText(agent.Outlier), "off"},
		{"reviews idle", reviews.IdleTimeout.String(), "4s"},
		{"reviews max connections (DEFAULT priority, not HIGH)", reviews.MaxConnections.String(), "100"},
		{"reviews pending", reviews.MaxPending.String(), "unlimited"},
		{"reviews requests", reviews.MaxRequests.String(), "1024*"},
		{"reviews outlier", outlierText(reviews.Outlier), "5×5xx every 10s eject 30s max 100%"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if agent.ConnectTimeout != (DurationSetting{Seconds: 5, Default: true}) || reviews.MaxPending != (LimitSetting{Limit: 4294967295, Unlimited: true}) {
		t.Errorf("typed values: connect %+v, pending %+v", agent.ConnectTimeout, reviews.MaxPending)
	}
	timeouts, retries := routeTexts(reviews.Routes)
	if len(timeouts) != 2 || timeouts[0] != "500ms" || timeouts[1] != "none" {
		t.Errorf("route timeouts = %q", timeouts)
	}
	if len(retries) != 2 || retries[0] != "2×[5xx] per try 200ms" || retries[1] != "none" {
		t.Errorf("retries = %q", retries)
	}
}

// TestSettingsTextGolden pins the clusters table on a real dump (Kuma: outlier detection, TLS)
// and on the circuit-breaker incident.
func TestSettingsTextGolden(t *testing.T) {
	for _, tc := range []struct{ name, dump string }{
		{"kuma", captures.Path(t, "config_dump/kuma-envoy-1.19-dataplane.json")},
		{"circuit-breaker", filepath.Join("..", "testdata", "incidents", "circuit-breaker", FileConfigDump)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(tc.dump)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := envoyadmin.ParseConfigDump(data)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := RenderSettingsText(&buf, Settings(cfg)); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", "golden", "clusters-"+tc.name+".txt"), buf.Bytes())
		})
	}
}
