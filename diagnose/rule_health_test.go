package diagnose

import (
	"testing"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

const reviewsV3 = "outbound|9080|v3|reviews.default.svc.cluster.local"

// envoyExamplesHealthFlags mirrors clusters_text/envoy-examples-locality-lb-health_flags.txt:
// cluster backend, 4 of 7 hosts /failed_active_hc.
func envoyExamplesHealthFlags() *Snapshot {
	var hosts []envoyadmin.UpstreamHost
	for _, h := range []struct {
		addr   string
		failed bool
	}{{"172.28.0.4:8080", true}, {"172.28.0.2:8080", true}, {"172.28.0.5:8080", true}, {"172.28.0.6:8080", true},
		{"172.28.0.7:8080", false}, {"172.28.0.8:8080", false}, {"172.28.0.3:8080", false}} {
		host := envoyadmin.UpstreamHost{Address: h.addr}
		if h.failed {
			host.HealthFlags = []string{"failed_active_hc"}
		}
		hosts = append(hosts, host)
	}
	return &Snapshot{
		UpstreamsFile: FileClustersTxt,
		Upstreams:     &envoyadmin.UpstreamClusters{Clusters: []envoyadmin.UpstreamCluster{{Name: envoyadmin.ParseClusterName("backend"), Hosts: hosts}}},
	}
}

func setHostFlags(s *Snapshot, cluster string, flags map[string][]string) {
	for i := range s.Upstreams.Clusters {
		if s.Upstreams.Clusters[i].Name.Raw != cluster {
			continue
		}
		for j := range s.Upstreams.Clusters[i].Hosts {
			h := &s.Upstreams.Clusters[i].Hosts[j]
			h.HealthFlags = flags[h.Address]
		}
	}
}

func TestNoHealthyUpstreamRule(t *testing.T) {
	subset := upHealthy()
	subset.Config.Clusters = append(subset.Config.Clusters, envoyadmin.ClusterConfig{Name: envoyadmin.ParseClusterName(reviewsV3), DiscoveryType: "EDS"})
	subset.Config.Routes[0].Clusters = []envoyadmin.WeightedCluster{{Name: upReviews, Weight: 50}, {Name: reviewsV3, Weight: 50}}
	subset.Upstreams.Clusters = append(subset.Upstreams.Clusters, envoyadmin.UpstreamCluster{Name: envoyadmin.ParseClusterName(reviewsV3)})

	noEndpoints := upHealthy()
	noEndpoints.Upstreams = nil
	setCounter(noEndpoints, upReviews, "membership_healthy", 0, 0)
	setCounter(noEndpoints, upReviews, "membership_total", 0, 0)
	noEndpoints.AccessLog = append(noEndpoints.AccessLog, logLines(3, 503, "UH", "no_healthy_upstream", upReviews, 0)...)

	allEjected := upHealthyInterval()
	setCounter(allEjected, upReviews, "upstream_cx_none_healthy", 0, 30)
	setCounter(allEjected, upReviews, "outlier_detection_ejections_active", 3, 0)
	setHostFlags(allEjected, upReviews, map[string][]string{
		"10.1.0.11:9080": {"failed_outlier_check"}, "10.1.0.12:9080": {"failed_outlier_check"}, "10.1.0.13:9080": {"failed_outlier_check"},
	})
	allEjected.Config.Clusters[0].Outlier = &envoyadmin.OutlierDetection{Consecutive5xx: u32(5), Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: u32(100)}

	oneEjected := upHealthy()
	setCounter(oneEjected, upReviews, "outlier_detection_ejections_active", 1, 0)
	setHostFlags(oneEjected, upReviews, map[string][]string{"10.1.0.12:9080": {"failed_outlier_check"}})
	oneEjected.Config.Clusters[0].Outlier = &envoyadmin.OutlierDetection{Consecutive5xx: u32(5), BaseEjectionTime: 30 * time.Second}

	pastEjections := upHealthyInterval()
	setCounter(pastEjections, upReviews, "outlier_detection_ejections_enforced_total", 2, 1)

	edsUnhealthy := upHealthy()
	edsUnhealthy.Upstreams, edsUnhealthy.Stats = nil, nil
	edsUnhealthy.Config.Endpoints[0].Endpoints[2].HealthStatus = "UNHEALTHY"

	idleNoHosts := upHealthy()
	ratings := "outbound|9080||ratings.default.svc.cluster.local"
	idleNoHosts.Config.Clusters = append(idleNoHosts.Config.Clusters, envoyadmin.ClusterConfig{Name: envoyadmin.ParseClusterName(ratings), DiscoveryType: "EDS"})
	idleNoHosts.Upstreams.Clusters = append(idleNoHosts.Upstreams.Clusters, envoyadmin.UpstreamCluster{Name: envoyadmin.ParseClusterName(ratings)})

	runUpCases(t, NoHealthyUpstreamRule{}, []upCase{
		{name: "envoy examples capture: 4 of 7 backend hosts fail active health checks", snap: envoyExamplesHealthFlags(), want: []upWant{{
			code: CodeHostsFailingHealth, subject: "backend", severity: SeverityWarning,
			values:  map[string]float64{"hosts now": 7, "healthy hosts now": 3},
			texts:   map[string]string{"failed_active_hc": "172.28.0.4:8080, 172.28.0.2:8080, 172.28.0.5:8080, 172.28.0.6:8080"},
			explain: []string{"active health checks to 4 hosts fail", "panic threshold"},
			fix:     []string{"status.podIP=172.28.0.4"},
		}}},
		{name: "route to a subset with no endpoints", snap: subset, want: []upWant{{
			code: CodeNoHealthyUpstream, subject: reviewsV3, severity: SeverityError,
			values:  map[string]float64{"hosts now": 0},
			texts:   map[string]string{"routes sending traffic": "9080 reviews.default.svc.cluster.local:9080/default"},
			explain: []string{`subset "v3"`, "match no ready pod"},
			fix:     []string{"grep -A4 -F -- 'name: v3'", "kubectl get pods -n default --show-labels | grep -F -- reviews"},
		}}},
		{name: "UH lines and no endpoints", snap: noEndpoints, want: []upWant{{
			code: CodeNoHealthyUpstream, subject: upReviews, severity: SeverityError,
			values:  map[string]float64{"access-log lines with UH": 3, "membership_healthy": 0, "membership_total": 0},
			explain: []string{"has no endpoints"},
			fix:     []string{"kubernetes.io/service-name=reviews"},
		}}},
		{name: "every host ejected", snap: allEjected, want: []upWant{
			{
				code: CodeNoHealthyUpstream, subject: upReviews, severity: SeverityError,
				values:  map[string]float64{"upstream_cx_none_healthy": 1, "healthy hosts now": 0},
				explain: []string{"All 3 hosts", "maxEjectionPercent allowed it to eject all"},
			},
			{
				code: CodeHostsEjected, subject: upReviews, severity: SeverityWarning,
				values:  map[string]float64{"hosts ejected now (outlier": 3, "max ejection percent": 100, "consecutive 5xx": 5, "base ejection time": 30000},
				explain: []string{"3 of 3 hosts are ejected", "No host is left"},
			},
		}},
		{name: "one host ejected, Envoy's 10% limit", snap: oneEjected, want: []upWant{{
			code: CodeHostsEjected, subject: upReviews,
			values:  map[string]float64{"max ejection percent (not set": 10},
			texts:   map[string]string{"hosts ejected now, of 3": "10.1.0.12:9080"},
			explain: []string{"1 of 3 hosts are ejected, the most maxEjectionPercent (10%)"},
			fix:     []string{"status.podIP=10.1.0.12"},
		}}},
		{name: "an ejection over the window, none now", snap: pastEjections, want: []upWant{{
			code: CodeHostsEjected, subject: upReviews, severity: SeverityWarning,
			values: map[string]float64{"ejections_enforced_total": round(1.0/30, 3)},
		}}},
		{name: "EDS reports a host unhealthy", snap: edsUnhealthy, want: []upWant{{
			code: CodeHostsFailingHealth, subject: upReviews,
			values:  map[string]float64{"endpoints": 3, "healthy endpoints": 2},
			explain: []string{"control plane reports 1 host unhealthy"},
		}}},
		{name: "a service with no hosts and no traffic", snap: idleNoHosts},
	})
}

// TestOnlyHostEDSUnhealthyReportedOnce: a cluster whose only host the control plane reports
// unhealthy has no healthy host (MESH0501); the same host is not counted again as MESH0503, and
// the sentence agrees with one host.
func TestOnlyHostEDSUnhealthyReportedOnce(t *testing.T) {
	const policy = "outbound|15014||istio-policy.istio-system.svc.cluster.local"
	s := &Snapshot{UpstreamsFile: FileClustersJS, Upstreams: &envoyadmin.UpstreamClusters{Clusters: []envoyadmin.UpstreamCluster{{
		Name:  envoyadmin.ParseClusterName(policy),
		Hosts: []envoyadmin.UpstreamHost{{Address: "172.17.0.14:15014", HealthFlags: []string{"failed_eds_health"}}},
	}}}}
	runUpCases(t, NoHealthyUpstreamRule{}, []upCase{{name: "only host failed_eds_health", snap: s, want: []upWant{{
		code: CodeNoHealthyUpstream, subject: policy, severity: SeverityWarning,
		texts:   map[string]string{"failed_eds_health": "172.17.0.14:15014"},
		explain: []string{"The only host of istio-policy.istio-system.svc.cluster.local is unhealthy now", "takes it out of load balancing"},
	}}}})
	// With a healthy host left, the failing one is MESH0503 alone.
	s.Upstreams.Clusters[0].Hosts = append(s.Upstreams.Clusters[0].Hosts, envoyadmin.UpstreamHost{Address: "172.17.0.15:15014"})
	runUpCases(t, NoHealthyUpstreamRule{}, []upCase{{name: "one of two hosts failed_eds_health", snap: s, want: []upWant{{
		code: CodeHostsFailingHealth, subject: policy,
		texts: map[string]string{"failed_eds_health": "172.17.0.14:15014"},
	}}}})
	for n, want := range map[int]string{1: "The only host is", 2: "Both hosts are", 5: "All 5 hosts are"} {
		if got := allHosts(n) + " " + hostsVerb(n); got != want {
			t.Errorf("allHosts(%d) + hostsVerb = %q, want %q", n, got, want)
		}
	}
}
