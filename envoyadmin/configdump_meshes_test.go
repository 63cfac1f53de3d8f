package envoyadmin

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Checks of the captures other than Istio's sidecar dumps (see TestParseConfigDumpCaptures).

// cdCheckIstioEndpointsDump: an EndpointsConfigDump alone (no bootstrap), 37 ClusterLoadAssignments.
func cdCheckIstioEndpointsDump(t *testing.T, s *ConfigSummary) {
	if len(s.Endpoints) != 37 || len(s.Clusters) != 0 || s.Proxy != (ProxyInfo{}) {
		t.Fatalf("%d cluster load assignments, %d clusters, proxy %+v; want 37, 0, empty", len(s.Endpoints), len(s.Clusters), s.Proxy)
	}
	var total, istio int
	var empty []string
	for _, ce := range s.Endpoints {
		if len(ce.Endpoints) == 0 {
			empty = append(empty, ce.Cluster)
		}
		for _, e := range ce.Endpoints {
			total++
			if e.HealthStatus != "HEALTHY" {
				t.Errorf("%s %s: health %q, want HEALTHY", ce.Cluster, e.Address, e.HealthStatus)
			}
			if e.TLSMode == "istio" {
				istio++
			}
		}
	}
	wantEmpty := []string{"zipkin", "BlackHoleCluster", "inbound|9080||", "PassthroughCluster", "InboundPassthroughClusterIpv4"}
	if total != 36 || istio != 8 || !slices.Equal(empty, wantEmpty) {
		t.Errorf("%d endpoints, %d with tlsMode istio, empty %q; want 36, 8, %q", total, istio, empty, wantEmpty)
	}
	for _, ce := range s.Endpoints {
		if ce.Cluster == "outbound|9080||reviews.default.svc.cluster.local" {
			want := []Endpoint{
				{Address: "10.244.0.192:9080", HealthStatus: "HEALTHY", Weight: 1, TLSMode: "istio"},
				{Address: "10.244.0.193:9080", HealthStatus: "HEALTHY", Weight: 1, TLSMode: "istio"},
				{Address: "10.244.0.195:9080", HealthStatus: "HEALTHY", Weight: 1, TLSMode: "istio"},
			}
			if !slices.Equal(ce.Endpoints, want) {
				t.Errorf("reviews endpoints %+v, want %+v", ce.Endpoints, want)
			}
		}
		if ce.Cluster == "sds-grpc" && (len(ce.Endpoints) != 1 || ce.Endpoints[0].Address != "unix:./var/run/secrets/workload-spiffe-uds/socket") {
			t.Errorf("sds-grpc endpoints %+v", ce.Endpoints)
		}
	}
}

// cdCheckOSMDump: Open Service Mesh; mTLS with OSM's own SDS certificates, so MUTUAL, not
// ISTIO_MUTUAL.
func cdCheckOSMDump(t *testing.T, s *ConfigSummary) {
	if s.Proxy.EnvoyVersion != "1.19.3-dev" || s.Proxy.NodeID != "dff12f8b-e789-4bba-ab1a-f99808ac0667.sidecar.httpbin.httpbin.cluster.local" || s.Proxy.IstioVersion != "" {
		t.Errorf("proxy %+v", s.Proxy)
	}
	if len(s.Clusters) != 3 {
		t.Fatalf("%d clusters, want 3", len(s.Clusters))
	}
	ctl := cdCluster(t, s, "osm-controller")
	cdWantTLS(t, ctl, TLSModeMutual, "")
	if !ctl.HTTP2 || ctl.DiscoveryType != "LOGICAL_DNS" {
		t.Errorf("osm-controller: %+v", ctl)
	}
	hb := cdCluster(t, s, "httpbin/httpbin|14001")
	cdWantTLS(t, hb, TLSModeMutual, "httpbin.httpbin.svc.cluster.local")
	max := cdU32(4294967295)
	cdWantBreaker(t, hb, CircuitBreaker{Priority: "DEFAULT", MaxConnections: max, MaxPendingRequests: max, MaxRequests: max, MaxRetries: max})
	if hb.HTTP2 || hb.Outlier != nil {
		t.Errorf("httpbin/httpbin|14001: HTTP/2 %v (use_downstream_protocol_config), outlier %+v", hb.HTTP2, hb.Outlier)
	}
	cdWantTLS(t, cdCluster(t, s, "httpbin/httpbin|14001|local"), TLSModePlaintext, "")
	in := cdListener(t, s, "inbound-listener")
	if !in.Inbound || in.MTLSMode != "STRICT" || in.Address != "0.0.0.0:15003" {
		t.Errorf("inbound-listener: %+v", in)
	}
	if fc := in.FilterChains[0]; fc.DestinationPort != 14001 || fc.TransportProtocol != "tls" || fc.RouteConfigName != "rds-inbound.14001" ||
		fc.StatPrefix != "mesh-http-conn-manager.rds-inbound.14001" {
		t.Errorf("inbound chain: %+v", fc)
	}
	if out := cdListener(t, s, "outbound-listener"); out.Inbound || out.Direction != "OUTBOUND" {
		t.Errorf("outbound-listener: %+v", out)
	}
	if len(s.Routes) != 2 {
		t.Fatalf("%d routes, want 2", len(s.Routes))
	}
	r := s.Routes[1]
	if r.RouteConfigName != "rds-inbound.14001" || r.Match != "regex .* (headers :method)" || r.Timeout == nil || *r.Timeout != 0 ||
		len(r.Clusters) != 1 || r.Clusters[0].Name != "httpbin/httpbin|14001|local" || len(r.Domains) != 10 {
		t.Errorf("inbound route: %+v", r)
	}
	if !cdHasSecret(s, "service-cert:httpbin/httpbin") || !cdHasSecret(s, "root-cert-for-mtls-inbound") {
		t.Errorf("secrets %+v", s.Secrets)
	}
}

// cdCheckKumaDump: Kuma, with v2 static clusters and outlier detection that only sets the
// enforcing percentages (all 0).
func cdCheckKumaDump(t *testing.T, s *ConfigSummary) {
	if s.Proxy.EnvoyVersion != "1.19.0" || s.Proxy.NodeID != "default.backend-1" || s.Proxy.Cluster != "backend" {
		t.Errorf("proxy %+v", s.Proxy)
	}
	if len(s.Clusters) != 5 || len(s.Routes) != 0 {
		t.Fatalf("%d clusters and %d routes, want 5 and 0", len(s.Clusters), len(s.Routes))
	}
	gw := cdCluster(t, s, "gateway")
	cdWantBreaker(t, gw, CircuitBreaker{Priority: "DEFAULT", MaxConnections: cdU32(1024), MaxPendingRequests: cdU32(1024), MaxRequests: cdU32(1024), MaxRetries: cdU32(3)})
	if gw.Outlier == nil || *gw.Outlier != (OutlierDetection{}) {
		t.Errorf("gateway outlier detection %+v, want present with every value left to Envoy", gw.Outlier)
	}
	if gw.ConnectTimeout != 5*time.Second || !gw.HTTP2 || gw.DiscoveryType != "EDS" {
		t.Errorf("gateway: %+v", gw)
	}
	cdWantTLS(t, gw, TLSModePlaintext, "")
	// A v2 envoy.api.v2.Cluster with a v3 UpstreamTlsContext that validates the server only.
	ads := cdCluster(t, s, "ads_cluster")
	cdWantTLS(t, ads, TLSModeSimple, "localhost")
	if ads.Source != "static" || !ads.HTTP2 || ads.DiscoveryType != "STRICT_DNS" {
		t.Errorf("ads_cluster: %+v", ads)
	}
	in := cdListener(t, s, "inbound:127.0.0.1:10010")
	if !in.Inbound || in.MTLSMode != "DISABLE" || in.FilterChains[0].StatPrefix != "localhost_10011" {
		t.Errorf("inbound listener: %+v", in)
	}
	if out := cdListener(t, s, "outbound:127.0.0.1:10006"); out.Inbound || out.MTLSMode != "" {
		t.Errorf("outbound listener: %+v", out)
	}
	if !cdHasSecret(s, "cp_validation_ctx") {
		t.Errorf("secrets %+v", s.Secrets)
	}
}

// cdCheckConsulDump: Consul Connect, mTLS with inline certificates and SPIFFE SANs.
func cdCheckConsulDump(t *testing.T, s *ConfigSummary) {
	if s.Proxy.EnvoyVersion != "1.22.0" || s.Proxy.Cluster != "backend" {
		t.Errorf("proxy %+v", s.Proxy)
	}
	if len(s.Clusters) != 5 || len(s.Endpoints) != 5 || len(s.Listeners) != 2 {
		t.Fatalf("%d clusters, %d endpoints, %d listeners; want 5, 5, 2", len(s.Clusters), len(s.Endpoints), len(s.Listeners))
	}
	const trust = "bc3815c2-1a0f-f3ff-a2e9-20d791f08d00.consul"
	for _, svc := range []string{"client", "frontend"} {
		name := svc + ".default.dc1.internal." + trust
		c := cdCluster(t, s, name)
		cdWantTLS(t, c, TLSModeMutual, name, "spiffe://"+trust+"/ns/default/dc/dc1/svc/"+svc)
		// Both present but empty: Envoy's defaults apply.
		if len(c.CircuitBreakers) != 0 || c.Outlier == nil || *c.Outlier != (OutlierDetection{}) || c.ConnectTimeout != 5*time.Second {
			t.Errorf("%s: breakers %+v outlier %+v timeout %v", svc, c.CircuitBreakers, c.Outlier, c.ConnectTimeout)
		}
	}
	cdWantTLS(t, cdCluster(t, s, "local_agent"), TLSModeSimple, "")
	if od := cdCluster(t, s, "original-destination"); od.DiscoveryType != "ORIGINAL_DST" || od.LBPolicy != "CLUSTER_PROVIDED" {
		t.Errorf("original-destination: %+v", od)
	}
	pub := cdListener(t, s, "public_listener:192.168.69.179:20000")
	if !pub.Inbound || pub.MTLSMode != "STRICT" || pub.FilterChains[0].RouteConfigName != "public_listener" {
		t.Errorf("public listener: %+v", pub)
	}
	out := cdListener(t, s, "outbound_listener:127.0.0.1:15001")
	if out.Inbound || len(out.FilterChains) != 3 || out.FilterChains[2].StatPrefix != "upstream.original-destination" {
		t.Errorf("outbound listener: %+v", out)
	}
	if len(s.Routes) != 1 || s.Routes[0].Clusters[0].Name != "local_app" {
		t.Errorf("routes %+v", s.Routes)
	}
	var eps int
	for _, ce := range s.Endpoints {
		eps += len(ce.Endpoints)
	}
	if eps != 6 {
		t.Errorf("%d endpoints, want 6", eps)
	}
}

// cdCheckIstioSecretsDump: a dump with only a SecretsConfigDump.
func cdCheckIstioSecretsDump(t *testing.T, s *ConfigSummary) {
	if len(s.Clusters)+len(s.Listeners)+len(s.Routes)+len(s.Endpoints) != 0 {
		t.Errorf("resources in a secrets-only dump: %+v", s)
	}
	if !cdHasSecret(s, "default") || !cdHasSecret(s, "ROOTCA") {
		t.Errorf("secrets %+v, want default and ROOTCA", s.Secrets)
	}
	for _, c := range s.Secrets {
		if c.CA != (c.Secret == "ROOTCA") || !strings.Contains(c.Subject+strings.Join(c.SubjectAltNames, ","), "cluster.local") && c.Subject != "" {
			t.Errorf("secret %+v", c)
		}
	}
}
