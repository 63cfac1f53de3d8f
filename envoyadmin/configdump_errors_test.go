package envoyadmin

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestParseConfigDumpNotADump(t *testing.T) {
	real := captures.Read(t, "config_dump/istio-echo-sidecar-2020-v3-mixed.json")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "config dump is empty"},
		{"blank", " \n\t", "config dump is empty"},
		{"text", "upstream connect error", "not a config dump"},
		{"array", `[{"configs": []}]`, "got a JSON array"},
		{"string", `"configs"`, "got a JSON string"},
		{"other JSON", `{"cluster_statuses": []}`, `"configs" array`},
		{"configs not an array", `{"configs": {"@type": "x"}}`, "not an array"},
		{"truncated", `{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "static_clusters": [`, "truncated"},
		{"truncated in a string", `{"configs": [{"@type": "type.googleapis.com/envo`, "unterminated string"},
		{"trailing data", `{"configs": []} {"configs": []}`, "after the end"},
		{"unbalanced", `{"configs": [}`, "not valid JSON"},
		{"missing comma", `{"configs": [] "x": 1}`, "not valid JSON"},
		{"real dump cut", string(real[:len(real)/2]), "not valid JSON"},
		{"real dump cut at the end", string(real[:len(real)-2]), "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseConfigDump([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfigDump = %+v, %v; want an error containing %q", s, err, tc.want)
			}
			if !strings.Contains(err.Error(), "config dump") {
				t.Errorf("error %q does not say a config dump was expected", err)
			}
		})
	}
	// Cutting a real dump anywhere must not panic.
	for n := 0; n < len(real); n += 4999 {
		if _, err := ParseConfigDump(real[:n]); err == nil {
			t.Errorf("dump cut at byte %d parsed without error", n)
		}
	}
	if s := cdParse(t, []byte(`{"configs": []}`)); len(s.Clusters)+len(s.Warnings) != 0 {
		t.Errorf("empty dump: %+v", s)
	}
}

// A resource that does not decode is skipped with a warning naming it; the rest of the dump is
// still read.
func TestParseConfigDumpBadResources(t *testing.T) {
	data := cdDump(
		cdSection("ClustersConfigDump", `"dynamic_active_clusters": [
		  {"cluster": {"name": "bad", "connect_timeout": "soon"}},
		  {"cluster": {"name": "good", "connect_timeout": "1s"}},
		  {"cluster": {"name": "bad-tls", "transport_socket": {"name": "tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "sni": 42}}}},
		  {"version_info": "no cluster"}]`),
		cdSection("ListenersConfigDump", `"dynamic_listeners": [{"name": "l", "active_state": {"listener": {"name": "l", "filter_chains": [
		  {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "stream_idle_timeout": 5}}]}]}}}]`),
		cdSection("RoutesConfigDump", `"dynamic_route_configs": [{"route_config": {"name": "r", "virtual_hosts": [{"name": "vh", "routes": [{"match": {"prefix": "/"}, "route": {"timeout": []}}, {"match": {"path": "/ok"}, "direct_response": {"status": 200}}]}]}}]`),
		`{"@type": "type.googleapis.com/envoy.admin.v3.EcdsConfigDump"}`,
		`{"@type": "type.googleapis.com/acme.admin.v1.WidgetsConfigDump", "widgets": [1]}`,
		`{"no_type": true}`,
	)
	s := cdParse(t, data)
	wantWarnings := []string{
		`cluster #3 (dynamic) has no cluster`,
		`configs[4] is a acme.admin.v1.WidgetsConfigDump`,
		`configs[5] has no @type`,
		`cluster "bad": skipped:`,
		`cluster "bad-tls": transport socket: upstream TLS context:`,
		`listener "l": filter chain "": envoy.filters.network.http_connection_manager:`,
		`route config "r": virtual host "vh": route #0:`,
	}
	if len(s.Warnings) != len(wantWarnings) {
		t.Fatalf("warnings %q, want %d", s.Warnings, len(wantWarnings))
	}
	for i, w := range wantWarnings {
		if !strings.HasPrefix(s.Warnings[i], w) {
			t.Errorf("warning %d = %q, want prefix %q", i, s.Warnings[i], w)
		}
	}
	if len(s.Clusters) != 2 || s.Clusters[0].Name.Raw != "good" || s.Clusters[1].TLSMode != "" {
		t.Errorf("clusters %+v: want good, and bad-tls without a TLS mode", s.Clusters)
	}
	if len(s.Listeners) != 1 || len(s.Listeners[0].FilterChains) != 1 || len(s.Routes) != 1 || s.Routes[0].DirectResponse != 200 {
		t.Errorf("listeners %+v routes %+v", s.Listeners, s.Routes)
	}
}

func TestParseConfigDumpRejected(t *testing.T) {
	errState := func(name string) string {
		return `"error_state": {"failed_configuration": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "` + name + `", "connect_timeout": "-1s"},
		  "last_update_attempt": "2024-03-04T05:06:07.890Z", "details": "Proto constraint validation failed (` + name + `)"}`
	}
	data := cdDump(
		cdSection("ClustersConfigDump", `"dynamic_active_clusters": [{"cluster": {"name": "c1", "type": "EDS"}, `+errState("c1")+`}, {`+errState("c2")+`}]`),
		cdSection("ListenersConfigDump", `"dynamic_listeners": [{"name": "0.0.0.0_8080", `+errState("")+`}, {"name": "old", "draining_state": {"listener": {"name": "old"}}}]`),
		cdSection("RoutesConfigDump", `"dynamic_route_configs": [{"route_config": {"name": "8080"}, `+errState("")+`}]`),
		cdSection("SecretsConfigDump", `"dynamic_active_secrets": [{"name": "default", `+errState("")+`}]`),
	)
	s := cdParse(t, data)
	want := []RejectedResource{
		{Kind: "cluster", Name: "c1"}, {Kind: "cluster", Name: "c2"}, {Kind: "listener", Name: "0.0.0.0_8080"},
		{Kind: "route config", Name: "8080"}, {Kind: "secret", Name: "default"},
	}
	when := time.Date(2024, 3, 4, 5, 6, 7, 890e6, time.UTC)
	if len(s.Rejected) != len(want) {
		t.Fatalf("rejected %+v, want %+v", s.Rejected, want)
	}
	for i, w := range want {
		r := s.Rejected[i]
		if r.Kind != w.Kind || r.Name != w.Name || !r.When.Equal(when) || !strings.HasPrefix(r.Details, "Proto constraint validation failed") {
			t.Errorf("rejected[%d] = %+v, want %+v at %v", i, r, w, when)
		}
	}
	// c1 is still in use, c2 never was.
	if len(s.Clusters) != 1 || s.Clusters[0].Name.Raw != "c1" || len(s.Warnings) != 0 {
		t.Errorf("clusters %+v warnings %q", s.Clusters, s.Warnings)
	}
}

// v2 dumps: envoy.admin.v2alpha sections, v2 resources with tls_context, Struct filter configs,
// v2 filter type names and v2's regex route match.
func TestParseConfigDumpV2(t *testing.T) {
	v2TLS := `"tls_context": {"common_tls_context": {"tls_certificates": [{"certificate_chain": {"filename": "/etc/certs/cert-chain.pem"}, "private_key": {"filename": "/etc/certs/key.pem"}}],
	  "validation_context": {"trusted_ca": {"filename": "/etc/certs/root-cert.pem"}, "verify_subject_alt_name": ["spiffe://cluster.local/ns/default/sa/reviews"]}}`
	clusters := `{"@type": "type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump", "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.api.v2.Cluster",
	  "name": "outbound|9080||reviews.default.svc.cluster.local", "type": "EDS", "connect_timeout": "1s", "lb_policy": "ORIGINAL_DST_LB",
	  "hosts": [{"socket_address": {"address": "10.0.0.1", "port_value": 9080}}], ` + v2TLS + `, "sni": "outbound_.9080_._.reviews"}}}]}`
	listener := `{"@type": "type.googleapis.com/envoy.api.v2.Listener", "name": "10.0.0.5_9080", "address": {"socket_address": {"address": "10.0.0.5", "port_value": 9080}},
	  "deprecated_v1": {"bind_to_port": false},
	  "filter_chains": [
	    {"filter_chain_match": {"application_protocols": ["istio"]}, ` + v2TLS + `, "require_client_certificate": true},
	     "filters": {"name": "envoy.http_connection_manager", "config": {"stat_prefix": "10.0.0.5_9080", "http_filters": {"name": "envoy.router"},
	       "route_config": {"name": "inbound|9080||reviews", "virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": [{"match": {"regex": "/api/.*"},
	         "route": {"cluster": "inbound|9080||reviews", "timeout": "0s"}, "per_filter_config": {"mixer": {"x": 1}}}]}]}}}},
	    {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
	       "@type": "type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager", "stat_prefix": "plain", "rds": {"route_config_name": "9080", "config_source": {"ads": {}}}}}]}
	  ]}`
	listeners := `{"@type": "type.googleapis.com/envoy.admin.v2alpha.ListenersConfigDump", "dynamic_active_listeners": [{"version_info": "v1", "listener": ` + listener + `}]}`
	boot := cdSection("BootstrapConfigDump", `"bootstrap": {"node": {"id": "sidecar~10.0.0.5~r.default~default.svc.cluster.local", "build_version": "abc/1.13.1/Clean/RELEASE/BoringSSL", "metadata": {"INSTANCE_IPS": "10.0.0.5"}}}`)
	s := cdParse(t, cdDump(boot, clusters, listeners))
	if len(s.Warnings) > 0 {
		t.Fatalf("warnings %q", s.Warnings)
	}
	c := cdCluster(t, s, "outbound|9080||reviews.default.svc.cluster.local")
	cdWantTLS(t, c, TLSModeIstioMutual, "outbound_.9080_._.reviews", "spiffe://cluster.local/ns/default/sa/reviews")
	if c.LBPolicy != "ORIGINAL_DST_LB" || c.ConnectTimeout != time.Second {
		t.Errorf("v2 cluster: %+v", c)
	}
	l := cdListener(t, s, "10.0.0.5_9080")
	if !l.Inbound || l.MTLSMode != "PERMISSIVE" || len(l.FilterChains) != 2 {
		t.Fatalf("v2 listener: %+v", l)
	}
	if fc := l.FilterChains[0]; !fc.TLS || !fc.RequireClientCertificate || fc.StatPrefix != "10.0.0.5_9080" || fc.RouteConfigName != "inbound|9080||reviews" {
		t.Errorf("v2 TLS chain: %+v", fc)
	}
	if fc := l.FilterChains[1]; fc.TLS || fc.StatPrefix != "plain" || fc.RouteConfigName != "9080" {
		t.Errorf("v2 typed chain: %+v", fc)
	}
	if len(s.Routes) != 1 || s.Routes[0].Match != "regex /api/.*" {
		t.Errorf("routes %+v", s.Routes)
	}
	if s.Proxy.EnvoyVersion != "1.13.1" || s.Proxy.PodName != "r" {
		t.Errorf("proxy %+v", s.Proxy)
	}
}

// The resolver gives protojson the v3 type for v2 names, and an empty message for types this
// binary does not link, so Any fields anywhere decode.
func TestConfigDumpResolver(t *testing.T) {
	d := newDumpDecoder()
	var ext corev3.TypedExtensionConfig
	in := `{"name": "istio.stats", "typed_config": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": "type.googleapis.com/stats.PluginConfig", "value": {"reporter": "SERVER"}}}`
	if err := d.opts.Unmarshal([]byte(in), &ext); err != nil {
		t.Fatalf("unknown type: %v", err)
	}
	in = `{"@type": "type.googleapis.com/acme.v1.Widget", "value": 5, "nested": {"@type": "x"}}`
	if err := d.opts.Unmarshal([]byte(in), &anypb.Any{}); err != nil {
		t.Fatalf("unknown type with a value member: %v", err)
	}
	var a anypb.Any
	if err := d.opts.Unmarshal([]byte(`{"@type": "type.googleapis.com/envoy.api.v2.auth.UpstreamTlsContext", "sni": "a.example", "common_tls_context": {}}`), &a); err != nil {
		t.Fatalf("v2 type: %v", err)
	}
	var ctx tlsv3.UpstreamTlsContext
	if err := proto.Unmarshal(a.GetValue(), &ctx); err != nil || ctx.GetSni() != "a.example" {
		t.Errorf("v2 UpstreamTlsContext decoded as v3: sni %q, %v", ctx.GetSni(), err)
	}
	for in, want := range map[string]string{
		"type.googleapis.com/envoy.api.v2.Cluster": "envoy.config.cluster.v3.Cluster",
		"envoy.api.v2.route.Route":                 "envoy.config.route.v3.Route",
		"type.googleapis.com/envoy.config.filter.network.http_connection_manager.v2.HttpConnectionManager": dumpHCMType,
		"type.googleapis.com/envoy.extensions.transport_sockets.tls.v4alpha.DownstreamTlsContext":          dumpDownstreamTLSType,
		"type.googleapis.com/envoy.admin.v2alpha.ClustersConfigDump":                                       "envoy.admin.v3.ClustersConfigDump",
	} {
		if got := dumpTypeName(in); got != want {
			t.Errorf("dumpTypeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// "[redacted]" in a bytes field that is decoded becomes empty instead of failing base64.
func TestConfigDumpPrunerRedacted(t *testing.T) {
	d := newDumpDecoder()
	var ds corev3.DataSource
	if err := d.decode([]byte(`{"inline_bytes": "[redacted]", "unused": {"inline_bytes": "[redacted]"}}`), dumpSpec{"inline_bytes": nil}, &ds); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(ds.GetInlineBytes()) != 0 {
		t.Errorf("inline bytes %q, want empty", ds.GetInlineBytes())
	}
	var tc tlsv3.TlsCertificate
	spec := dumpSpec{"certificate_chain": nil, "private_key": nil}
	if err := d.decode([]byte(`{"certificate_chain": {"inline_bytes": "LS0t"}, "private_key": {"inline_bytes": "[redacted]"}}`), spec, &tc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if string(tc.GetCertificateChain().GetInlineBytes()) != "---" {
		t.Errorf("certificate chain %q", tc.GetCertificateChain().GetInlineBytes())
	}
}

func TestConfigDumpIter(t *testing.T) {
	it := dumpObject([]byte(` { "a" : [1, {"b": "x\"}"}], "c\\d": null, "e": -1.5e3 } `))
	var keys []string
	for it.Next() {
		if string(it.Key()) == "a" {
			el := it.Array()
			n := 0
			for el.Next() {
				n++
			}
			if n != 2 || el.Err() != nil {
				t.Errorf("a has %d elements, err %v", n, el.Err())
			}
		}
		keys = append(keys, string(it.Key())+"="+string(it.Val()))
	}
	want := `a=[1, {"b": "x\"}"}]|c\\d=null|e=-1.5e3`
	if got := strings.Join(keys, "|"); got != want || it.Err() != nil {
		t.Errorf("members %s (err %v), want %s", got, it.Err(), want)
	}
	for _, bad := range []string{`{"a" 1}`, `{"a": 1,}`, `{"a": [1, 2}`, `{"a": tru}`, `{"a": "x`, `{a: 1}`} {
		it := dumpObject([]byte(bad))
		for it.Next() {
			it.Val()
		}
		if it.Err() == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestConfigDumpIterCaptures walks every real dump with dumpIter and checks each value it yields
// against encoding/json: same values, same count.
func TestConfigDumpIterCaptures(t *testing.T) {
	for _, path := range captures.Files(t, "config_dump") {
		rel, _ := filepath.Rel(captures.Dir(t), path)
		data := captures.Read(t, rel)
		var want any
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		var count func(v any) int
		count = func(v any) int {
			n := 1
			switch t := v.(type) {
			case map[string]any:
				for _, e := range t {
					n += count(e)
				}
			case []any:
				for _, e := range t {
					n += count(e)
				}
			}
			return n
		}
		var walk func(it *dumpIter) int
		walk = func(it *dumpIter) int {
			n := 1
			v := it.Val()
			switch v[0] {
			case '{':
				m := it.Object()
				for m.Next() {
					n += walk(&m)
				}
				if m.Err() != nil {
					t.Fatalf("%s: %v", rel, m.Err())
				}
				it.After(&m)
			case '[':
				a := it.Array()
				for a.Next() {
					n += walk(&a)
				}
				if a.Err() != nil {
					t.Fatalf("%s: %v", rel, a.Err())
				}
				it.After(&a)
			default:
				if !json.Valid(v) {
					t.Fatalf("%s: invalid value %q", rel, v)
				}
			}
			return n
		}
		root := dumpValueIter(data)
		if got, want := walk(&root), count(want); got != want {
			t.Errorf("%s: dumpIter saw %d values, encoding/json %d", rel, got, want)
		}
		if end, err := dumpValueEnd(data, 0); err != nil || dumpSkipWS(data, end) != len(data) {
			t.Errorf("%s: dumpValueEnd = %d, %v; want the whole document", rel, end, err)
		}
	}
}
