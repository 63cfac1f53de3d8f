package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// This file adds what the pod's events (events.yaml) say about istio-proxy to the SidecarRule's
// not-ready finding (MESH1301): the kubelet's probe failures, with the status the proxy's
// readiness endpoint answered, and its restart back-offs.

// proxyEventSummary is what the pod's events say about istio-proxy.
type proxyEventSummary struct {
	probeFailures int // readiness and startup probe failures, counted with repeats
	lastProbe     *corev1.Event
	backOffs      int // "Back-off restarting failed container istio-proxy"
	lastBackOff   *corev1.Event
}

// proxyEvents reads the istio-proxy events of the pod.
func proxyEvents(events []corev1.Event) proxyEventSummary {
	var sum proxyEventSummary
	evs := append([]corev1.Event(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(&evs[i]).Before(eventTime(&evs[j])) })
	for i := range evs {
		e := &evs[i]
		if !aboutProxy(e) {
			continue
		}
		switch {
		case e.Reason == "Unhealthy" && (strings.HasPrefix(e.Message, "Readiness probe failed") || strings.HasPrefix(e.Message, "Startup probe failed")):
			sum.probeFailures += eventCount(e)
			sum.lastProbe = e
		case e.Reason == "BackOff":
			sum.backOffs += eventCount(e)
			sum.lastBackOff = e
		}
	}
	return sum
}

// aboutProxy reports whether an event concerns the istio-proxy container: the kubelet names it
// in fieldPath (spec.containers{istio-proxy}, spec.initContainers{istio-proxy} for a native
// sidecar), and its probe messages name the status port.
func aboutProxy(e *corev1.Event) bool {
	return strings.Contains(e.InvolvedObject.FieldPath, "{"+proxyContainer+"}") ||
		strings.Contains(e.Message, ":15021/") || strings.Contains(e.Message, "container "+proxyContainer)
}

// eventCount is how many times the event happened: its series count, its count, or once.
func eventCount(e *corev1.Event) int {
	switch {
	case e.Series != nil && e.Series.Count > 0:
		return int(e.Series.Count)
	case e.Count > 0:
		return int(e.Count)
	}
	return 1
}

// eventTime is when the event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// probeStatus reads what the proxy's readiness endpoint answered from a probe failure message:
// "503" for "HTTP probe failed with statuscode: 503", "refused" when nothing listened.
func probeStatus(msg string) string {
	if _, code, ok := strings.Cut(msg, "statuscode: "); ok {
		return strings.Fields(code + " ")[0]
	}
	if strings.Contains(msg, "connection refused") {
		return "refused"
	}
	if strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "context deadline exceeded") {
		return "timeout"
	}
	return ""
}

// addProxyEvents adds the events' evidence and their reading to a not-ready finding.
func addProxyEvents(s *Snapshot, f *Finding) {
	if s.Events == nil {
		return
	}
	sum := proxyEvents(s.Events)
	if sum.probeFailures == 0 && sum.backOffs == 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "istio-proxy probe failures in the pod's events", Value: 0, Unit: UnitCount, Source: FileEvents})
		return
	}
	if e := sum.lastProbe; e != nil {
		f.Evidence = append(f.Evidence,
			Evidence{Label: "istio-proxy probe failures in the pod's events", Value: float64(sum.probeFailures), Unit: UnitCount, Source: FileEvents + " reason Unhealthy, count"},
			Evidence{Label: "last probe failure", Text: fmt.Sprintf("%s (%s)", clip(oneLine(e.Message), 160), eventTime(e).UTC().Format(time.RFC3339)), Source: FileEvents + " message"})
		switch probeStatus(e.Message) {
		case "503":
			f.Explanation += fmt.Sprintf(" The pod's events confirm it: the kubelet's probe of :15021/healthz/ready failed %d times with HTTP 503, which is what the proxy answers while Envoy runs but istiod has not yet sent (or it has not accepted) its listeners and clusters — it is not yet configured by istiod.", sum.probeFailures)
		case "refused":
			f.Explanation += fmt.Sprintf(" The pod's events show the probe of :15021 refused %d times: nothing listened on the proxy's status port, so pilot-agent was starting or restarting rather than waiting for istiod.", sum.probeFailures)
		case "timeout":
			f.Explanation += fmt.Sprintf(" The pod's events show the probe of :15021 timing out %d times: the proxy did not answer within the probe's timeout, as when it is starved of CPU or stuck loading a large configuration.", sum.probeFailures)
		}
	}
	if e := sum.lastBackOff; e != nil {
		f.Evidence = append(f.Evidence, Evidence{Label: "restart back-offs of istio-proxy in the pod's events", Value: float64(sum.backOffs), Unit: UnitCount, Source: FileEvents + " reason BackOff, count"})
	}
}
