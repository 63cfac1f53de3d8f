// Package evidence owns the evidence folder: its file names, and reading a folder or an
// archive that may come from a stranger (README "Evidence from strangers"). It sits at the
// bottom of the house, beside envoyadmin and nodeinfo: collect writes evidence, diagnose reads
// it, and neither needs the other for a name.
package evidence

import (
	"slices"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// The evidence folder's files, named after the admin endpoint or command each came from.
const (
	StatsText        = "stats.txt"   // GET /stats
	StatsJSON        = "stats.json"  // GET /stats?format=json
	StatsProm        = "stats.prom"  // GET /stats/prometheus
	Stats2Text       = "stats-2.txt" // the second sample of the same endpoint
	Stats2JSON       = "stats-2.json"
	Stats2Prom       = "stats-2.prom"
	ConfigDump       = "config_dump.json" // GET /config_dump
	ClustersJSON     = "clusters.json"    // GET /clusters?format=json
	ClustersText     = "clusters.txt"     // GET /clusters
	Certs            = "certs.json"       // GET /certs
	ServerInfo       = "server_info.json" // GET /server_info
	AccessLog        = "access.log"       // the proxy container's log: access-log and its own lines
	Pod              = "pod.yaml"         // the pod, as kubectl get -o yaml prints it
	Meta             = "meta.json"        // pod, namespace, capture times, window
	Events           = "events.yaml"      // v1 EventList: the pod's events
	Services         = "services.yaml"    // v1 ServiceList: the Services that select the pod
	EndpointSlices   = "endpointslices.yaml"
	Istio            = "istio.yaml"               // v1 List of PeerAuthentications, DestinationRules, VirtualServices
	Node             = "node.txt"                 // the node probe's output (/proc, cgroup, sysctls)
	Node2            = "node-2.txt"               // the second node sample
	Cadvisor         = "cadvisor.prom"            // the kubelet's cAdvisor lines of the pod
	Cadvisor2        = "cadvisor-2.prom"          // the second cAdvisor sample
	Hops             = "hops.json"                // the hop to the worst upstream; its samples are hop-N.prom, hop-N-2.prom
	ZtunnelLog       = "ztunnel.log"              // an ambient pod's: the lines of the ztunnel on its node that name it
	ZtunnelDump      = "ztunnel_config_dump.json" // an ambient pod's: GET /config_dump of the ztunnel on its node
	ZtunnelProm      = "ztunnel.prom"             // an ambient pod's: GET /metrics (port 15020) of the ztunnel on its node
	ZtunnelProm2     = "ztunnel-2.prom"           // the second sample, a window later
	ZtunnelCadvisor  = "ztunnel-cadvisor.prom"    // the kubelet's cAdvisor lines of that ztunnel pod
	ZtunnelCadvisor2 = "ztunnel-cadvisor-2.prom"  // the second sample, with node-2.txt
)

// names are the fixed evidence file names.
var names = []string{StatsText, StatsJSON, StatsProm, Stats2Text, Stats2JSON, Stats2Prom, ConfigDump,
	ClustersJSON, ClustersText, Certs, ServerInfo, AccessLog, Pod, Meta, Events, Services, EndpointSlices,
	Istio, Node, Node2, Cadvisor, Cadvisor2, Hops, ZtunnelLog, ZtunnelDump, ZtunnelProm, ZtunnelProm2, ZtunnelCadvisor, ZtunnelCadvisor2}

// hopSample names the hop's stats samples that hops.json lists.
var hopSample = lazyregexp.New(`^hop-[0-9]{1,4}(-2)?\.prom$`)

// Known reports whether name is the name of an evidence file: a plain name, no folder.
func Known(name string) bool {
	if w, ok := strings.CutPrefix(name, WaypointPrefix); ok {
		return slices.Contains(names, w) && !strings.HasPrefix(w, "ztunnel")
	}
	return slices.Contains(names, name) || hopSample.MatchString(name)
}

// WaypointPrefix starts the names of the evidence of the waypoint that serves an ambient pod:
// its own capture's files (waypoint-stats.prom, waypoint-config_dump.json, waypoint-pod.yaml...).
const WaypointPrefix = "waypoint-"

// Names returns the fixed evidence file names (hop samples aside), for messages.
func Names() []string { return slices.Clone(names) }
