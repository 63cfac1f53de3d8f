package diagnose

import (
	"testing"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
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
		{name: "route to a subset no DestinationRule defines", snap: subsetNC, want: []upWant{{
			code: CodeNoCluster, subject: reviewsV3, severity: SeverityError,
			texts:   map[string]string{"route naming it": "9080 reviews.default.svc.cluster.local:9080/default (prefix /)"},
			values:  map[string]float64{"clusters the proxy has": 5},
			explain: []string{`subset "v3"`, "no DestinationRule defines that subset"},
			fix:     []string{"subsets:\n  - name: v3\n    labels:\n      version: v3", "host: reviews.default.svc.cluster.local"},
		}}},
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
