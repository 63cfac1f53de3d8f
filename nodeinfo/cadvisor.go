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
// kilobytes.
func FilterCadvisor(text []byte, namespace, pod string) []byte {
	podLabel, nsLabel := `pod="`+pod+`"`, `namespace="`+namespace+`"`
	has := func(line, label string) bool {
		return strings.Contains(line, "{"+label) || strings.Contains(line, ","+label)
	}
	var out bytes.Buffer
	var pending []string
	pendingFor := ""
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
				if f[2] != pendingFor {
					pending, pendingFor = nil, f[2]
				}
				pending = append(pending, line)
			}
			continue
		}
		if !has(line, podLabel) || !has(line, nsLabel) {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		if name == pendingFor {
			for _, p := range pending {
				out.WriteString(p + "\n")
			}
			pending = nil
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes()
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
// out.
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
		periods, thr, secs := cb.Periods-ca.Periods, cb.Throttled-ca.Throttled, cb.ThrottledSeconds-ca.ThrottledSeconds
		if periods < 0 || thr < 0 || secs < 0 || thr > periods {
			continue
		}
		ci := CgroupInterval{Periods: periods, Throttled: thr, ThrottledPerSecond: secs / seconds}
		if periods > 0 {
			ci.ThrottledRatio = thr / periods
		}
		out[name] = ci
	}
	return out
}
