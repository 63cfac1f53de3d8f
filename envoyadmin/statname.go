package envoyadmin

import "strings"

// Envoy names a cluster's stats "cluster.<cluster name>.<stat>", and cluster names contain dots
// ("outbound|9080||reviews.default.svc.cluster.local") while some stats are scoped
// ("circuit_breakers.default.rq_pending_open", "internal.upstream_rq_time",
// "zone.us-east-1a.us-east-1b.upstream_rq_200"). So a stat name cannot be split at a '.'; this
// file splits it by recognising the stat part instead: a suffix is valid only if it follows the
// shape of a stat Envoy documents for clusters. Where several splits are valid, the parser
// prefers a cluster name it has seen unambiguously elsewhere in the sample, then the shortest
// cluster name (see sampleBuilder).

// canonicalStatName returns the canonical form of a dotted stat name: every '.' becomes '_'.
func canonicalStatName(s string) string { return strings.ReplaceAll(s, ".", "_") }

// clusterStatPrefix starts every stat scoped to an upstream cluster in the text and JSON formats.
const clusterStatPrefix = "cluster."

// forEachClusterSplit calls fn for every way of splitting rest (a stat name without "cluster.")
// into a cluster name and a valid stat suffix, shortest cluster name first, until fn returns
// false.
func forEachClusterSplit(rest string, fn func(cluster, suffix string) bool) {
	for i := clusterSplitFrom(rest); ; i++ {
		j := strings.IndexByte(rest[i:], '.')
		if j < 0 {
			return
		}
		i += j
		if i > 0 && validClusterSuffix(rest[i+1:]) && !fn(rest[:i], rest[i+1:]) {
			return
		}
	}
}

// clusterSplitFrom returns where the search for the cluster/stat boundary starts: after an Istio
// name's last '|', since its host follows that.
func clusterSplitFrom(rest string) int {
	if strings.IndexByte(rest, '|') < 0 { // fast, vectorised; most names have no '|'
		return 0
	}
	return strings.LastIndexByte(rest, '|') + 1
}

// splitClusterStat returns the split with the shortest cluster name and how many valid splits
// rest has (n == 1 is the common, unambiguous case). It is forEachClusterSplit without the
// callback, since it runs once per line of a /stats dump.
func splitClusterStat(rest string) (cluster, suffix string, n int) {
	for i := clusterSplitFrom(rest); ; i++ {
		j := strings.IndexByte(rest[i:], '.')
		if j < 0 {
			return cluster, suffix, n
		}
		i += j
		if i > 0 && validClusterSuffix(rest[i+1:]) {
			if n == 0 {
				cluster, suffix = rest[:i], rest[i+1:]
			}
			n++
		}
	}
}

// validClusterSuffix reports whether s (dotted) has the shape of one of Envoy's cluster stats.
func validClusterSuffix(s string) bool {
	first, tail, scoped := strings.Cut(s, ".")
	if !scoped {
		return isClusterLeaf(first)
	}
	switch first {
	case "circuit_breakers": // circuit_breakers.<priority>.<stat>
		priority, leaf, ok := strings.Cut(tail, ".")
		return ok && (priority == "default" || priority == "high") && isStatSegment(leaf)
	case "outlier_detection", "health_check", "http1", "http2", "http3", "ext_authz",
		"ring_hash_lb", "maglev_lb", "tcp_stats", "client_ssl_socket_factory":
		return isStatSegment(tail)
	case "internal", "external", "canary", "retry": // origin and retry trees of dynamic HTTP stats
		return isStatSegment(tail) && strings.HasPrefix(tail, "upstream_rq_")
	case "zone": // zone.<from zone>.<to zone>.upstream_rq_*
		parts := strings.Split(tail, ".")
		return len(parts) == 3 && parts[0] != "" && parts[1] != "" && strings.HasPrefix(parts[2], "upstream_rq_")
	case "ssl":
		if isStatSegment(tail) {
			return true
		}
		// ssl.versions.TLSv1.2 has a dot of its own; ssl.certificate.<name>.<stat>.
		group, rest, _ := strings.Cut(tail, ".")
		switch group {
		case "ciphers", "curves", "sigalgs", "versions", "certificate":
			return rest != ""
		}
		return false
	case "default": // seen in Emissary's proxies: cluster.<name>.default.total_match_count
		return tail == "total_match_count"
	case "grpc": // grpc.<service with dots>.<method>.<stat>, from the gRPC stats filter
		last := tail[strings.LastIndexByte(tail, '.')+1:]
		return strings.Count(tail, ".") >= 2 && (grpcLeaves[last] || isDigits(last))
	}
	return false
}

var grpcLeaves = map[string]bool{
	"success": true, "failure": true, "total": true, "upstream_rq_time": true,
	"request_message_count": true, "response_message_count": true,
}

// isClusterLeaf reports whether seg is a stat at the root of a cluster's tree.
func isClusterLeaf(seg string) bool {
	for _, p := range [...]string{"upstream_", "lb_", "membership_", "update_", "assignment_"} {
		if strings.HasPrefix(seg, p) && len(seg) > len(p) {
			return true
		}
	}
	switch seg {
	case "version", "max_host_weight", "bind_errors", "retry_or_shadow_abandoned",
		"original_dst_host_invalid", "warming_state", "config_reload", "init_fetch_timeout":
		return true
	}
	return false
}

func isStatSegment(s string) bool { return s != "" && strings.IndexByte(s, '.') < 0 }

// IsGauge reports whether a stat, by canonical name ("server_uptime") or cluster stat suffix
// ("upstream_rq_pending_active", "circuit_breakers_default_rq_pending_open"), is one of Envoy's
// gauges. The text and JSON formats do not say which stats are gauges, and a rate of a gauge
// means nothing, so interval arithmetic asks this. Names it does not know are counters, which
// is what most of Envoy's stats are. Prefer StatsSample.IsGauge, which uses the Prometheus TYPE
// when the sample has one.
func IsGauge(name string) bool {
	if gaugeNames[name] {
		return true
	}
	for _, suffix := range gaugeSuffixes {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	if strings.HasPrefix(name, "remaining_") || strings.Contains(name, "_remaining_") {
		return true // circuit_breakers.<priority>.remaining_*
	}
	if i := strings.Index(name, "membership_"); i == 0 || (i > 0 && name[i-1] == '_') {
		return !strings.HasSuffix(name, "membership_change") // the one counter among them
	}
	for _, scope := range [...]string{"ring_hash_lb_", "maglev_lb_"} {
		if strings.HasPrefix(name, scope) || strings.Contains(name, "_"+scope) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(name, "server_"); ok {
		return serverGauges[rest]
	}
	return false
}

// gaugeSuffixes end the names of gauges wherever they are rooted.
var gaugeSuffixes = []string{
	"_active",          // upstream_cx_active, downstream_rq_active, ejections_active, streams_active
	"_open",            // circuit_breakers.<priority>.cx_open, rq_pending_open
	"_bytes_buffered",  // upstream_cx_rx_bytes_buffered
	"_version",         // cluster_manager.cds.version, listener_manager.lds.version
	"_update_time",     // xDS subscriptions' time of the last update
	"_connected_state", // control_plane.connected_state
	"_pending_requests",
	"_pending_send_bytes",
	"_expiration_unix_time_seconds", // ssl.certificate.<name>.expiration_unix_time_seconds
	"_clusters_inflated",
	"_pressure", // overload manager resource pressure
	"_scale_percent",
	"_max_host_weight",
	"_warming_state",
	"health_check_healthy",
	"_active_clusters",
	"_warming_clusters",
	"_total_listeners_warming",
	"_total_listeners_draining",
	"_total_filter_chains_draining",
	"_workers_started",
	"_lb_subsets_single_host_per_subset_duplicate",
}

// gaugeNames are gauges matched whole: cluster stats at the root of a cluster's tree and a few
// global ones.
var gaugeNames = map[string]bool{
	"version": true, "max_host_weight": true, "warming_state": true,
	"lb_subsets_single_host_per_subset_duplicate": true,
	"runtime_num_keys":                            true, "runtime_num_layers": true,
	"runtime_deprecated_feature_seen_since_process_start": true,
	"filesystem_write_total_buffered":                     true,
}

// serverGauges are the gauges under server.; the rest (watchdog misses, bug counts) count.
var serverGauges = map[string]bool{
	"uptime": true, "concurrency": true, "live": true, "state": true,
	"memory_allocated": true, "memory_heap_size": true, "memory_physical_size": true,
	"parent_connections": true, "total_connections": true, "version": true,
	"days_until_first_cert_expiring": true, "seconds_until_first_ocsp_response_expiring": true,
	"hot_restart_epoch": true, "hot_restart_generation": true,
}
