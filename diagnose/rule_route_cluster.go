package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds the NoRouteRule's check of routes to clusters the proxy lacks (MESH0702).
//
// A config dump alone is weak evidence of that: dumps are often partial (filtered with
// ?resource=, trimmed by hand, or taken while clusters warm up). istioctl's own Istio 1.21 test
// dump is a waypoint whose routes name "encap" and "inbound-vip|8100|http|httpbin…" while its
// cluster section holds three clusters. So a route naming a cluster the dump lacks is an error
// only when requests failed with NC: access-log lines, or the no_cluster counter of the HTTP
// connection manager that serves the route growing. Without that it is a warning that says no
// failed request was seen. It is not reported at all when the dump itself shows the cluster
// exists (EDS endpoints for it: Envoy dumps the endpoints of the clusters it has), or, in a
// waypoint, when the name is the waypoint's own plumbing ("encap", inbound-vip|...) that Istio
// builds for every waypoint.

// configMissingClusters maps the clusters that routes name and the config dump lacks to the
// routes that name them, leaving out those the dump shows exist after all (EDS endpoints).
func configMissingClusters(s *Snapshot) map[string][]envoyadmin.RouteConfig {
	routes := map[string][]envoyadmin.RouteConfig{}
	if s.Config == nil || len(s.Config.Clusters) == 0 {
		return routes
	}
	have := map[string]bool{}
	for _, c := range s.Config.Clusters {
		have[c.Name.Raw] = true
	}
	for _, ce := range s.Config.Endpoints {
		have[ce.Cluster] = true
	}
	for _, r := range s.Config.Routes {
		for _, wc := range r.Clusters {
			if wc.Name != "" && !have[wc.Name] {
				routes[wc.Name] = append(routes[wc.Name], r)
			}
		}
	}
	return routes
}

// waypointPlumbing reports whether a cluster is part of a waypoint proxy's own plumbing, which
// Istio builds for every waypoint and a dump may leave out: "encap" (the tunnel to its
// connect_originate internal listener) and the inbound-vip|port|name|host clusters of the
// services it serves.
func (s *Snapshot) waypointPlumbing(c string) bool {
	if s.Config == nil || !strings.HasPrefix(s.Config.Proxy.NodeID, "waypoint~") {
		return false
	}
	return c == "encap" || strings.HasPrefix(c, "inbound-vip|")
}

// noClusterCounters names, per route configuration, the no_cluster counters of the HTTP
// connection managers that serve it ("9080" -> "http_outbound_0_0_0_0_9080_no_cluster"), from
// the listeners' filter chains.
func noClusterCounters(s *Snapshot) map[string][]string {
	out := map[string][]string{}
	if s.Config == nil {
		return out
	}
	seen := map[string]bool{}
	for _, l := range s.Config.Listeners {
		for _, fc := range l.FilterChains {
			if fc.RouteConfigName == "" || fc.StatPrefix == "" {
				continue
			}
			key := "http_" + strings.ReplaceAll(fc.StatPrefix, ".", "_") + "_no_cluster"
			if !seen[fc.RouteConfigName+"|"+key] {
				seen[fc.RouteConfigName+"|"+key] = true
				out[fc.RouteConfigName] = append(out[fc.RouteConfigName], key)
			}
		}
	}
	return out
}

// ncCounter is a no_cluster counter tied to a missing cluster through the routes that name it.
type ncCounter struct {
	key string
	m   Measure
}

// missingClusterFindings reports clusters that routes name but the proxy lacks (from the config
// dump) and NC access-log lines, one finding per cluster. tied lists the no_cluster counters the
// findings already hold, and logged says whether any NC line was seen.
func missingClusterFindings(s *Snapshot) (out []Finding, tied map[string]bool, logged bool) {
	routes := configMissingClusters(s)
	logs := map[string][]envoyadmin.AccessLogEntry{}
	for _, e := range s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool {
		return HasFlag(e, "NC") || detailsBase(e) == "cluster_not_found"
	}) {
		key := e.UpstreamCluster
		if key == "" || key == "-" {
			key = missingClusterOf(&e, routes)
		}
		logs[key] = append(logs[key], e)
		logged = true
	}
	names := map[string]bool{}
	for n := range routes {
		names[n] = true
	}
	for n := range logs {
		names[n] = true
	}
	byConfig := noClusterCounters(s)
	tied = map[string]bool{}
	for _, c := range sortedKeys(names) {
		var counters []ncCounter
		grew := false
		keys := map[string]bool{}
		for _, r := range routes[c] {
			for _, k := range byConfig[r.RouteConfigName] {
				if m, ok := s.Counter(k); ok && !keys[k] {
					keys[k] = true
					counters = append(counters, ncCounter{k, m})
					grew = grew || (signal{m: m, ok: true}).counted()
				}
			}
		}
		if len(logs[c]) == 0 && !grew && s.waypointPlumbing(c) {
			continue
		}
		for k := range keys {
			tied[k] = true
		}
		out = append(out, missingClusterFinding(s, c, routes[c], logs[c], counters))
	}
	return out, tied, logged
}

// missingClusterOf names the missing cluster an NC line without an upstream cluster was routed
// to: the one whose route has the line's route name or a domain matching its Host header.
func missingClusterOf(e *envoyadmin.AccessLogEntry, routes map[string][]envoyadmin.RouteConfig) string {
	for _, c := range sortedKeys(routes) {
		for _, r := range routes[c] {
			if e.RouteName != "" && e.RouteName != "-" && r.Name == e.RouteName {
				return c
			}
			cfg := &envoyadmin.ConfigSummary{Routes: []envoyadmin.RouteConfig{r}}
			if e.Authority != "" && len(virtualHostsFor(cfg, e.Authority)) > 0 {
				return c
			}
		}
	}
	return "(unnamed, Host " + orDefault(e.Authority, "-") + ")"
}

func missingClusterFinding(s *Snapshot, c string, rs []envoyadmin.RouteConfig, lines []envoyadmin.AccessLogEntry, counters []ncCounter) Finding {
	g := signal{logs: lines}
	for _, nc := range counters {
		if cand := (signal{m: nc.m, ok: true}); cand.counted() && (!g.counted() || nc.m.Rate > g.m.Rate) {
			g.m, g.ok = nc.m, true
		}
	}
	failed := g.fires()
	f := NewFinding(CodeNoCluster, ClusterSubject(c))
	f.Severity, f.Impact = g.severity(f.Severity), g.impact(s)
	if len(lines) > 0 || s.Has(InputAccessLog) {
		f.Evidence = append(f.Evidence, s.logEvidence("access-log lines with NC", len(lines)))
	}
	for _, nc := range counters {
		f.Evidence = append(f.Evidence, nc.m.Evidence("requests routed to a missing cluster on the listener serving these routes (no_cluster)"))
	}
	for i, r := range rs {
		if i == maxListedRoutes {
			break
		}
		f.Evidence = append(f.Evidence, Evidence{Label: "route naming it", Text: fmt.Sprintf("%s %s (%s)", r.RouteConfigName, routeName(r), orDefault(r.Match, "any path")),
			Source: fmt.Sprintf("%s route config %s virtual host %s", FileConfigDump, r.RouteConfigName, r.VirtualHost)})
	}
	if s.Config != nil && len(s.Config.Clusters) > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "clusters the proxy has; this one is not among them", Value: float64(len(s.Config.Clusters)), Unit: UnitCount, Source: FileConfigDump + " clusters"})
	}
	fails := "Requests routed there fail with 503 NC."
	if !failed {
		// The config alone: the dump may be partial, or no request takes the route yet.
		f.Severity, f.Impact = SeverityWarning, 0
		fails = "Requests routed there would fail with 503 NC, but " + noFailureSeen(s, counters) + ". Config dumps are often partial (filtered by resource, trimmed, or taken while clusters were still arriving), or no request has taken these routes yet: check that the proxy really lacks the cluster before changing anything."
	}
	n := envoyadmin.ParseClusterName(c)
	ns, pod := s.podRef()
	switch {
	case n.Subset != "" && n.Host != "":
		f.Title = fmt.Sprintf("Routes send traffic to subset %s of %s, which has no cluster (NC)", n.Subset, n.Host)
		f.Explanation = fmt.Sprintf("A VirtualService routes to subset %q of %s, but the proxy has no cluster %s: no DestinationRule defines that subset for the host (or it is in a namespace this proxy does not import, or was applied after the VirtualService and has not arrived yet). %s", n.Subset, n.Host, c, fails)
		f.Fix = Fix{
			Summary: fmt.Sprintf("Define subset %q in the DestinationRule for %s (labels of the pods of that version; Istio's convention is version: %s), and apply DestinationRules before the VirtualServices that use their subsets. If a DestinationRule for the host exists, add the subset to it: applying this one would replace a rule of the same name.", n.Subset, n.Host, n.Subset),
			YAML:    subsetDestinationRuleYAML(n.Host, n.Subset),
		}
	case n.Host != "":
		f.Title = fmt.Sprintf("Routes send traffic to %s, which has no cluster (NC)", n.Host)
		f.Explanation = fmt.Sprintf("Routes name cluster %s, but the proxy does not have it: the Service does not exist or does not expose port %d, or a Sidecar resource's egress hides it from this proxy. %s", c, n.Port, fails)
		name, hns := hostNameNamespace(n.Host)
		f.Fix = Fix{Summary: "Route only to services and ports that exist, or make the host visible to this proxy (the Sidecar resource's egress hosts).", Command: fmt.Sprintf("kubectl get service -n %s %s -o wide", hns, name)}
	default:
		f.Title = fmt.Sprintf("Requests route to cluster %s, which does not exist (NC)", c)
		f.Explanation = "A route names a cluster the proxy does not have: one that was never defined or was removed. " + fails
		f.Fix = Fix{Summary: "Compare the clusters the routes name with the clusters the proxy has.", Command: fmt.Sprintf("istioctl proxy-config routes -n %s %s -o json\nistioctl proxy-config clusters -n %s %s", ns, pod, ns, pod)}
	}
	if !failed {
		f.Title = strings.TrimSuffix(f.Title, " (NC)") + " in the config dump; no failed request seen"
		f.Title = strings.Replace(f.Title, "Requests route to", "Routes name", 1)
		if !strings.Contains(f.Fix.Command, "proxy-config clusters") {
			check := fmt.Sprintf("istioctl proxy-config clusters -n %s %s | grep -F -- %s    # no line: the proxy lacks it", ns, pod, shellQuote(c))
			f.Fix.Command = strings.TrimPrefix(f.Fix.Command+"\n"+check, "\n")
		}
	}
	return f
}

// noFailureSeen says what was looked at for failed requests to a missing cluster and found none.
func noFailureSeen(s *Snapshot, tied []ncCounter) string {
	var looked []string
	if s.Has(InputAccessLog) {
		looked = append(looked, "the access log has no NC line for it")
	}
	if len(tied) > 0 {
		looked = append(looked, "the no_cluster counter of the listener serving these routes did not grow")
	} else if ss := s.latestStats(); ss != nil {
		var grew []string
		stat := false
		for _, k := range sortedKeys(ss.Stats) {
			if p, ok := strings.CutSuffix(k, "_no_cluster"); ok && strings.HasPrefix(p, "http_") {
				stat = true
				if m, ok := s.Counter(k); ok && (signal{m: m, ok: true}).counted() {
					grew = append(grew, "http."+strings.TrimPrefix(p, "http_"))
				}
			}
		}
		switch {
		case len(grew) > 0:
			return "none could be tied to these routes: the no_cluster counter of " + strings.Join(grew, ", ") + " grew, on a listener the config dump does not connect to them (see its own finding)"
		case stat:
			looked = append(looked, "no no_cluster counter grew")
		}
	}
	if len(looked) == 0 {
		return "no failed request was seen: the capture has neither an access log nor the no_cluster counters that would show one"
	}
	return "no failed request was seen: " + strings.Join(looked, " and ")
}

// subsetDestinationRuleYAML renders a DestinationRule that defines one subset by version label.
func subsetDestinationRuleYAML(host, subset string) string {
	name, ns := hostNameNamespace(host)
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n", name)
	if ns != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", ns)
	}
	fmt.Fprintf(&b, "spec:\n  host: %s\n  subsets:\n  - name: %s\n    labels:\n      version: %s   # the labels of that version's pods", host, subset, subset)
	return b.String()
}
