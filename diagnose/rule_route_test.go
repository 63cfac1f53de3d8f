package diagnose

import (
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/captures"
)

func nrLines(n int, authority, path, details string) []envoyadmin.AccessLogEntry {
	out := logLines(n, 404, "NR", details, "-", 0)
	for i := range out {
		out[i].Authority, out[i].Path, out[i].UpstreamHost = authority, path, "-"
	}
	return out
}

func TestNoRouteRule(t *testing.T) {
	knownHost := upHealthy()
	knownHost.AccessLog = append(knownHost.AccessLog, nrLines(3, "reviews:9080", "/admin", "route_not_found")...)

	unknownHost := upHealthy()
	unknownHost.AccessLog = append(unknownHost.AccessLog, nrLines(2, "unknown.example.com", "/", "route_not_found")...)

	noConfig := &Snapshot{AccessLog: nrLines(1, "reviews:9080", "/", "route_not_found")}

	noRouteStats := upHealthyInterval()
	setGlobal(noRouteStats, "http_outbound_0_0_0_0_9080_no_route", 0, 12)

	noChain := upHealthy()
	noChain.AccessLog = append(noChain.AccessLog, nrLines(3, "-", "", "filter_chain_not_found")...)

	noChainStrict := upHealthy()
	noChainStrict.Config.Listeners[0].MTLSMode = "STRICT"
	noChainStrict.AccessLog = append(noChainStrict.AccessLog, nrLines(3, "-", "", "filter_chain_not_found")...)

	blackHole := upHealthy()
	bh := logLines(3, 502, "-", "direct_response", "-", 0)
	for i := range bh {
		bh[i].Authority, bh[i].RouteName, bh[i].UpstreamHost = "api.stripe.com", "block_all", "-"
	}
	blackHole.AccessLog = append(blackHole.AccessLog, bh...)

	blackHoleTCP := upHealthyInterval()
	setCounter(blackHoleTCP, "BlackHoleCluster", "upstream_cx_none_healthy", 0, 4)

	subsetNC := upHealthy()
	subsetNC.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: upReviews, Weight: 50}, {Name: reviewsV3, Weight: 50}}

	// The same route, with the no_cluster counter of the listener that serves route config 9080
	// growing: requests fail, and the counter is the finding's evidence, not one of its own.
	subsetNCCounted := upHealthyInterval()
	subsetNCCounted.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: upReviews, Weight: 50}, {Name: reviewsV3, Weight: 50}}
	subsetNCCounted.Config.Listeners = append(subsetNCCounted.Config.Listeners, envoyadmin.ListenerConfig{Name: "0.0.0.0_9080", Address: "0.0.0.0:9080",
		FilterChains: []envoyadmin.FilterChain{{RouteConfigName: "9080", StatPrefix: "outbound_0.0.0.0_9080"}}})
	setGlobal(subsetNCCounted, "http_outbound_0_0_0_0_9080_no_cluster", 3, 6)

	// A no_cluster counter that grew on a listener the dump does not tie to the route.
	subsetNCUntied := upHealthyInterval()
	subsetNCUntied.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: upReviews, Weight: 50}, {Name: reviewsV3, Weight: 50}}
	setGlobal(subsetNCUntied, "http_outbound_0_0_0_0_9080_no_cluster", 3, 6)

	// The dump's EDS section has endpoints for the cluster its cluster section lacks: the dump is
	// partial, the proxy has the cluster.
	partialDump := upHealthy()
	partialDump.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: reviewsV3, Weight: 100}}
	partialDump.Config.Endpoints = append(partialDump.Config.Endpoints, envoyadmin.ClusterEndpoints{Cluster: reviewsV3, Endpoints: []envoyadmin.Endpoint{{Address: "10.1.0.14:9080", TLSMode: "istio"}}})

	// NC lines name no cluster; their route name ties them to the missing subset cluster.
	subsetNCLogged := upHealthy()
	subsetNCLogged.Config.Routes[0].Name = "reviews-v3-canary"
	subsetNCLogged.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: reviewsV3, Weight: 100}}
	nc := logLines(4, 503, "NC", "cluster_not_found", "-", 0)
	for i := range nc {
		nc[i].RouteName = "reviews-v3-canary"
	}
	subsetNCLogged.AccessLog = append(subsetNCLogged.AccessLog, nc...)

	ncLines := &Snapshot{AccessLog: logLines(2, 503, "NC", "cluster_not_found", "-", 0)}

	noClusterStats := upHealthyInterval()
	setGlobal(noClusterStats, "http_outbound_0_0_0_0_9080_no_cluster", 3, 6)

	runUpCases(t, NoRouteRule{}, []upCase{
		{name: "known host, no route matches the path", snap: knownHost, want: []upWant{{
			code: CodeNoRoute, subject: "reviews:9080", severity: SeverityError,
			values:  map[string]float64{"NR / route_not_found": 3, "virtual hosts whose domains match": 1},
			texts:   map[string]string{"paths": "/admin"},
			explain: []string{"match conditions and no default route"},
			fix:     []string{"kind: VirtualService", "host: reviews.default.svc.cluster.local", "istioctl proxy-config routes -n default productpage-v1-abc"},
		}}},
		{name: "host no virtual host lists", snap: unknownHost, want: []upWant{{
			code: CodeNoRoute, subject: "unknown.example.com", severity: SeverityWarning,
			values:  map[string]float64{"virtual hosts whose domains match": 0},
			explain: []string{"No virtual host of this proxy lists unknown.example.com"},
		}}},
		{name: "NR line without a config dump", snap: noConfig, want: []upWant{{
			code: CodeNoRoute, subject: "reviews:9080",
			explain: []string{"The config dump would tell which"},
		}}},
		{name: "no_route counter without log lines", snap: noRouteStats, want: []upWant{{
			code: CodeNoRoute, subject: "http.outbound_0_0_0_0_9080", severity: SeverityError,
			values: map[string]float64{"no_route": 0.4},
		}}},
		{name: "no filter chain, not STRICT", snap: noChain, want: []upWant{{
			code: CodeNoRoute, subject: "inbound filter chains",
			values:  map[string]float64{"filter_chain_not_found": 3},
			explain: []string{"not plaintext refused by STRICT"},
		}}},
		{name: "no filter chain under STRICT is the MTLSRule's", snap: noChainStrict},
		{name: "calls dropped by REGISTRY_ONLY", snap: blackHole, want: []upWant{{
			code: CodeNoRoute, subject: "BlackHoleCluster", severity: SeverityWarning,
			values:  map[string]float64{"BlackHoleCluster or the block_all route": 3},
			texts:   map[string]string{"hosts called": "api.stripe.com"},
			explain: []string{"REGISTRY_ONLY"},
			fix:     []string{"kind: ServiceEntry", "- api.stripe.com", "namespace: default"},
		}}},
		{name: "TCP connections to BlackHoleCluster", snap: blackHoleTCP, want: []upWant{{
			code: CodeNoRoute, subject: "BlackHoleCluster", severity: SeverityWarning,
			values: map[string]float64{"upstream_cx_none_healthy": round(4.0/30, 3)},
			fix:    []string{"<external host the application calls>"},
		}}},
		{name: "route to a subset no DestinationRule defines, no failed request: a warning", snap: subsetNC, want: []upWant{{
			// Config alone: the dump may be partial, or nothing takes the route yet.
			code: CodeNoCluster, subject: reviewsV3, severity: SeverityWarning,
			texts:   map[string]string{"route naming it": "9080 reviews.default.svc.cluster.local:9080/default (prefix /)"},
			values:  map[string]float64{"clusters the proxy has": 5, "access-log lines with NC": 0},
			explain: []string{`subset "v3"`, "no DestinationRule defines that subset", "no failed request was seen: the access log has no NC line for it and no no_cluster counter grew", "partial"},
			fix:     []string{"subsets:\n  - name: v3\n    labels:\n      version: v3", "host: reviews.default.svc.cluster.local", "istioctl proxy-config clusters -n default productpage-v1-abc | grep -F -- 'outbound|9080|v3|reviews.default.svc.cluster.local'"},
		}}},
		{name: "route to a missing subset while its listener's no_cluster counter grows", snap: subsetNCCounted, want: []upWant{{
			code: CodeNoCluster, subject: reviewsV3, severity: SeverityError,
			values:  map[string]float64{"no_cluster": 0.2},
			explain: []string{"Requests routed there fail with 503 NC."},
		}}},
		{name: "no_cluster grew on a listener not tied to the route", snap: subsetNCUntied, want: []upWant{
			{code: CodeNoCluster, subject: reviewsV3, severity: SeverityWarning, explain: []string{"none could be tied to these routes", "http.outbound_0_0_0_0_9080"}},
			{code: CodeNoCluster, subject: "http.outbound_0_0_0_0_9080", severity: SeverityError, values: map[string]float64{"no_cluster": 0.2}, explain: []string{reviewsV3}},
		}},
		{name: "partial dump: EDS shows the cluster exists", snap: partialDump},
		{name: "waypoint like istioctl's 1.21 dump: its encap and inbound-vip routes", snap: waypointDump()},
		{name: "waypoint whose requests fail with NC on encap", snap: waypointNC(), want: []upWant{{
			code: CodeNoCluster, subject: "encap", severity: SeverityError,
			values: map[string]float64{"access-log lines with NC": 3},
		}}},
		{name: "real capture: istioctl's Istio 1.21 waypoint dump", snap: realWaypointDump(t)},
		{name: "NC lines tied to the missing subset by route name", snap: subsetNCLogged, want: []upWant{{
			code: CodeNoCluster, subject: reviewsV3, severity: SeverityError,
			values: map[string]float64{"access-log lines with NC": 4},
			texts:  map[string]string{"route naming it": "reviews-v3-canary"},
		}}},
		{name: "NC lines only", snap: ncLines, want: []upWant{{
			code: CodeNoCluster, subject: "(unnamed, Host reviews:9080)", severity: SeverityWarning,
			values: map[string]float64{"access-log lines with NC": 2},
		}}},
		{name: "no_cluster counter", snap: noClusterStats, want: []upWant{{
			code: CodeNoCluster, subject: "http.outbound_0_0_0_0_9080",
			values: map[string]float64{"no_cluster": 0.2},
		}}},
	})
}

// waypointDump mirrors istioctl's Istio 1.21 test dump (config_dump/istio-1.21-sidecar-full-with-
// eds-sds.json): a waypoint whose cluster section holds agent, prometheus_stats and the
// inbound-vip cluster of port 8000, while its routes also name encap and the inbound-vip cluster
// of port 8100 (which has EDS endpoints through connect_originate).
func waypointDump() *Snapshot {
	vip := func(port string) string { return "inbound-vip|" + port + "|http|httpbin.default.svc.cluster.local" }
	route := func(cfg, vh, cluster string) envoyadmin.RouteConfig {
		return envoyadmin.RouteConfig{RouteConfigName: cfg, VirtualHost: vh, Domains: []string{"*"}, Name: "default", Match: "prefix /", Clusters: []envoyadmin.WeightedCluster{{Name: cluster, Weight: 100}}, Timeout: dur(0)}
	}
	return &Snapshot{Config: &envoyadmin.ConfigSummary{
		Proxy: envoyadmin.ProxyInfo{NodeID: "waypoint~192.168.252.229~httpbin-istio-waypoint-58f646c5ff-dbfkz.default~default.svc.cluster.local", PodName: "httpbin-istio-waypoint-58f646c5ff-dbfkz", Namespace: "default"},
		Clusters: []envoyadmin.ClusterConfig{
			{Name: envoyadmin.ParseClusterName("agent"), Source: "static"},
			{Name: envoyadmin.ParseClusterName("prometheus_stats"), Source: "static"},
			{Name: envoyadmin.ParseClusterName(vip("8000")), Source: "dynamic", DiscoveryType: "EDS"},
		},
		Routes: []envoyadmin.RouteConfig{
			route(vip("8000"), "inbound|http|8000", vip("8000")),
			route("", "backend", "agent"),
			route(vip("8100"), "inbound|http|8100", vip("8100")),
			route("encap", "inbound|http|0", "encap"),
		},
		Listeners: []envoyadmin.ListenerConfig{{Name: "main_internal", Direction: "INBOUND", Inbound: true, MTLSMode: "DISABLE", FilterChains: []envoyadmin.FilterChain{
			{Name: "inbound-vip|8000||httpbin.default.svc.cluster.local-http", DestinationPort: 8000, RouteConfigName: vip("8000"), StatPrefix: "inbound_0.0.0.0_8000"},
			{Name: "inbound-vip|8100||httpbin.default.svc.cluster.local-http", DestinationPort: 8100, RouteConfigName: vip("8100"), StatPrefix: "inbound_0.0.0.0_8100"},
			{Name: "direct-http", RouteConfigName: "encap", StatPrefix: "inbound_0.0.0.0_0"},
		}}},
		Endpoints: []envoyadmin.ClusterEndpoints{
			{Cluster: "prometheus_stats", Endpoints: []envoyadmin.Endpoint{{Address: "127.0.0.1:15000", HealthStatus: "HEALTHY"}}},
			{Cluster: vip("8100"), Endpoints: []envoyadmin.Endpoint{{Address: "envoy://connect_originate/192.168.195.248:800", HealthStatus: "HEALTHY"}}},
		},
	}}
}

// waypointNC is that waypoint with requests failing NC on its encap route.
func waypointNC() *Snapshot {
	s := waypointDump()
	s.AccessLog = logLines(3, 503, "NC", "cluster_not_found", "-", 0)
	for i := range s.AccessLog {
		s.AccessLog[i].RouteName, s.AccessLog[i].Authority = "default", "httpbin:8000"
	}
	return s
}

func realWaypointDump(t *testing.T) *Snapshot {
	cfg, err := envoyadmin.ParseConfigDump(captures.Read(t, "config_dump/istio-1.21-sidecar-full-with-eds-sds.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &Snapshot{Config: cfg}
}
