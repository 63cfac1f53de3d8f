package envoyadmin

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

// Facts below were read from the captures with jq; see ../shared/captures/SOURCES.md.

// TestParseConfigDumpCaptures parses every real config dump and checks what each is known to
// hold. A capture without a check fails the test, so new captures get one.
func TestParseConfigDumpCaptures(t *testing.T) {
	checks := map[string]func(t *testing.T, s *ConfigSummary){
		"istio-echo-sidecar-2020-v3-mixed.json":     cdCheckIstio2020Dump,
		"istio-1.21-sidecar-full-with-eds-sds.json": cdCheckIstio121Dump,
		"istio-endpoints-config-dump.json":          cdCheckIstioEndpointsDump,
		"osm-envoy-1.19-httpbin-sidecar.json":       cdCheckOSMDump,
		"kuma-envoy-1.19-dataplane.json":            cdCheckKumaDump,
		"consul-k8s-connect-sidecar.json":           cdCheckConsulDump,
		"istio-secrets-config-dump-sds.json":        cdCheckIstioSecretsDump,
	}
	files := append(captures.Files(t, "config_dump"), captures.Path(t, "certs/istio-secrets-config-dump-sds.json"))
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no check for capture %s: add one to TestParseConfigDumpCaptures", name)
			}
			rel, _ := filepath.Rel(captures.Dir(t), path)
			s, err := ParseConfigDump(captures.Read(t, rel))
			if err != nil {
				t.Fatalf("ParseConfigDump: %v", err)
			}
			if len(s.Warnings) > 0 {
				t.Errorf("warnings on a real dump: %q", s.Warnings)
			}
			cdCheckConfigSummaryInvariants(t, s)
			check(t, s)
		})
	}
}

// cdCheckConfigSummaryInvariants holds for every summary.
func cdCheckConfigSummaryInvariants(t *testing.T, s *ConfigSummary) {
	t.Helper()
	modes := []string{TLSModeIstioMutual, TLSModeMutual, TLSModeSimple, TLSModePlaintext, TLSModeAuto}
	for _, c := range s.Clusters {
		if c.Name.Raw == "" || !slices.Contains(modes, c.TLSMode) || (c.Source != "static" && c.Source != "dynamic") || c.DiscoveryType == "" || c.LBPolicy == "" {
			t.Errorf("cluster %+v: missing name, source, discovery type, LB policy or a known TLS mode", c)
		}
	}
	for _, l := range s.Listeners {
		if !l.Inbound && l.MTLSMode != "" {
			t.Errorf("listener %q is not inbound but has mTLS mode %q", l.Name, l.MTLSMode)
		}
		for _, fc := range l.FilterChains {
			if fc.RequireClientCertificate && !fc.TLS {
				t.Errorf("listener %q chain %q requires a client certificate without TLS", l.Name, fc.Name)
			}
		}
	}
	for _, r := range s.Routes {
		if r.Match == "" {
			t.Errorf("route %+v has no match", r)
		}
	}
}

func cdCluster(t *testing.T, s *ConfigSummary, name string) ClusterConfig {
	t.Helper()
	for _, c := range s.Clusters {
		if c.Name.Raw == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return ClusterConfig{}
}

func cdListener(t *testing.T, s *ConfigSummary, name string) ListenerConfig {
	t.Helper()
	for _, l := range s.Listeners {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("no listener %q", name)
	return ListenerConfig{}
}

func cdU32(n uint32) *uint32 { return &n }

func cdEqU32(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func cdWantBreaker(t *testing.T, c ClusterConfig, want ...CircuitBreaker) {
	t.Helper()
	if len(c.CircuitBreakers) != len(want) {
		t.Fatalf("%s: circuit breakers %+v, want %+v", c.Name.Raw, c.CircuitBreakers, want)
	}
	for i, w := range want {
		g := c.CircuitBreakers[i]
		if g.Priority != w.Priority || !cdEqU32(g.MaxConnections, w.MaxConnections) || !cdEqU32(g.MaxPendingRequests, w.MaxPendingRequests) ||
			!cdEqU32(g.MaxRequests, w.MaxRequests) || !cdEqU32(g.MaxRetries, w.MaxRetries) {
			t.Errorf("%s: breaker %d = %+v, want %+v", c.Name.Raw, i, g, w)
		}
	}
}

func cdWantTLS(t *testing.T, c ClusterConfig, mode, sni string, sans ...string) {
	t.Helper()
	if c.TLSMode != mode || c.SNI != sni || !slices.Equal(c.SANs, sans) {
		t.Errorf("%s: TLS %q sni %q sans %q, want %q %q %q", c.Name.Raw, c.TLSMode, c.SNI, c.SANs, mode, sni, sans)
	}
}

// cdCheckIstio2020Dump: v3 admin wrappers around v2 envoy.api.v2.* resources and v2 Struct
// filter configs with tls_context, from Istio's 2020 test data.
func cdCheckIstio2020Dump(t *testing.T, s *ConfigSummary) {
	if len(s.Clusters) != 87 || len(s.Listeners) != 53 {
		t.Fatalf("%d clusters and %d listeners, want 87 and 53", len(s.Clusters), len(s.Listeners))
	}
	p := s.Proxy
	if p.IstioVersion != "1.0-dev" || p.PodName != "a-6bb6dbdcc5-z58cx" || p.Namespace != "apps-1-99281" || p.Cluster != "a.apps-1-99281" ||
		p.NodeID != "sidecar~10.40.3.59~a-6bb6dbdcc5-z58cx.apps-1-99281~apps-1-99281.svc.cluster.local" {
		t.Errorf("proxy %+v", p)
	}
	wantStats := []string{"prefix:cluster_manager", "prefix:listener_manager", "prefix:http_mixer_filter", "prefix:tcp_mixer_filter", "prefix:server", "prefix:cluster.xds-grpc"}
	if !s.StatsMatcherSet || !slices.Equal(s.StatsInclusions, wantStats) {
		t.Errorf("stats matcher %v %q, want %q", s.StatsMatcherSet, s.StatsInclusions, wantStats)
	}
	// SOURCES.md counts 84 circuit_breakers: 83 clusters plus the bootstrap's copy of xds-grpc.
	var breakers, static, eds int
	for _, c := range s.Clusters {
		if len(c.CircuitBreakers) > 0 {
			breakers++
		}
		if c.Source == "static" {
			static++
		}
		if c.DiscoveryType == "EDS" {
			eds++
		}
		if c.TLSMode != TLSModePlaintext {
			t.Errorf("%s: TLS %q, want DISABLE (no cluster of this dump has TLS)", c.Name.Raw, c.TLSMode)
		}
	}
	if breakers != 83 || static != 3 || eds != 68 {
		t.Errorf("%d clusters with circuit breakers, %d static, %d EDS; want 83, 3, 68", breakers, static, eds)
	}
	xds := cdCluster(t, s, "xds-grpc")
	cdWantBreaker(t, xds,
		CircuitBreaker{Priority: "DEFAULT", MaxConnections: cdU32(100000), MaxPendingRequests: cdU32(100000), MaxRequests: cdU32(100000)},
		CircuitBreaker{Priority: "HIGH", MaxConnections: cdU32(100000), MaxPendingRequests: cdU32(100000), MaxRequests: cdU32(100000)})
	if xds.DiscoveryType != "STRICT_DNS" || xds.ConnectTimeout != 10*time.Second || !xds.HTTP2 || xds.Source != "static" {
		t.Errorf("xds-grpc: %+v", xds)
	}
	a80 := cdCluster(t, s, "outbound|80||a.apps-1-99281.svc.cluster.local")
	cdWantBreaker(t, a80, CircuitBreaker{Priority: "DEFAULT", MaxRetries: cdU32(1024)})
	if a80.Name.Direction != "outbound" || a80.Name.Port != 80 || a80.Name.Host != "a.apps-1-99281.svc.cluster.local" ||
		a80.VersionInfo != "2019-04-14T15:36:44Z/18" || a80.Source != "dynamic" || a80.HTTP2 || a80.Outlier != nil {
		t.Errorf("outbound|80||a: %+v", a80)
	}
	policy := cdCluster(t, s, "outbound|15004||istio-policy.istio-system.svc.cluster.local")
	if policy.MaxRequestsPerConnection != 10000 || !policy.HTTP2 {
		t.Errorf("istio-policy 15004: max requests per connection %d, HTTP/2 %v; want 10000, true", policy.MaxRequestsPerConnection, policy.HTTP2)
	}
	if pt := cdCluster(t, s, "PassthroughCluster"); pt.DiscoveryType != "ORIGINAL_DST" || pt.LBPolicy != "CLUSTER_PROVIDED" {
		t.Errorf("PassthroughCluster: %+v", pt)
	}

	// Routes: 9 static (the inbound listeners' inline route configs) and 41 from RDS, each of
	// those with Istio's default retry policy.
	if len(s.Routes) != 50 {
		t.Errorf("%d routes, want 50", len(s.Routes))
	}
	var retries int
	for _, r := range s.Routes {
		if r.Retry == nil {
			continue
		}
		retries++
		want := RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,resource-exhausted,retriable-status-codes", NumRetries: 2, RetriableStatusCodes: []uint32{503}}
		if r.Retry.RetryOn != want.RetryOn || r.Retry.NumRetries != 2 || r.Retry.PerTryTimeout != 0 || !slices.Equal(r.Retry.RetriableStatusCodes, want.RetriableStatusCodes) {
			t.Errorf("route %s/%s retry %+v, want %+v", r.RouteConfigName, r.VirtualHost, *r.Retry, want)
		}
		if r.Timeout == nil || *r.Timeout != 0 {
			t.Errorf("route %s/%s timeout %v, want 0s (disabled)", r.RouteConfigName, r.VirtualHost, r.Timeout)
		}
	}
	if retries != 41 {
		t.Errorf("%d routes with a retry policy, want 41", retries)
	}
	var vh80 int
	for _, r := range s.Routes {
		if r.RouteConfigName == "80" {
			vh80++
			if r.VirtualHost == "a.apps-1-99281.svc.cluster.local:80" && (r.Match != "prefix /" || len(r.Clusters) != 1 ||
				r.Clusters[0] != (WeightedCluster{Name: "outbound|80||a.apps-1-99281.svc.cluster.local", Weight: 100}) || len(r.Domains) != 12) {
				t.Errorf("route 80 for a: %+v", r)
			}
		}
	}
	if vh80 != 9 {
		t.Errorf("route config 80 has %d routes, want 9", vh80)
	}

	// Inbound listeners are on the pod IP (INSTANCE_IPS): a TLS chain that requires a client
	// certificate (v2 tls_context) next to a plaintext one is PERMISSIVE.
	for _, port := range []string{"8080", "80", "9090", "90", "7070", "70"} {
		l := cdListener(t, s, "10.40.3.59_"+port)
		if !l.Inbound || l.MTLSMode != "PERMISSIVE" || len(l.FilterChains) != 2 || !l.FilterChains[0].TLS || !l.FilterChains[0].RequireClientCertificate || l.FilterChains[1].TLS {
			t.Errorf("listener %s: %+v", l.Name, l)
		}
	}
	if l := cdListener(t, s, "10.40.3.59_8080"); l.FilterChains[0].RouteConfigName != "inbound|80|http|a.apps-1-99281.svc.cluster.local" ||
		l.FilterChains[0].StatPrefix != "10.40.3.59_8080" || l.Address != "10.40.3.59:8080" || l.FilterChains[0].Filters[0] != "envoy.http_connection_manager" {
		t.Errorf("listener 10.40.3.59_8080: %+v", l)
	}
	if l := cdListener(t, s, "10.40.3.59_3333"); !l.Inbound || l.MTLSMode != "DISABLE" {
		t.Errorf("listener 10.40.3.59_3333: inbound %v mTLS %q, want true DISABLE", l.Inbound, l.MTLSMode)
	}
	if l := cdListener(t, s, "10.40.3.59_15020"); !l.Inbound || l.MTLSMode != "" {
		t.Errorf("listener 10.40.3.59_15020 (Istio agent port): inbound %v mTLS %q, want true and none", l.Inbound, l.MTLSMode)
	}
	if l := cdListener(t, s, "0.0.0.0_9901"); l.Inbound || l.FilterChains[0].RouteConfigName != "9901" {
		t.Errorf("listener 0.0.0.0_9901: %+v", l)
	}
	if l := cdListener(t, s, "10.43.240.10_53"); l.Inbound || l.FilterChains[0].StatPrefix != "outbound|53||kube-dns.kube-system.svc.cluster.local" {
		t.Errorf("listener 10.43.240.10_53: %+v", l)
	}
}

// cdCheckIstio121Dump: a modern v3 waypoint dump with endpoints and SDS secrets.
func cdCheckIstio121Dump(t *testing.T, s *ConfigSummary) {
	p := s.Proxy
	if p.IstioVersion != "1.21.0-1226" || p.PodName != "httpbin-istio-waypoint-58f646c5ff-dbfkz" || p.Namespace != "default" {
		t.Errorf("proxy %+v", p)
	}
	if len(s.Clusters) != 3 || len(s.Listeners) != 2 || len(s.Endpoints) != 2 || s.StatsMatcherSet {
		t.Fatalf("%d clusters, %d listeners, %d endpoints, stats matcher %v; want 3, 2, 2, false", len(s.Clusters), len(s.Listeners), len(s.Endpoints), s.StatsMatcherSet)
	}
	vip := cdCluster(t, s, "inbound-vip|8000|http|httpbin.default.svc.cluster.local")
	if vip.Name.Direction != "inbound-vip" || vip.DiscoveryType != "EDS" || vip.Source != "dynamic" || vip.VersionInfo != "" {
		t.Errorf("inbound-vip cluster: %+v", vip)
	}
	// internal_upstream wrapping raw_buffer: plaintext.
	cdWantTLS(t, vip, TLSModePlaintext, "")
	if agent := cdCluster(t, s, "agent"); agent.Source != "static" || agent.ConnectTimeout != 250*time.Millisecond || agent.DiscoveryType != "STATIC" {
		t.Errorf("agent cluster: %+v", agent)
	}
	l := cdListener(t, s, "main_internal")
	if !l.Inbound || l.Direction != "INBOUND" || l.MTLSMode != "DISABLE" || len(l.FilterChains) != 4 || l.Address != "" {
		t.Errorf("main_internal: %+v", l)
	}
	if fc := l.FilterChains[0]; fc.StatPrefix != "inbound_0.0.0.0_8000" || fc.RouteConfigName != "inbound-vip|8000|http|httpbin.default.svc.cluster.local" ||
		fc.Name != "inbound-vip|8000||httpbin.default.svc.cluster.local-http" || fc.StreamIdleTimeout != 0 {
		t.Errorf("main_internal chain 0: %+v", fc)
	}
	// The chains have no filter_chain_match: their ports come from the listener's
	// filter_chain_matcher, which selects direct-tcp and direct-http by IP and ALPN only.
	for i, want := range []uint32{8000, 8100, 0, 0} {
		if got := l.FilterChains[i].DestinationPort; got != want {
			t.Errorf("main_internal chain %q: port %d, want %d", l.FilterChains[i].Name, got, want)
		}
	}
	// One route config from RoutesConfigDump, and the three inline ones it does not list.
	if len(s.Routes) != 4 {
		t.Errorf("%d routes, want 4: %+v", len(s.Routes), s.Routes)
	}
	r := s.Routes[0]
	if r.RouteConfigName != "inbound-vip|8000|http|httpbin.default.svc.cluster.local" || r.Name != "default" || r.Timeout == nil || *r.Timeout != 0 || r.Retry != nil {
		t.Errorf("route 0: %+v", r)
	}
	ep := s.Endpoints[1]
	if ep.Cluster != "inbound-vip|8100|http|httpbin.default.svc.cluster.local" || len(ep.Endpoints) != 1 ||
		ep.Endpoints[0] != (Endpoint{Address: "envoy://connect_originate/192.168.195.248:800", HealthStatus: "HEALTHY", Weight: 1}) {
		t.Errorf("endpoints: %+v", ep)
	}
	if !cdHasSecret(s, "default") || !cdHasSecret(s, "ROOTCA") {
		t.Errorf("secrets %+v, want the default and ROOTCA SDS secrets", s.Secrets)
	}
}

func cdHasSecret(s *ConfigSummary, name string) bool {
	return slices.ContainsFunc(s.Secrets, func(c Cert) bool { return c.Secret == name })
}
