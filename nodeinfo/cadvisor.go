package nodeinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The cAdvisor series the diagnosis reads (the kubelet's /metrics/cadvisor).
const (
	metricPeriods   = "container_cpu_cfs_periods_total"
	metricThrottled = "container_cpu_cfs_throttled_periods_total"
	metricThrSecs   = "container_cpu_cfs_throttled_seconds_total"
	metricUsage     = "container_cpu_usage_seconds_total"
	metricQuota     = "container_spec_cpu_quota"
	metricPeriod    = "container_spec_cpu_period"
)

// ContainerCPU is one container's CPU counters from cAdvisor, cumulative since it started.
type ContainerCPU struct {
	Periods, Throttled, ThrottledSeconds, UsageSeconds float64
	// QuotaCores is the CPU limit (quota / period), 0 without one.
	QuotaCores float64
	// HasCFS says the CFS period counters were present (they are only for containers with a
	// CPU limit).
	HasCFS bool
	// TimestampMs is when cAdvisor read the counters (the series' timestamp, milliseconds since
	// the epoch), 0 when the text had none. cAdvisor refreshes them every housekeeping
	// interval (10 s or more), not at each scrape.
	TimestampMs int64
}

// Cadvisor is the cAdvisor evidence of one pod: its containers by name.
type Cadvisor struct {
	Containers map[string]*ContainerCPU
}

// Names returns the container names, sorted.
func (c *Cadvisor) Names() []string {
	names := make([]string, 0, len(c.Containers))
	for n := range c.Containers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// FilterCadvisor keeps the lines of the kubelet's cAdvisor text that belong to one pod, with the
// HELP and TYPE lines of the metrics kept: a node's whole output is megabytes, one pod's a few
// kilobytes. It returns nil when the pod has no series.
func FilterCadvisor(text []byte, namespace, pod string) []byte {
	return SplitCadvisor(text)[PodKey(namespace, pod)]
}

// PodKey is the key of a pod in SplitCadvisor's result.
func PodKey(namespace, pod string) string { return namespace + "/" + pod }

// SplitCadvisor cuts a node's cAdvisor text into the lines of each pod, keyed by PodKey, each
// with the HELP and TYPE lines of its metrics: one pass over the node's output serves every
// pod of the node a sweep reads. Series without a pod and namespace label (the machine's, the
// node's) are left out.
func SplitCadvisor(text []byte) map[string][]byte {
	out := map[string]*bytes.Buffer{}
	var header []string // HELP and TYPE lines of the current metric
	headerFor := ""
	wrote := map[string]string{} // pod key -> the metric whose header it has
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
				if f[2] != headerFor {
					header, headerFor = nil, f[2]
				}
				header = append(header, line)
			}
			continue
		}
		name, labels, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		ns, pod := labelValue(labels, "namespace"), labelValue(labels, "pod")
		if ns == "" || pod == "" {
			continue
		}
		key := PodKey(ns, pod)
		b := out[key]
		if b == nil {
			b = &bytes.Buffer{}
			out[key] = b
		}
		if name == headerFor && wrote[key] != name {
			for _, h := range header {
				b.WriteString(h + "\n")
			}
			wrote[key] = name
		}
		b.WriteString(line + "\n")
	}
	res := make(map[string][]byte, len(out))
	for k, b := range out {
		res[k] = b.Bytes()
	}
	return res
}

// labelValue returns the value of a label in the text after a series' "{", or "" (values with
// escaped quotes are not pod or namespace names, which are DNS labels).
func labelValue(labels, name string) string {
	for _, prefix := range []string{name + `="`, "," + name + `="`} {
		i := strings.Index(labels, prefix)
		if i < 0 || prefix[0] != ',' && i != 0 {
			continue
		}
		rest := labels[i+len(prefix):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	return ""
}

// ParseCadvisor reads cAdvisor text (FilterCadvisor's output or the whole of it) into the CPU
// counters of each container. Series without a container name, or of the pause container
// ("POD"), are the pod's or the sandbox's and are left out. Every container is one pod's: the
// caller filters by pod first.
func ParseCadvisor(text []byte) (*Cadvisor, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("cAdvisor metrics: %w", err)
	}
	c := &Cadvisor{Containers: map[string]*ContainerCPU{}}
	period := map[string]float64{}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			container := label(m, "container")
			if container == "" || container == "POD" {
				continue
			}
			v := value(mf, m)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			cc := c.Containers[container]
			if cc == nil {
				cc = &ContainerCPU{}
				c.Containers[container] = cc
			}
			if name == metricPeriods || name == metricThrottled || name == metricThrSecs {
				cc.TimestampMs = max(cc.TimestampMs, m.GetTimestampMs())
			}
			switch name {
			case metricPeriods:
				cc.Periods, cc.HasCFS = v, true
			case metricThrottled:
				cc.Throttled = v
			case metricThrSecs:
				cc.ThrottledSeconds = v
			case metricUsage:
				cc.UsageSeconds += v // one series per CPU on old kubelets
			case metricQuota:
				cc.QuotaCores = v // microseconds per period until divided below
			case metricPeriod:
				period[container] = v
			}
		}
	}
	for name, cc := range c.Containers {
		// A quota of -1 (or none) is no limit; a period of 0 cannot divide.
		if p := period[name]; p > 0 && cc.QuotaCores > 0 {
			cc.QuotaCores /= p
		} else {
			cc.QuotaCores = 0
		}
	}
	return c, nil
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

func value(mf *dto.MetricFamily, m *dto.Metric) float64 {
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

// CadvisorInterval is each container's throttling between two cAdvisor reads seconds apart, for
// containers with CFS counters in both; a container that restarted (counters went down) is left
// out. When both reads carry cAdvisor's timestamps, the interval is theirs: cAdvisor refreshes
// its counters every housekeeping interval, so two scrapes seconds apart can show one reading
// (no interval: left out) or readings further apart than the scrapes.
func CadvisorInterval(a, b *Cadvisor, seconds float64) map[string]CgroupInterval {
	out := map[string]CgroupInterval{}
	if a == nil || b == nil || !(seconds > 0) {
		return out
	}
	for name, cb := range b.Containers {
		ca, ok := a.Containers[name]
		if !ok || !ca.HasCFS || !cb.HasCFS {
			continue
		}
		secondsApart := seconds
		if ca.TimestampMs > 0 && cb.TimestampMs > 0 {
			if cb.TimestampMs <= ca.TimestampMs {
				continue // one cAdvisor reading, scraped twice
			}
			secondsApart = float64(cb.TimestampMs-ca.TimestampMs) / 1000
		}
		periods, thr, secs := cb.Periods-ca.Periods, cb.Throttled-ca.Throttled, cb.ThrottledSeconds-ca.ThrottledSeconds
		if periods < 0 || thr < 0 || secs < 0 || thr > periods {
			continue
		}
		ci := CgroupInterval{Periods: periods, Throttled: thr, ThrottledPerSecond: secs / secondsApart}
		if periods > 0 {
			ci.ThrottledRatio = thr / periods
		}
		out[name] = ci
	}
	return out
}
