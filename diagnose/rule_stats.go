package diagnose

import (
	"fmt"
	"regexp"
	"strings"

	"istio.io/api/annotation"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// statsMatcherRegexps are the proxyStatsMatcher inclusions that give the diagnosis what it reads
// per upstream: latency, connect failures and time, timeouts, overflows, resets, retries,
// outlier detection, circuit breakers, TLS, membership, the pending queue and request totals.
var statsMatcherRegexps = []string{
	".*upstream_rq_time.*",
	".*upstream_rq_total.*",
	".*upstream_rq_pending.*",
	".*upstream_rq_[0-9]xx.*",
	".*upstream_cx_connect_fail.*",
	".*upstream_cx_connect_timeout.*",
	".*upstream_cx_connect_ms.*",
	".*upstream_cx_total.*",
	".*upstream_cx_destroy_remote_with_active_rq.*",
	".*timeout.*",
	".*overflow.*",
	".*reset.*",
	".*retry.*",
	".*outlier_detection.*",
	".*circuit_breakers.*",
	".*ssl.*",
	".*membership.*",
	".*downstream_rq_time.*",
}

// wantedClusterStats are the per-cluster stats, in Envoy's dotted form, that the matcher check
// tests the proxy's inclusion patterns against.
var wantedClusterStats = []string{
	"upstream_rq_time", "upstream_rq_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
	"upstream_rq_timeout", "upstream_rq_pending_overflow", "upstream_rq_rx_reset", "upstream_rq_retry",
	"outlier_detection.ejections_active", "circuit_breakers.default.rq_pending_open",
	"ssl.connection_error", "membership_healthy",
}

// StatsDisabledRule finds a proxy that records no per-upstream stats (Istio's default), which
// leaves most other rules blind, and says how to turn them on.
type StatsDisabledRule struct{}

// Meta describes the rule.
func (StatsDisabledRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "StatsDisabledRule",
		Description: "Finds proxies that record no per-upstream stats (Istio's default stats inclusion) or whose stats matcher leaves out the ones the diagnosis reads, and gives the proxyStatsMatcher annotation that turns them on.",
		Codes:       []Code{CodeClusterStatsDisabled},
		AnyOf:       []Input{InputStats, InputConfig},
	}
}

// Check runs the rule.
func (StatsDisabledRule) Check(s *Snapshot) []Finding {
	var ev []Evidence
	var why string
	apps := s.appClusters()
	if ss := s.latestStats(); ss != nil && (len(ss.Stats) > 0 || len(ss.Clusters) > 0 || len(ss.Istio) > 0) {
		withStats, tlsOnly := 0, 0
		for name, cs := range ss.Clusters {
			switch classifyCluster(name) {
			case kindService, kindInbound, kindPassthrough:
				if hasUpstreamStats(cs.Values, len(cs.Histograms)) {
					withStats++
				} else {
					tlsOnly++
				}
			}
		}
		if withStats == 0 {
			file := orDefault(s.StatsFile, "stats")
			ev = append(ev, Evidence{Label: "upstream clusters with request stats (upstream_*, membership, outlier detection, circuit breakers, TLS handshakes, latency)", Value: 0, Unit: UnitCount, Source: file + " cluster.* (request stats only for the proxy's own clusters such as xds-grpc)"})
			if len(apps) > 0 {
				ev = append(ev, Evidence{Label: "upstream clusters the proxy has", Value: float64(len(apps)), Unit: UnitCount, Source: appClusterSources(s)})
			}
			why = "The stats hold no request, connection or latency stat for any upstream cluster, only for the proxy's own clusters: this is Istio's default stats inclusion (cluster_manager, listener_manager, server and cluster.xds-grpc)."
			if tlsOnly > 0 {
				ev = append(ev, Evidence{Label: "upstream clusters in the stats with TLS-context counters only (client_ssl_socket_factory.*)", Value: float64(tlsOnly), Unit: UnitCount, Source: file + " cluster.<upstream>.client_ssl_socket_factory.*"})
				why += fmt.Sprintf(" %s appear in the stats only with the TLS-context counters that inclusion still records, which say nothing about their traffic.", plural(tlsOnly, "upstream cluster"))
			}
		}
	}
	if s.Config != nil && s.Config.StatsMatcherSet {
		if missing, ok := unmatchedStats(s.Config.StatsInclusions, sampleCluster(apps)); ok && len(missing) > 0 {
			ev = append(ev,
				Evidence{Label: "stats matcher inclusions", Text: clip(strings.Join(s.Config.StatsInclusions, " "), 400), Source: "config_dump.json bootstrap stats_config.stats_matcher"},
				Evidence{Label: "per-cluster stats it leaves out", Text: strings.Join(missing, ", "), Source: "the inclusions tested against cluster." + sampleCluster(apps) + ".<stat>"})
			if why == "" {
				why = "The proxy's stats matcher does not include these per-cluster stats, so they are never recorded."
			}
		}
	}
	if why == "" {
		return nil
	}
	ns, _ := s.podRef()
	workload := s.workloadRef()
	f := NewFinding(CodeClusterStatsDisabled, Subject{Kind: SubjectProxy, Name: proxyName(s)})
	f.Title = "Per-upstream stats are off: timeouts, resets, retries and latency per service cannot be seen"
	f.Evidence = ev
	f.Explanation = why + " Without per-upstream stats this diagnosis cannot count timeouts, connect failures, circuit-breaker overflows, resets, retries, ejections or TLS failures per upstream, nor measure each upstream's latency; it falls back on istio_requests_total, istio_request_duration_milliseconds, /clusters and the access log, which say that requests failed but less often why."
	matcher := "proxyStatsMatcher:\n  inclusionRegexps:\n"
	for _, r := range statsMatcherRegexps {
		matcher += fmt.Sprintf("  - %q\n", r)
	}
	f.Fix = Fix{
		Summary: "Add a proxyStatsMatcher to the workload's pod template (annotation proxy.istio.io/config; mesh-wide: meshConfig.defaultConfig.proxyStatsMatcher). The annotation is read when the sidecar is injected, so only restarted pods get it: patching the template restarts them.",
		Command: fmt.Sprintf("kubectl patch %s -n %s --patch-file stats-matcher.yaml    # the YAML below, saved\nkubectl rollout status %s -n %s", workload, ns, workload, ns),
		YAML:    podTemplateAnnotationsYAML(map[string]string{annotation.ProxyConfig.Name: matcher}),
	}
	if s.Config != nil && strings.TrimSpace(s.Config.Proxy.ProxyConfig) != "" {
		f.Fix.Summary += " The pod already sets proxy.istio.io/config: merge these lines into it, since the patch replaces the annotation."
	}
	return []Finding{f}
}

// appClusterSources names the evidence files that name the proxy's application clusters, as
// appClusters reads them: only those present in the snapshot and naming at least one.
func appClusterSources(s *Snapshot) string {
	isApp := func(n string) bool {
		switch classifyCluster(n) {
		case kindService, kindInbound, kindPassthrough:
			return n != "" && n != "-"
		}
		return false
	}
	var names []string
	if s.Config != nil {
		for _, c := range s.Config.Clusters {
			if isApp(c.Name.Raw) {
				names = append(names, FileConfigDump)
				break
			}
		}
	}
	for i, ss := range []*envoyadmin.StatsSample{s.Stats, s.Stats2} {
		if ss == nil {
			continue
		}
		file := orDefault([]string{s.StatsFile, s.Stats2File}[i], "stats")
		for n := range ss.Clusters {
			if isApp(n) {
				names = append(names, file)
				break
			}
		}
	}
	if s.Upstreams != nil {
		for _, c := range s.Upstreams.Clusters {
			if isApp(c.Name.Raw) {
				names = append(names, orDefault(s.UpstreamsFile, "clusters"))
				break
			}
		}
	}
	for _, e := range s.AccessLog {
		if isApp(e.UpstreamCluster) {
			names = append(names, FileAccessLog)
			break
		}
	}
	return orDefault(andList(names), "the evidence")
}

// sampleCluster is a cluster name to test inclusion patterns against.
func sampleCluster(apps []string) string {
	for _, c := range apps {
		if classifyCluster(c) == kindService && strings.HasPrefix(c, "outbound|") {
			return c
		}
	}
	return "outbound|80||example.default.svc.cluster.local"
}

// unmatchedStats lists the wanted per-cluster stats no inclusion pattern matches. ok is false
// when a pattern cannot be evaluated, since then nothing can be said for sure.
func unmatchedStats(patterns []string, cluster string) (missing []string, ok bool) {
	matchers := make([]func(string) bool, 0, len(patterns))
	for _, p := range patterns {
		kind, value, found := strings.Cut(p, ":")
		if !found {
			return nil, false
		}
		switch kind {
		case "prefix":
			matchers = append(matchers, func(n string) bool { return strings.HasPrefix(n, value) })
		case "suffix":
			matchers = append(matchers, func(n string) bool { return strings.HasSuffix(n, value) })
		case "exact":
			matchers = append(matchers, func(n string) bool { return n == value })
		case "contains":
			matchers = append(matchers, func(n string) bool { return strings.Contains(n, value) })
		case "regex":
			re, err := regexp.Compile("^(?:" + value + ")$")
			if err != nil {
				return nil, false
			}
			matchers = append(matchers, re.MatchString)
		default:
			return nil, false
		}
	}
	for _, stat := range wantedClusterStats {
		name := "cluster." + cluster + "." + stat
		matched := false
		for _, m := range matchers {
			if m(name) {
				matched = true
				break
			}
		}
		if !matched {
			missing = append(missing, stat)
		}
	}
	return missing, true
}

// hasUpstreamStats reports whether a cluster's stats include request, connection or host stats:
// Istio's default inclusions still record a few TLS context counters per cluster
// (client_ssl_socket_factory.*), which say nothing about its traffic.
func hasUpstreamStats(values map[string]float64, histograms int) bool {
	if histograms > 0 {
		return true
	}
	for k := range values {
		for _, p := range []string{"upstream_", "membership_", "outlier_detection_", "circuit_breakers_", "ssl_"} {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
	}
	return false
}
