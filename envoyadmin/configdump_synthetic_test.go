package envoyadmin

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// The captures do not show every shape a dump can take; these small dumps, written the way
// Envoy prints them, cover the rest.

// cdDump wraps config dump sections into a dump.
func cdDump(sections ...string) []byte {
	return []byte(`{"configs": [` + strings.Join(sections, ",") + `]}`)
}

func cdSection(typ string, body string) string {
	return `{"@type": "type.googleapis.com/envoy.admin.v3.` + typ + `", ` + body + `}`
}

func cdParse(t *testing.T, data []byte) *ConfigSummary {
	t.Helper()
	s, err := ParseConfigDump(data)
	if err != nil {
		t.Fatalf("ParseConfigDump: %v", err)
	}
	return s
}

// Istio 1.2x's outbound cluster with auto mTLS, as istiod generates it.
const cdAutoMTLSCluster = `{
  "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  "name": "outbound|9080||reviews.default.svc.cluster.local",
  "type": "EDS",
  "eds_cluster_config": {"eds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}, "service_name": "outbound|9080||reviews.default.svc.cluster.local"},
  "connect_timeout": "10s",
  "lb_policy": "LEAST_REQUEST",
  "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295, "max_requests": 4294967295, "max_retries": 4294967295, "track_remaining": true}]},
  "outlier_detection": {"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 100, "consecutive_gateway_failure": 0, "enforcing_consecutive_gateway_failure": 0},
  "common_lb_config": {"locality_weighted_lb_config": {}},
  "metadata": {"filter_metadata": {"istio": {"services": [{"host": "reviews.default.svc.cluster.local", "name": "reviews", "namespace": "default"}], "default_original_port": 9080}}},
  "filters": [{"name": "istio.metadata_exchange", "typed_config": {"@type": "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange", "protocol": "istio-peer-exchange"}}],
  "transport_socket_matches": [
    {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
      "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
      "common_tls_context": {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
        "alpn_protocols": ["istio-peer-exchange", "istio"],
        "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"api_config_source": {"api_type": "GRPC", "transport_api_version": "V3", "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}], "set_node_on_first_message_only": true}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}}],
        "combined_validation_context": {
          "default_validation_context": {"match_subject_alt_names": [{"exact": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"}]},
          "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"api_config_source": {"api_type": "GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}}
        }
      },
      "sni": "outbound_.9080_._.reviews.default.svc.cluster.local"}}},
    {"name": "tlsMode-disabled", "match": {}, "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}
  ],
  "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "common_http_protocol_options": {"idle_timeout": "3600s", "max_requests_per_connection": 100},
    "use_downstream_protocol_config": {"http_protocol_options": {}, "http2_protocol_options": {}}}}
}`

// cdTLSCluster is a cluster with one transport socket around an UpstreamTlsContext.
func cdTLSCluster(name, common, extra string) string {
	return `{"name": "` + name + `", "type": "EDS", "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
	  "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
	  "common_tls_context": ` + common + `, "sni": "` + name + `.example"}}` + extra + `}`
}

func TestParseConfigDumpClusters(t *testing.T) {
	clusters := []string{
		cdAutoMTLSCluster,
		cdTLSCluster("istio-mutual", `{"tls_certificate_sds_secret_configs": [{"name": "default"}], "validation_context_sds_secret_config": {"name": "ROOTCA"}}`, ""),
		// DestinationRule MUTUAL with credentialName: the user's certificate from SDS.
		cdTLSCluster("mutual", `{"tls_certificate_sds_secret_configs": [{"name": "kubernetes://client-cert"}], "validation_context_sds_secret_config": {"name": "kubernetes://client-cert-cacert"}}`, ""),
		// "[redacted]" is how Envoy prints the private key: not base64.
		cdTLSCluster("mutual-inline", `{"tls_certificates": [{"certificate_chain": {"inline_bytes": "[redacted]"}, "private_key": {"inline_bytes": "[redacted]"}}], "validation_context": {"trusted_ca": {"inline_bytes": "[redacted]"}, "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": "spiffe://example.org/"}}]}}`, ""),
		cdTLSCluster("simple", `{"validation_context": {"trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"}}}`, `, "connect_timeout": "1.500s"`),
		// Wrapped sockets are unwrapped: internal_upstream around TLS.
		`{"name": "wrapped", "transport_socket": {"name": "internal_upstream", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
		  "transport_socket": {"name": "tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"}}}}}`,
		// Older Istio: protocol options on the cluster itself.
		`{"name": "h2", "type": "STRICT_DNS", "common_http_protocol_options": {"idle_timeout": "30s"}, "http2_protocol_options": {"max_concurrent_streams": 1073741824}, "max_requests_per_connection": 1}`,
		`{"name": "downstream-proto", "http2_protocol_options": {}, "protocol_selection": "USE_DOWNSTREAM_PROTOCOL", "lb_policy": 1}`,
		// An aggregate cluster: an extension type no one links, and a policy by extension.
		`{"name": "agg", "cluster_type": {"name": "envoy.clusters.aggregate", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig", "clusters": ["a", "b"]}},
		  "load_balancing_policy": {"policies": [{"typed_extension_config": {"name": "envoy.load_balancing_policies.cluster_provided", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.cluster_provided.v3.ClusterProvided"}}}]}}`,
		// An unknown transport socket with no TLS inside.
		`{"name": "alts", "transport_socket": {"name": "envoy.transport_sockets.alts", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts", "handshaker_service": "169.254.169.254:8080"}}}`,
		// protojson's default camelCase spelling, as some tools save dumps.
		`{"name": "camel", "connectTimeout": "2s", "circuitBreakers": {"thresholds": [{"priority": "HIGH", "maxRetries": 7}]}, "transportSocket": {"name": "envoy.transport_sockets.tls", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "commonTlsContext": {"tlsCertificateSdsSecretConfigs": [{"name": "default"}], "validationContextSdsSecretConfig": {"name": "ROOTCA"}}}}}`,
	}
	var entries []string
	for _, c := range clusters {
		entries = append(entries, `{"version_info": "v7", "cluster": `+c+`, "last_updated": "2024-01-02T03:04:05.678Z"}`)
	}
	warming := `{"version_info": "v8", "cluster": {"name": "istio-mutual", "type": "STATIC"}}, {"cluster": {"name": "warming-only", "type": "STATIC"}}`
	s := cdParse(t, cdDump(cdSection("ClustersConfigDump", `"dynamic_active_clusters": [`+strings.Join(entries, ",")+`], "dynamic_warming_clusters": [`+warming+`]`)))
	if len(s.Warnings) > 0 {
		t.Fatalf("warnings: %q", s.Warnings)
	}
	if len(s.Clusters) != len(clusters)+1 {
		t.Fatalf("%d clusters, want %d (a warming cluster that is also active is listed once)", len(s.Clusters), len(clusters)+1)
	}

	auto := cdCluster(t, s, "outbound|9080||reviews.default.svc.cluster.local")
	cdWantTLS(t, auto, TLSModeAuto, "outbound_.9080_._.reviews.default.svc.cluster.local", "spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
	max := cdU32(4294967295)
	cdWantBreaker(t, auto, CircuitBreaker{Priority: "DEFAULT", MaxConnections: max, MaxPendingRequests: max, MaxRequests: max, MaxRetries: max})
	wantOD := OutlierDetection{Consecutive5xx: cdU32(5), ConsecutiveGatewayFailure: cdU32(0), Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: cdU32(100)}
	if od := auto.Outlier; od == nil || !cdEqU32(od.Consecutive5xx, wantOD.Consecutive5xx) || !cdEqU32(od.ConsecutiveGatewayFailure, wantOD.ConsecutiveGatewayFailure) ||
		od.ConsecutiveLocalOrigin != nil || od.Interval != wantOD.Interval || od.BaseEjectionTime != wantOD.BaseEjectionTime || !cdEqU32(od.MaxEjectionPercent, wantOD.MaxEjectionPercent) {
		t.Errorf("outlier detection %+v, want %+v", od, wantOD)
	}
	if auto.IdleTimeout != time.Hour || auto.MaxRequestsPerConnection != 100 || auto.HTTP2 || auto.LBPolicy != "LEAST_REQUEST" ||
		auto.ConnectTimeout != 10*time.Second || auto.VersionInfo != "v7" || auto.Name.Port != 9080 || auto.Name.Host != "reviews.default.svc.cluster.local" {
		t.Errorf("auto mTLS cluster: %+v", auto)
	}
	cdWantTLS(t, cdCluster(t, s, "istio-mutual"), TLSModeIstioMutual, "istio-mutual.example")
	cdWantTLS(t, cdCluster(t, s, "mutual"), TLSModeMutual, "mutual.example")
	cdWantTLS(t, cdCluster(t, s, "mutual-inline"), TLSModeMutual, "mutual-inline.example", "prefix:spiffe://example.org/")
	simple := cdCluster(t, s, "simple")
	cdWantTLS(t, simple, TLSModeSimple, "simple.example")
	if simple.ConnectTimeout != 1500*time.Millisecond {
		t.Errorf("simple: connect timeout %v", simple.ConnectTimeout)
	}
	cdWantTLS(t, cdCluster(t, s, "wrapped"), TLSModeSimple, "")
	h2 := cdCluster(t, s, "h2")
	if h2.IdleTimeout != 30*time.Second || !h2.HTTP2 || h2.MaxRequestsPerConnection != 1 || h2.DiscoveryType != "STRICT_DNS" {
		t.Errorf("h2: %+v", h2)
	}
	if dp := cdCluster(t, s, "downstream-proto"); dp.HTTP2 || dp.LBPolicy != "LEAST_REQUEST" || dp.DiscoveryType != "STATIC" {
		t.Errorf("downstream-proto: HTTP/2 %v LB %q type %q, want false, LEAST_REQUEST (enum 1), STATIC", dp.HTTP2, dp.LBPolicy, dp.DiscoveryType)
	}
	if agg := cdCluster(t, s, "agg"); agg.DiscoveryType != "envoy.clusters.aggregate" || agg.LBPolicy != "envoy.load_balancing_policies.cluster_provided" {
		t.Errorf("agg: %+v", agg)
	}
	cdWantTLS(t, cdCluster(t, s, "alts"), TLSModePlaintext, "")
	camel := cdCluster(t, s, "camel")
	cdWantTLS(t, camel, TLSModeIstioMutual, "")
	cdWantBreaker(t, camel, CircuitBreaker{Priority: "HIGH", MaxRetries: cdU32(7)})
	if camel.ConnectTimeout != 2*time.Second {
		t.Errorf("camel: connect timeout %v", camel.ConnectTimeout)
	}
	if w := cdCluster(t, s, "warming-only"); w.Source != "dynamic" {
		t.Errorf("warming-only: %+v", w)
	}
	if m := cdCluster(t, s, "istio-mutual"); m.VersionInfo != "v7" || m.DiscoveryType != "EDS" {
		t.Errorf("active istio-mutual replaced by its warming update: %+v", m)
	}
}

// Istio 1.2x's virtualInbound, PERMISSIVE: a TLS and a plaintext chain per port, plus the
// blackhole chain for traffic sent to 15006 itself.
func cdVirtualInbound(permissive bool) string {
	hcm := func(port string) string {
		return `{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
		  "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		  "stat_prefix": "inbound_0.0.0.0_` + port + `", "stream_idle_timeout": "3600s",
		  "http_filters": [{"name": "istio.metadata_exchange", "typed_config": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": "type.googleapis.com/io.istio.http.peer_metadata.Config", "value": {"upstream_discovery": [{"istio_headers": {}}]}}},
		                   {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
		  "route_config": {"name": "inbound|` + port + `||", "virtual_hosts": [{"name": "inbound|http|` + port + `", "domains": ["*"], "routes": [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "inbound|` + port + `||", "timeout": "0s"}, "decorator": {"operation": "reviews:` + port + `/*"}}]}]}}}`
	}
	tls := `"transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
	  "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "default"}], "combined_validation_context": {"default_validation_context": {}, "validation_context_sds_secret_config": {"name": "ROOTCA"}}},
	  "require_client_certificate": true}}`
	chains := []string{
		`{"name": "virtualInbound-blackhole", "filter_chain_match": {"destination_port": 15006}, "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}]}`,
		`{"name": "0.0.0.0_9080", "filter_chain_match": {"destination_port": 9080, "transport_protocol": "tls"}, ` + tls + `, "filters": [` + hcm("9080") + `]}`,
	}
	if permissive {
		chains = append(chains, `{"name": "0.0.0.0_9080", "filter_chain_match": {"destination_port": 9080, "transport_protocol": "raw_buffer"}, "filters": [`+hcm("9080")+`]}`)
	}
	return `{"name": "virtualInbound", "active_state": {"version_info": "2024-01-01T00:00:00Z/9", "listener": {
	  "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "virtualInbound",
	  "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
	  "filter_chains": [` + strings.Join(chains, ",") + `],
	  "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
	  "traffic_direction": "INBOUND"}}}`
}

func TestParseConfigDumpListeners(t *testing.T) {
	for _, tc := range []struct {
		permissive bool
		want       string
	}{{true, "PERMISSIVE"}, {false, "STRICT"}} {
		s := cdParse(t, cdDump(cdSection("ListenersConfigDump", `"dynamic_listeners": [`+cdVirtualInbound(tc.permissive)+`]`)))
		if len(s.Warnings) > 0 {
			t.Fatalf("warnings: %q", s.Warnings)
		}
		l := cdListener(t, s, "virtualInbound")
		if !l.Inbound || l.MTLSMode != tc.want || l.Address != "0.0.0.0:15006" || l.Direction != "INBOUND" {
			t.Errorf("virtualInbound (permissive %v): %+v", tc.permissive, l)
		}
		fc := l.FilterChains[1]
		want := FilterChain{Name: "0.0.0.0_9080", DestinationPort: 9080, TransportProtocol: "tls", TLS: true, RequireClientCertificate: true,
			Filters: []string{"envoy.filters.network.http_connection_manager"}, RouteConfigName: "inbound|9080||", StreamIdleTimeout: time.Hour, StatPrefix: "inbound_0.0.0.0_9080"}
		if fc.Name != want.Name || fc.DestinationPort != want.DestinationPort || fc.TransportProtocol != want.TransportProtocol || fc.TLS != want.TLS ||
			fc.RequireClientCertificate != want.RequireClientCertificate || !slices.Equal(fc.Filters, want.Filters) || fc.RouteConfigName != want.RouteConfigName ||
			fc.StreamIdleTimeout != want.StreamIdleTimeout || fc.StatPrefix != want.StatPrefix {
			t.Errorf("chain %+v, want %+v", fc, want)
		}
		// No RoutesConfigDump: the inline route configs are the routes.
		if len(s.Routes) == 0 || s.Routes[0].RouteConfigName != "inbound|9080||" || s.Routes[0].Clusters[0].Name != "inbound|9080||" {
			t.Errorf("routes %+v", s.Routes)
		}
	}
}

func TestParseConfigDumpRoutes(t *testing.T) {
	rc := `{"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "9080", "validate_clusters": false, "virtual_hosts": [{
	  "name": "reviews.default.svc.cluster.local:9080", "domains": ["reviews.default.svc.cluster.local", "reviews"],
	  "retry_policy": {"retry_on": "5xx", "num_retries": 4, "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}]},
	  "routes": [
	    {"name": "canary", "match": {"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
	     "route": {"weighted_clusters": {"clusters": [{"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 90}, {"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "weight": 10, "typed_per_filter_config": {"istio.stats": {"@type": "type.googleapis.com/udpa.type.v1.TypedStruct"}}}]},
	               "timeout": "15s", "retry_policy": {"retry_on": "connect-failure,refused-stream", "per_try_timeout": "2s", "retriable_status_codes": [503, 504]}},
	     "typed_per_filter_config": {"envoy.filters.http.fault": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", "abort": {"http_status": 503, "percentage": {"numerator": 10}}}}},
	    {"match": {"path": "/old"}, "redirect": {"path_redirect": "/new"}},
	    {"match": {"safe_regex": {"regex": "^/health.*"}}, "direct_response": {"status": 503, "body": {"inline_string": "down"}}},
	    {"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "outbound|9080||reviews.default.svc.cluster.local"}}
	  ]}]}`
	s := cdParse(t, cdDump(cdSection("RoutesConfigDump", `"dynamic_route_configs": [{"version_info": "x", "route_config": `+rc+`}]`)))
	if len(s.Warnings) > 0 || len(s.Routes) != 4 {
		t.Fatalf("%d routes, warnings %q", len(s.Routes), s.Warnings)
	}
	canary := s.Routes[0]
	wantClusters := []WeightedCluster{{"outbound|9080|v1|reviews.default.svc.cluster.local", 90}, {"outbound|9080|v2|reviews.default.svc.cluster.local", 10}}
	if canary.RouteConfigName != "9080" || canary.VirtualHost != "reviews.default.svc.cluster.local:9080" || canary.Name != "canary" ||
		canary.Match != "prefix / (headers end-user)" || !slices.Equal(canary.Clusters, wantClusters) || canary.Timeout == nil || *canary.Timeout != 15*time.Second {
		t.Errorf("canary route: %+v", canary)
	}
	if r := canary.Retry; r == nil || r.RetryOn != "connect-failure,refused-stream" || r.NumRetries != 1 || r.PerTryTimeout != 2*time.Second || !slices.Equal(r.RetriableStatusCodes, []uint32{503, 504}) {
		t.Errorf("canary retry %+v: want the route's own policy, 1 retry when num_retries is unset", r)
	}
	if r := s.Routes[1]; r.Match != "path /old" || r.DirectResponse != 301 || len(r.Clusters) != 0 {
		t.Errorf("redirect route: %+v", r)
	}
	if r := s.Routes[2]; r.Match != "regex ^/health.*" || r.DirectResponse != 503 {
		t.Errorf("direct response route: %+v", r)
	}
	if r := s.Routes[3]; r.Timeout != nil || r.Retry == nil || r.Retry.RetryOn != "5xx" || r.Retry.NumRetries != 4 || r.Clusters[0].Weight != 100 {
		t.Errorf("default route %+v: want no timeout and the virtual host's retry policy", r)
	}
}

func TestParseConfigDumpBootstrap(t *testing.T) {
	boot := cdSection("BootstrapConfigDump", `"bootstrap": {
	  "node": {"id": "sidecar~10.1.2.3~reviews-v1-5b9c7d8-abcde.bookinfo~bookinfo.svc.cluster.local", "cluster": "reviews.bookinfo",
	    "metadata": {"ISTIO_VERSION": "1.22.3", "NAME": "reviews-v1-5b9c7d8-abcde", "NAMESPACE": "bookinfo", "INSTANCE_IPS": "10.1.2.3",
	      "PROXY_CONFIG": {"concurrency": 2, "proxyStatsMatcher": {"inclusionRegexps": [".*outlier_detection.*"]}},
	      "ANNOTATIONS": {"proxy.istio.io/config": "concurrency: 2"}},
	    "user_agent_name": "envoy", "user_agent_build_version": {"version": {"major_number": 1, "minor_number": 30, "patch": 4}, "metadata": {"build.label": "dev"}},
	    "extensions": [{"name": "envoy.filters.http.router", "category": "envoy.filters.http"}]},
	  "stats_config": {"stats_tags": [{"tag_name": "cluster_name", "regex": "^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)"}],
	    "stats_matcher": {"inclusion_list": {"patterns": [{"prefix": "reporter="}, {"suffix": "upstream_rq_timeout"}, {"exact": "server.live"},
	      {"safe_regex": {"google_re2": {}, "regex": ".*outlier_detection.*"}}, {"contains": "circuit_breakers"}, {"regex": "v2-style"}]}}}}`)
	s := cdParse(t, cdDump(boot))
	want := ProxyInfo{NodeID: "sidecar~10.1.2.3~reviews-v1-5b9c7d8-abcde.bookinfo~bookinfo.svc.cluster.local", Cluster: "reviews.bookinfo",
		IstioVersion: "1.22.3", EnvoyVersion: "1.30.4-dev", PodName: "reviews-v1-5b9c7d8-abcde", Namespace: "bookinfo",
		ProxyConfig: `{"concurrency":2,"proxyStatsMatcher":{"inclusionRegexps":[".*outlier_detection.*"]}}`}
	if s.Proxy != want {
		t.Errorf("proxy %+v, want %+v", s.Proxy, want)
	}
	wantStats := []string{"prefix:reporter=", "suffix:upstream_rq_timeout", "exact:server.live", "regex:.*outlier_detection.*", "contains:circuit_breakers", "regex:v2-style"}
	if !s.StatsMatcherSet || !slices.Equal(s.StatsInclusions, wantStats) || len(s.Warnings) > 0 {
		t.Errorf("stats matcher %v %q (warnings %q), want %q", s.StatsMatcherSet, s.StatsInclusions, s.Warnings, wantStats)
	}

	// Without metadata, the pod comes from the node id; reject_all sets the matcher with no
	// inclusions.
	s = cdParse(t, cdDump(cdSection("BootstrapConfigDump", `"bootstrap": {"node": {"id": "router~10.0.0.9~gw-7f9.dotted.name.istio-system~istio-system.svc.cluster.local"}, "stats_config": {"stats_matcher": {"reject_all": true}}}`)))
	if s.Proxy.PodName != "gw-7f9.dotted.name" || s.Proxy.Namespace != "istio-system" || !s.StatsMatcherSet || len(s.StatsInclusions) != 0 {
		t.Errorf("proxy %+v, stats matcher %v %q", s.Proxy, s.StatsMatcherSet, s.StatsInclusions)
	}
}
