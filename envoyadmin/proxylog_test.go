package envoyadmin

import (
	"strings"
	"testing"
)

// Lines from the real-world corpus (testdata/realworld, sources in each case.yaml) and from
// healthy start-ups: each kind is recognised, and an ordinary line or a periodic reconnect
// is not an event.
func TestClassifyProxyLogLine(t *testing.T) {
	for _, tc := range []struct {
		line     string
		kind     ProxyLogKind
		resource string
	}{
		{"2021-03-05T10:10:10.123456Z\twarning\tenvoy config\tgRPC config for type.googleapis.com/envoy.config.listener.v3.Listener rejected: Error adding/updating listener(s) 0.0.0.0_8080: foo", ProxyLogConfigRejected, "Listener"},
		{"[2024-01-01 10:00:00.000][1][warning][config] [source/common/config/grpc_subscription_impl.cc:128] gRPC config: initial fetch timed out for type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret", ProxyLogFetchTimeout, "Secret"},
		{"2021-03-05T10:10:10Z\twarn\tEnvoy proxy is NOT ready: config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected", ProxyLogNotReady, ""},
		{"[2023-05-24 12:32:33.619][1][warning][config] [./source/common/config/grpc_stream.h:201] StreamClusters gRPC config stream to contour closed since 76s ago: 14, upstream connect error or disconnect/reset before headers. reset reason: connection failure", ProxyLogControlPlane, ""},
		{`2021-03-26T02:36:04.761749Z	error	citadelclient	Failed to create certificate: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial tcp: i/o timeout"`, ProxyLogCertificate, ""},
		{"warning envoy config    StreamSecrets gRPC config stream closed: 2, failed to generate secret for default: failed to generate workload certificate: create certificate: rpc error", ProxyLogCertificate, ""},
		{"2019-03-15T09:03:56.220651Z     warn    Epoch 0 terminated with an error: signal: killed", ProxyLogCrashed, ""},
		{"[2020-03-27 21:54:04.212][81][critical][assert] [source/common/network/listener_impl.cc:79] panic: listener accept failure: Too many open files", ProxyLogFileHandles, ""},
		{"2022-01-01T00:00:00Z\terror\tx509: certificate has expired or is not yet valid", ProxyLogCertExpired, ""},
		{"[2017-05-17 03:00:52.735][14236][critical][assert] assert failure: fd_ != -1: external/envoy/source/common/network/connection_impl.cc:58", ProxyLogFileHandles, ""},
		{"[2020-01-01 00:00:00.000][1][critical][assert] assert failure: false. Details: unexpected state", ProxyLogCrashed, ""},
	} {
		ev, ok := ClassifyProxyLogLine(tc.line)
		if !ok || ev.Kind != tc.kind || ev.Resource != tc.resource {
			t.Errorf("ClassifyProxyLogLine(%.70q) = %+v %v, want %s %q", tc.line, ev, ok, tc.kind, tc.resource)
		}
	}
	for _, line := range []string{
		"2021-04-25T03:02:16.930447Z\tinfo\tFLAG: --concurrency=\"2\"",
		"2024-01-01T00:00:00Z\tinfo\tEnvoy proxy is ready",
		"[2024-01-01 00:00:00.000][1][warning][config] StreamAggregatedResources gRPC config stream to xds-grpc closed since 1797s ago: 0, ",
		"2024-01-01T00:00:00Z\tinfo\tads\tADS: new connection for node:sidecar~10.0.0.1~x.default~default.svc.cluster.local-1",
	} {
		if ev, ok := ClassifyProxyLogLine(line); ok {
			t.Errorf("ClassifyProxyLogLine(%.70q) = %+v, want no event", line, ev)
		}
	}
}

// The wrappings log pipelines and viewers put around access-log lines are taken off.
func TestParseLogUnwraps(t *testing.T) {
	line := `[2024-04-25T17:51:55.290Z] "GET / HTTP/1.1" 503 UF upstream_reset_before_response_started{remote_connection_failure,delayed_connect_error:_111} - "-" 0 91 2 - "-" "curl/8.0" "abc" "web:80" "10.0.0.1:80" outbound|80||web.default.svc.cluster.local - 10.0.0.2:80 10.0.0.3:1234 - default`
	escaped := strings.ReplaceAll(line, `"`, `\"`)
	for name, in := range map[string]string{
		"docker json-file":    `{"log":"` + escaped + `\n","stream":"stdout","time":"2024-04-25T17:51:55.29Z"}`,
		"shipper message":     `{"message":"` + escaped + `","kubernetes":{"pod_name":"web-1","container_name":"istio-proxy"}}`,
		"escaped quotes":      escaped,
		"CRI record":          "2024-04-25T17:51:55.29Z stdout F " + line,
		"stern prefix":        "web-1 istio-proxy " + line,
		"grep line number":    "3236824-" + line,
		"viewer label":        "INFO 2024-03-25T08:56:41.897522475Z [resource.labels.containerName: istio-proxy] " + line,
		"Emissary ACCESS":     "ACCESS " + line,
		"pretty-printed JSON": "{\n  \"response_code\": 503,\n  \"response_flags\": \"UF\",\n  \"upstream_cluster\": \"outbound|80||web.default.svc.cluster.local\"\n}",
	} {
		l, err := ParseLog(strings.NewReader(in))
		if err != nil || len(l.Entries) != 1 || l.Entries[0].Code != 503 || len(l.Entries[0].Flags) != 1 || l.Entries[0].Flags[0] != "UF" {
			t.Errorf("%s: %+v %v (errors %v)", name, l.Entries, err, l.Errors)
		}
	}
	// A JSON object that is neither a wrapper nor an access log stays an error.
	if l, _ := ParseLog(strings.NewReader(`{"service":"x","count":3}`)); len(l.Entries) != 0 || len(l.Errors) != 1 {
		t.Errorf("plain JSON: %+v", l)
	}
}

func TestRepairPastedJSON(t *testing.T) {
	in := "{\"certificates\": [\n  {\"a\": 1},\n  ...\n]}"
	out, ok := repairPastedJSON([]byte(in))
	if !ok || string(out) != "{\"certificates\": [\n  {\"a\": 1}\n]}" {
		t.Errorf("repairPastedJSON = %q %v", out, ok)
	}
	if _, ok := repairPastedJSON([]byte(`{"a": "..."}`)); ok {
		t.Error("an ellipsis inside a string was taken for an elision")
	}
}

func TestParseCertsExcerpt(t *testing.T) {
	// A /certs excerpt with a line left out, as pasted in a walkthrough: not JSON any more.
	in := "{\n \"certificates\": [\n  {\n   \"ca_cert\": [\n    {\n     \"path\": \"/etc/envoy/ca/ca.crt\",\n     \"serial_number\": \"778E35\",\n     \"days_until_expiration\": \"3649\",\n     \"valid_from\": \"2021-11-06T08:33:54Z\",\n     \"expiration_time\": \"2031-11-04T08:33:54Z\"\n    }\n   ],\n  },\n  ……\n  }\n ]\n}"
	certs, err := ParseCerts([]byte(in))
	if err != nil || len(certs) != 1 || certs[0].SerialNumber != "778e35" || certs[0].NotAfter.Year() != 2031 || certs[0].DaysUntilExpiration != 3649 {
		t.Fatalf("ParseCerts = %+v %v", certs, err)
	}
	if _, err := ParseCerts([]byte("not json, no certificate")); err == nil {
		t.Error("text with no certificate parsed")
	}
}

func TestConfigDumpExcerptWarming(t *testing.T) {
	in := `"dynamic_warming_clusters": [
    {
     "version_info": "2021-12-10T08:19:32Z/10",
     "cluster": {
      "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
      "name": "outbound|443||c.test.svc.cluster.local",
      "type": "EDS"`
	s, ok := ConfigDumpExcerpt([]byte(in))
	if !ok || len(s.Warming) != 1 || s.Warming[0] != "cluster outbound|443||c.test.svc.cluster.local" {
		t.Errorf("ConfigDumpExcerpt = %+v %v", s, ok)
	}
	// jq '.configs[1].dynamic_active_clusters': the section's list alone.
	list := `[{"version_info": "1", "cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "example_proxy_cluster", "type": "LOGICAL_DNS", "connect_timeout": "5s"}}]`
	if s, ok := ConfigDumpExcerpt([]byte(list)); !ok || len(s.Clusters) != 1 || s.Clusters[0].Name.Raw != "example_proxy_cluster" {
		t.Errorf("a list of clusters: %+v %v", s, ok)
	}
	if _, ok := ConfigDumpExcerpt([]byte(`"dynamic_active_clusters": []`)); ok {
		t.Error("an excerpt without warming clusters was read as warming")
	}
}
