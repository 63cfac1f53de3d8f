package diagnose

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file infers a cluster's circuit-breaker thresholds from the stats when neither the config
// dump nor /clusters gives them. A cluster that tracks remaining capacity (Istio's do) has
// circuit_breakers.<priority>.remaining_* gauges: what is left before the threshold, so the
// threshold is what is left plus what is in use now.

// remainingGauge pairs a threshold with its remaining_* gauge and the gauge that counts what the
// threshold limits ("" when no stat counts it).
type remainingGauge struct {
	limit     breakerLimit
	remaining string
	inUse     string
}

var remainingGauges = []remainingGauge{
	{limitPending, "circuit_breakers_default_remaining_pending", "upstream_rq_pending_active"},
	{limitRequests, "circuit_breakers_default_remaining_rq", "upstream_rq_active"},
	{limitConnections, "circuit_breakers_default_remaining_cx", "upstream_cx_active"},
	// No stat counts the retries in flight: the threshold is at least what remains.
	{limitRetries, "circuit_breakers_default_remaining_retries", ""},
}

// inferredLimit is a threshold read off the gauges.
type inferredLimit struct {
	how        string // "circuit_breakers.default.remaining_pending 1 + upstream_rq_pending_active 0"
	source     string
	lowerBound bool // only "at least": what is in use is not in the stats
}

// inferBreakers reads the DEFAULT-priority thresholds the remaining_* gauges give; known stays
// false, and has tells which thresholds were inferred.
func inferBreakers(s *Snapshot, c string) breakers {
	b := breakers{inferred: map[string]inferredLimit{}}
	for _, g := range remainingGauges {
		rem, remSrc, ok := s.ClusterGauge(c, g.remaining)
		if !ok || rem < 0 {
			continue
		}
		v := rem
		il := inferredLimit{how: fmt.Sprintf("%s %.0f", dottedSuffix(g.remaining), rem), source: remSrc}
		if g.inUse != "" {
			used, usedSrc, ok := s.ClusterGauge(c, g.inUse)
			if !ok {
				continue // what remains alone does not give the threshold
			}
			v += used
			il.how += fmt.Sprintf(" + %s %.0f", g.inUse, used)
			il.source += " + " + strings.TrimPrefix(usedSrc, orDefault(s.StatsFile, "stats")+" ")
		} else {
			il.lowerBound = true
		}
		limit := uint32(istioUnlimited)
		if v < float64(istioUnlimited) {
			limit = uint32(v)
		}
		setLimit(&b.cb, g.limit, limit)
		b.inferred[g.limit.envoy] = il
	}
	if len(b.inferred) > 0 {
		b.source = orDefault(s.StatsFile, "stats") + " circuit_breakers.default.remaining_*"
	}
	return b
}

// setLimit sets a threshold of a circuit breaker.
func setLimit(cb *envoyadmin.CircuitBreaker, l breakerLimit, v uint32) {
	switch l.envoy {
	case limitPending.envoy:
		cb.MaxPendingRequests = &v
	case limitRequests.envoy:
		cb.MaxRequests = &v
	case limitConnections.envoy:
		cb.MaxConnections = &v
	case limitRetries.envoy:
		cb.MaxRetries = &v
	}
}

// has reports whether a threshold's value is known: from the configuration, or inferred.
func (b breakers) has(l breakerLimit) bool {
	_, inferred := b.inferred[l.envoy]
	return b.known || inferred
}

// atLeast is "at least " for a threshold inferred as a lower bound.
func (b breakers) atLeast(l breakerLimit) string {
	if b.inferred[l.envoy].lowerBound {
		return "at least "
	}
	return ""
}

// inferredNote says which thresholds were inferred from the stats and how, for explanations.
func (b breakers) inferredNote() string {
	if b.known || len(b.inferred) == 0 {
		return ""
	}
	var parts, unknown []string
	for _, g := range remainingGauges {
		if il, ok := b.inferred[g.limit.envoy]; ok {
			p := fmt.Sprintf("%s from %s", g.limit.envoy, il.how)
			if il.lowerBound {
				p += " (at least: no stat counts what is in use)"
			}
			parts = append(parts, p)
		} else {
			unknown = append(unknown, g.limit.envoy)
		}
	}
	note := " Without the config dump or /clusters, the limits are inferred from the stats at capture, as what remains plus what is in use (DEFAULT priority): " + strings.Join(parts, "; ") + "."
	if len(unknown) > 0 {
		note += " " + andList(unknown) + " cannot be inferred: the gauges are not in the stats."
	}
	return note
}

// andList joins words as prose: "a", "a and b", "a, b and c".
func andList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
