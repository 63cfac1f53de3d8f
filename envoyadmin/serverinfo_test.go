package envoyadmin

import (
	"os"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func TestParseServerInfoCaptures(t *testing.T) {
	for _, file := range captures.Files(t, "server_info") {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseServerInfo(data)
		if err != nil || got.Version == "" || got.State == "" || got.Uptime <= 0 {
			t.Errorf("%s: %+v, %v", file, got, err)
		}
	}

	got, err := ParseServerInfo(captures.Read(t, "server_info/envoy-1.15.0-dev-front-proxy-server_info.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := ServerInfo{
		Version:     "093e2ffe046313242144d0431f1bb5cf18d82544/1.15.0-dev/Clean/RELEASE/BoringSSL",
		State:       "LIVE",
		Uptime:      188 * time.Second,
		Concurrency: 8,
	}
	if *got != want {
		t.Errorf("ParseServerInfo = %+v, want %+v", *got, want)
	}
}

func TestParseServerInfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ServerInfo
	}{
		{
			name: "Istio sidecar with node",
			in: `{"version":"abc/1.30.1/Distribution/RELEASE/BoringSSL","state":"LIVE","hot_restart_version":"disabled",
			 "command_line_options":{"concurrency":2,"base_id":"0"},
			 "node":{"id":"sidecar~10.244.0.7~reviews-v1-5b8f.default~default.svc.cluster.local","cluster":"reviews.default",
			   "metadata":{"ISTIO_VERSION":"1.22.3","ISTIO_META_ISTIO_VERSION":"x","istio_version":"y"}},
			 "uptime_current_epoch":"3600.5s","uptime_all_epochs":"3600.5s"}`,
			want: ServerInfo{
				Version: "abc/1.30.1/Distribution/RELEASE/BoringSSL", State: "LIVE",
				Uptime: time.Hour + 500*time.Millisecond, Concurrency: 2,
				NodeID:       "sidecar~10.244.0.7~reviews-v1-5b8f.default~default.svc.cluster.local",
				IstioVersion: "1.22.3",
			},
		},
		{
			name: "camelCase, draining, concurrency as string",
			in:   `{"version":"v","state":"DRAINING","commandLineOptions":{"concurrency":"4"},"uptimeCurrentEpoch":"5s","node":{"id":"router~x"}}`,
			want: ServerInfo{Version: "v", State: "DRAINING", Uptime: 5 * time.Second, Concurrency: 4, NodeID: "router~x"},
		},
		{
			name: "state as enum number",
			in:   `{"version":"v","state":3}`,
			want: ServerInfo{Version: "v", State: "INITIALIZING"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseServerInfo([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseServerInfoErrors(t *testing.T) {
	for _, in := range []string{``, `not json`, `[]`, `{}`, `{"certificates":[]}`,
		`{"version":"v","uptime_current_epoch":"soon"}`, `{"version":"v","uptime_current_epoch":"1e300s"}`} {
		if got, err := ParseServerInfo([]byte(in)); err == nil {
			t.Errorf("ParseServerInfo(%q) = %+v, no error", in, got)
		}
	}
}
