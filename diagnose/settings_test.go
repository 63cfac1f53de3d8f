package diagnose

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/captures"
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
		{"agent connect timeout", agent.ConnectTimeout, "5s (default)"},
		{"agent idle", agent.IdleTimeout, "1h (default)"},
		{"agent max retries", agent.MaxRetries, "3 (default)"},
		{"agent outlier", agent.Outlier, "off"},
		{"reviews idle", reviews.IdleTimeout, "4s"},
		{"reviews max connections (DEFAULT priority, not HIGH)", reviews.MaxConnections, "100"},
		{"reviews pending", reviews.MaxPending, "unlimited"},
		{"reviews requests", reviews.MaxRequests, "1024 (default)"},
		{"reviews outlier", reviews.Outlier, "5×5xx every 10s eject 30s max 100%"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(reviews.RouteTimeouts) != 2 || reviews.RouteTimeouts[0] != "500ms" || reviews.RouteTimeouts[1] != "none" {
		t.Errorf("route timeouts = %q", reviews.RouteTimeouts)
	}
	if len(reviews.Retries) != 2 || reviews.Retries[0] != "2×[5xx] per try 200ms" || reviews.Retries[1] != "none" {
		t.Errorf("retries = %q", reviews.Retries)
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
			golden := filepath.Join("testdata", "golden", "clusters-"+tc.name+".txt")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./diagnose -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("clusters table differs from %s:\n%s", golden, buf.String())
			}
		})
	}
}
