package diagnose

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// Input names one kind of evidence a rule can need.
type Input string

// The inputs of the engine, one per evidence file kind.
const (
	InputStats         Input = "stats"          // one stats sample, any format
	InputStatsInterval Input = "stats-interval" // two stats samples of the same format
	InputIstioMetrics  Input = "istio-metrics"  // istio_* series from /stats/prometheus
	InputConfig        Input = "config"         // config_dump.json
	InputUpstreams     Input = "upstreams"      // clusters.json or clusters.txt
	InputCerts         Input = "certs"          // certs.json or the secrets of the config dump
	InputServerInfo    Input = "server-info"    // server_info.json
	InputAccessLog     Input = "access-log"     // access.log
	InputProxyLog      Input = "proxy-log"      // access.log: the proxy's and its agent's own lines that report a problem
	InputPod           Input = "pod"            // pod.yaml
	InputEvents        Input = "events"         // events.yaml: the pod's events
	InputServices      Input = "services"       // services.yaml: the Services selecting the pod
	InputEndpoints     Input = "endpointslices" // endpointslices.yaml
	InputIstioConfig   Input = "istio-config"   // istio.yaml: PeerAuthentications, DestinationRules, VirtualServices
	InputNode          Input = "node"           // node.txt: /proc, cgroup and sysctls seen from the sidecar
	InputNodeInterval  Input = "node-interval"  // node.txt and node-2.txt, a window apart
	InputCadvisor      Input = "cadvisor"       // cadvisor.prom: the kubelet's cAdvisor lines of the pod
	InputHop           Input = "hop"            // hops.json: the worst upstream's pods, sampled on their inbound side
	InputZtunnelLog    Input = "ztunnel-log"    // ztunnel.log: an ambient pod's lines in the log of the ztunnel on its node
)

// Where Snapshot.Now came from, as evidence sources name it.
const (
	NowFromMeta  = "meta.json capture time"
	NowFromClock = "the current time: the folder has no meta.json capture time"
)

// captureTimeUnknown reports whether Now is only the current time, not when the evidence was
// taken: judgments against it (certificate expiry) may not hold for the capture.
func (s *Snapshot) captureTimeUnknown() bool { return s.NowSource == NowFromClock }

// Meta is the capture's meta.json; the evidence package owns it.
type Meta = evidence.MetaFile

// Snapshot is all the evidence about one proxy, read live or from a captured folder. Rules read
// it and nothing else. Absent evidence is nil or empty; Has says what is present.
type Snapshot struct {
	Meta Meta
	// Stats is the first stats sample and Stats2 the second, taken Window apart.
	Stats, Stats2 *envoyadmin.StatsSample
	// StatsFile and Stats2File name the files the samples came from, for evidence sources.
	StatsFile, Stats2File string
	Window                time.Duration
	Config                *envoyadmin.ConfigSummary
	Upstreams             *envoyadmin.UpstreamClusters
	UpstreamsFile         string
	Certs                 []envoyadmin.Cert
	CertsFile             string
	// NoCerts: certs.json was read and lists no certificate at all.
	NoCerts    bool
	ServerInfo *envoyadmin.ServerInfo
	AccessLog  []envoyadmin.AccessLogEntry
	// ProxyLog are the proxy's and istio-agent's own log lines that report a problem, read
	// from the same log as AccessLog.
	ProxyLog []envoyadmin.ProxyLogEvent
	// LogOther are the log's other lines (neither access-log lines nor proxy lines with a known
	// problem), in which the explain scanner may still find a signal: a debug line of the
	// router, a TLS error of a connection.
	LogOther []envoyadmin.LogLine
	Pod      *corev1.Pod
	// Events are the pod's events, Services the Services that select it, EndpointSlices those
	// of its Services and of the upstreams it calls, Istio the Istio objects that apply to it.
	// A nil slice or pointer means the file was not there; an empty one that it held none.
	Events         []corev1.Event
	Services       []corev1.Service
	EndpointSlices []discoveryv1.EndpointSlice
	Istio          *IstioConfig
	// Node and Node2 are the node samples (node.txt, node-2.txt), NodeWindow apart; NodeFile
	// names the first for evidence sources.
	Node, Node2 *nodeinfo.Sample
	NodeFile    string
	NodeWindow  time.Duration
	// Cadvisor and Cadvisor2 are the kubelet's cAdvisor counters of the pod's containers
	// (cadvisor.prom, cadvisor-2.prom), read beside the node samples.
	Cadvisor, Cadvisor2 *nodeinfo.Cadvisor
	// Hop is the inbound side of the worst upstream's pods, sampled after the proxy's own
	// window (hops.json and its stats files); nil when the hop was not followed.
	Hop *Hop
	// Ztunnel are the problems in ztunnel.log; ZtunnelLines counts the lines of it that were
	// ztunnel's, healthy ones included.
	Ztunnel      []ztunnelEvent
	ZtunnelLines int
	// ZtunnelDump is the config dump of the ztunnel on an ambient pod's node, ZtunnelStats its
	// metrics over the window.
	ZtunnelDump  *ztunnel.ConfigDump
	ZtunnelStats *envoyadmin.StatsInterval
	// ZtunnelCadvisor and ZtunnelCadvisor2 are that ztunnel pod's cAdvisor lines, read with the
	// node samples (NodeWindow apart).
	ZtunnelCadvisor, ZtunnelCadvisor2 *nodeinfo.Cadvisor
	// Waypoint is the evidence of the waypoint that serves an ambient pod (its waypoint-*
	// files), diagnosed with the same rules as the pod's.
	Waypoint *Snapshot
	// Now is when the evidence was taken (certificate expiry is judged against it).
	Now time.Time
	// NowSource says where Now came from: NowFromMeta, NowFromClock when a folder has no capture
	// time (Now is then the current time, not the capture's), or "" when whoever built the
	// snapshot took the evidence at Now (a live read, a test).
	NowSource string
	// Warnings say which evidence could not be read, and why.
	Warnings []string

	iv *envoyadmin.StatsInterval // the two samples paired, made on first use
}

// Has reports whether the snapshot holds an input.
func (s *Snapshot) Has(in Input) bool {
	switch in {
	case InputStats:
		return s.Stats != nil
	case InputStatsInterval:
		return s.Stats != nil && s.Stats2 != nil && s.Window > 0
	case InputIstioMetrics:
		return s.Stats != nil && len(s.Stats.Istio) > 0
	case InputConfig:
		return s.Config != nil
	case InputUpstreams:
		return s.Upstreams != nil
	case InputCerts:
		return len(s.Certs) > 0 || s.NoCerts
	case InputServerInfo:
		return s.ServerInfo != nil
	case InputAccessLog:
		return len(s.AccessLog) > 0
	case InputProxyLog:
		return len(s.ProxyLog) > 0 || len(s.LogOther) > 0
	case InputPod:
		return s.Pod != nil
	case InputEvents:
		return s.Events != nil
	case InputServices:
		return s.Services != nil
	case InputEndpoints:
		return s.EndpointSlices != nil
	case InputIstioConfig:
		return s.Istio != nil
	case InputNode:
		return s.Node != nil
	case InputNodeInterval:
		return s.Node != nil && s.Node2 != nil && s.NodeWindow > 0
	case InputCadvisor:
		return s.Cadvisor != nil
	case InputHop:
		return s.Hop != nil && len(s.Hop.Pods) > 0
	case InputZtunnelLog:
		return s.ZtunnelLines > 0
	}
	return false
}

// Uptime returns how long the proxy had run when the (last) stats sample was taken, from
// server_info or the server.uptime stat; 0 when unknown.
func (s *Snapshot) Uptime() time.Duration {
	if s.ServerInfo != nil && s.ServerInfo.Uptime > 0 {
		return s.ServerInfo.Uptime
	}
	last := s.Stats2
	if last == nil {
		last = s.Stats
	}
	if last != nil {
		if v, ok := last.Stats["server_uptime"]; ok && v > 0 {
			return time.Duration(v * float64(time.Second))
		}
	}
	return 0
}

// ClusterConfig returns the configured settings of a cluster, or nil.
func (s *Snapshot) ClusterConfig(name string) *envoyadmin.ClusterConfig {
	if s.Config == nil {
		return nil
	}
	for i := range s.Config.Clusters {
		if s.Config.Clusters[i].Name.Raw == name {
			return &s.Config.Clusters[i]
		}
	}
	return nil
}

// RoutesTo returns the routes that send traffic to a cluster.
func (s *Snapshot) RoutesTo(cluster string) []envoyadmin.RouteConfig {
	if s.Config == nil {
		return nil
	}
	var out []envoyadmin.RouteConfig
	for _, r := range s.Config.Routes {
		for _, c := range r.Clusters {
			if c.Name == cluster {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Upstream returns a cluster's hosts from /clusters, or nil.
func (s *Snapshot) Upstream(name string) *envoyadmin.UpstreamCluster {
	if s.Upstreams == nil {
		return nil
	}
	for i := range s.Upstreams.Clusters {
		if s.Upstreams.Clusters[i].Name.Raw == name {
			return &s.Upstreams.Clusters[i]
		}
	}
	return nil
}

// LogEntries returns the access-log entries that match, in log order.
func (s *Snapshot) LogEntries(match func(e *envoyadmin.AccessLogEntry) bool) []envoyadmin.AccessLogEntry {
	var out []envoyadmin.AccessLogEntry
	for i := range s.AccessLog {
		if match(&s.AccessLog[i]) {
			out = append(out, s.AccessLog[i])
		}
	}
	return out
}

// HasFlag reports whether an access-log entry carries a response flag.
func HasFlag(e *envoyadmin.AccessLogEntry, flag string) bool {
	for _, f := range e.Flags {
		if f == flag {
			return true
		}
	}
	return false
}
