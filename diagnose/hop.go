package diagnose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// FileHops describes the hop that was followed: the upstream, its Service, and the files of
// the stats sampled on the inbound side of its pods.
const FileHops = evidence.Hops

// maxHopPods bounds the hop's pods read from hops.json: a capture samples a few.
const maxHopPods = 16

// HopFile is hops.json, and HopPodFile one of its pods; the evidence package owns them.
type (
	HopFile    = evidence.HopFile
	HopPodFile = evidence.HopPodFile
)

// Hop is the followed hop as rules read it.
type Hop struct {
	Upstream                      string
	ServiceNamespace, ServiceName string
	Port                          int
	Window                        time.Duration
	Pods                          []HopPod
}

// HopPod is one server pod's inbound side over the hop's window.
type HopPod struct {
	Namespace, Pod string
	// StatsFile names the first sample, for evidence sources.
	StatsFile string
	Interval  *envoyadmin.StatsInterval
}

// InboundCluster is the server sidecar's cluster for the hop's port.
func (h *Hop) InboundCluster() string { return fmt.Sprintf("inbound|%d||", h.Port) }

// hop reads hops.json and the server pods' samples it names.
func (l *loader) hop() {
	b := l.read(FileHops)
	if b == nil {
		return
	}
	var f HopFile
	if err := json.Unmarshal(b, &f); err != nil {
		l.warn(FileHops, err)
		return
	}
	l.s.Warnings = append(l.s.Warnings, f.Warnings...)
	h := &Hop{Upstream: f.Upstream, ServiceNamespace: f.ServiceNamespace, ServiceName: f.ServiceName, Port: f.Port,
		Window: time.Duration(f.WindowSeconds * float64(time.Second))}
	if h.Window <= 0 || f.Port <= 0 || f.Upstream == "" {
		l.warn(FileHops, fmt.Errorf("needs upstream, port and windowSeconds"))
		return
	}
	if len(f.Pods) > maxHopPods {
		l.warn(FileHops, fmt.Errorf("names %d pods; a capture samples at most %d, so only the first %d are read", len(f.Pods), maxHopPods, maxHopPods))
		f.Pods = f.Pods[:maxHopPods]
	}
	seen := map[string]bool{}
	for _, p := range f.Pods {
		if seen[p.Stats] || seen[p.Stats2] {
			l.warn(FileHops, fmt.Errorf("names %s twice; read once", quoteShort(p.Stats)))
			continue
		}
		seen[p.Stats], seen[p.Stats2] = true, true
		// The names come from the file: only plain names in the folder itself are read.
		if p.Stats != path.Base(p.Stats) || p.Stats2 != path.Base(p.Stats2) {
			l.warn(FileHops, fmt.Errorf("pod %s/%s: stats files must be in the evidence folder itself", p.Namespace, p.Pod))
			continue
		}
		first, second := l.hopSample(p.Stats), l.hopSample(p.Stats2)
		if first == nil || second == nil {
			continue
		}
		h.Pods = append(h.Pods, HopPod{Namespace: p.Namespace, Pod: p.Pod, StatsFile: p.Stats,
			Interval: envoyadmin.NewStatsInterval(first, second, h.Window)})
	}
	if len(h.Pods) > 0 {
		l.usable++
		l.s.Hop = h
	}
}

func (l *loader) hopSample(name string) *envoyadmin.StatsSample {
	b := l.read(name)
	if b == nil {
		l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s names %s, which is missing; that pod of the hop is left out", FileHops, name))
		return nil
	}
	s, err := envoyadmin.ParseStatsPrometheus(bytes.NewReader(b))
	if err != nil {
		l.warn(name, err)
		return nil
	}
	if s.Empty() {
		l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: holds no Envoy stats; that pod of the hop is left out", name))
		return nil
	}
	return s
}

// HopTarget is the upstream whose hop a live diagnosis follows.
type HopTarget struct {
	Cluster, ServiceName, ServiceNamespace string
	// ServicePort is the port of the Service the proxy calls (the cluster's port).
	ServicePort int
}

// ChooseHop picks the upstream worth following from a proxy's diagnosis: the service cluster of
// the most important latency or timeout finding, else the in-mesh service cluster with the
// highest mean upstream_rq_time over the window (enough requests to tell). ok is false when no
// Kubernetes Service upstream had traffic.
func ChooseHop(s *Snapshot, r *Report) (HopTarget, bool) {
	target := func(cluster string) (HopTarget, bool) {
		n := envoyadmin.ParseClusterName(cluster)
		name, ns := hostNameNamespace(n.Host)
		if n.Direction != "outbound" || ns == "" || n.Port == 0 {
			return HopTarget{}, false
		}
		return HopTarget{Cluster: cluster, ServiceName: name, ServiceNamespace: ns, ServicePort: n.Port}, true
	}
	if r != nil {
		for _, f := range r.Findings {
			if f.Subject.Kind != SubjectCluster || (f.Category != CategoryLatency && f.Category != CategoryTimeout) {
				continue
			}
			if t, ok := target(f.Subject.Name); ok {
				return t, true
			}
		}
	}
	best, bestMean := "", 0.0
	for _, c := range statsClusterNames(s) {
		if _, ok := target(c); !ok {
			continue
		}
		h, interval, _ := s.ClusterHistogram(c, "upstream_rq_time")
		if h == nil || !interval || h.Count < latencyMinRequests {
			continue
		}
		if mean := h.Sum / h.Count; mean > bestMean {
			best, bestMean = c, mean
		}
	}
	if best == "" {
		return HopTarget{}, false
	}
	return target(best)
}
