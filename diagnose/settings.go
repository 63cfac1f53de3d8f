package diagnose

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Envoy's defaults for settings a cluster or route leaves unset.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultIdleTimeout    = time.Hour
	defaultRouteTimeout   = 15 * time.Second
	defaultBreakerLimit   = 1024
	defaultMaxRetries     = 3
	// istioUnlimited is the value Istio writes for "no limit" in circuit breakers.
	istioUnlimited = math.MaxUint32
)

// UpstreamSettings are one upstream cluster's effective resilience settings: what the proxy
// will do, with Envoy's defaults filled in and marked as such.
type UpstreamSettings struct {
	Cluster        envoyadmin.ClusterName `json:"cluster"`
	DiscoveryType  string                 `json:"discoveryType"`
	TLSMode        string                 `json:"tlsMode"`
	ConnectTimeout string                 `json:"connectTimeout"`
	IdleTimeout    string                 `json:"idleTimeout"`
	MaxConnections string                 `json:"maxConnections"`
	MaxPending     string                 `json:"maxPendingRequests"`
	MaxRequests    string                 `json:"maxRequests"`
	MaxRetries     string                 `json:"maxRetries"`
	Outlier        string                 `json:"outlierDetection"`
	// RouteTimeouts and Retries list the distinct settings of the routes that send traffic to
	// the cluster; empty when no route does (TCP or unused clusters).
	RouteTimeouts []string `json:"routeTimeouts,omitempty"`
	Retries       []string `json:"retries,omitempty"`
}

// Settings lists every cluster of a config dump with its effective settings, sorted by name.
func Settings(cfg *envoyadmin.ConfigSummary) []UpstreamSettings {
	routes := map[string][]envoyadmin.RouteConfig{}
	for _, r := range cfg.Routes {
		for _, c := range r.Clusters {
			routes[c.Name] = append(routes[c.Name], r)
		}
	}
	out := make([]UpstreamSettings, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		s := UpstreamSettings{
			Cluster:        c.Name,
			DiscoveryType:  c.DiscoveryType,
			TLSMode:        c.TLSMode,
			ConnectTimeout: durationOr(c.ConnectTimeout, defaultConnectTimeout),
			IdleTimeout:    durationOr(c.IdleTimeout, defaultIdleTimeout),
			Outlier:        outlierText(c.Outlier),
		}
		cb := defaultPriority(c.CircuitBreakers)
		s.MaxConnections = limitText(cb.MaxConnections, defaultBreakerLimit)
		s.MaxPending = limitText(cb.MaxPendingRequests, defaultBreakerLimit)
		s.MaxRequests = limitText(cb.MaxRequests, defaultBreakerLimit)
		s.MaxRetries = limitText(cb.MaxRetries, defaultMaxRetries)
		s.RouteTimeouts, s.Retries = routeSettings(routes[c.Name.Raw])
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Cluster.Raw < out[j].Cluster.Raw })
	return out
}

func defaultPriority(cbs []envoyadmin.CircuitBreaker) envoyadmin.CircuitBreaker {
	for _, cb := range cbs {
		if cb.Priority == "" || strings.EqualFold(cb.Priority, "DEFAULT") {
			return cb
		}
	}
	return envoyadmin.CircuitBreaker{Priority: "DEFAULT"}
}

func durationOr(d, def time.Duration) string {
	if d > 0 {
		return shortDuration(d)
	}
	return shortDuration(def) + " (default)"
}

// shortDuration prints 1h and 5m30s rather than 1h0m0s and 5m30s: config values are round.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func limitText(v *uint32, def uint32) string {
	switch {
	case v == nil:
		return fmt.Sprintf("%d (default)", def)
	case *v == istioUnlimited:
		return "unlimited"
	}
	return fmt.Sprint(*v)
}

func outlierText(o *envoyadmin.OutlierDetection) string {
	if o == nil {
		return "off"
	}
	var parts []string
	if o.Consecutive5xx != nil {
		parts = append(parts, fmt.Sprintf("%d×5xx", *o.Consecutive5xx))
	}
	if o.ConsecutiveGatewayFailure != nil {
		parts = append(parts, fmt.Sprintf("%d×gateway", *o.ConsecutiveGatewayFailure))
	}
	if o.Interval > 0 {
		parts = append(parts, "every "+o.Interval.String())
	}
	if o.BaseEjectionTime > 0 {
		parts = append(parts, "eject "+o.BaseEjectionTime.String())
	}
	if o.MaxEjectionPercent != nil {
		parts = append(parts, fmt.Sprintf("max %d%%", *o.MaxEjectionPercent))
	}
	if len(parts) == 0 {
		return "on (defaults)"
	}
	return strings.Join(parts, " ")
}

func routeSettings(rs []envoyadmin.RouteConfig) (timeouts, retries []string) {
	seenT, seenR := map[string]bool{}, map[string]bool{}
	for _, r := range rs {
		t := shortDuration(defaultRouteTimeout) + " (default)"
		if r.Timeout != nil {
			t = "none"
			if *r.Timeout > 0 {
				t = shortDuration(*r.Timeout)
			}
		}
		if !seenT[t] {
			seenT[t] = true
			timeouts = append(timeouts, t)
		}
		rt := "none"
		if r.Retry != nil {
			rt = fmt.Sprintf("%d×[%s]", r.Retry.NumRetries, r.Retry.RetryOn)
			if r.Retry.PerTryTimeout > 0 {
				rt += " per try " + shortDuration(r.Retry.PerTryTimeout)
			}
		}
		if !seenR[rt] {
			seenR[rt] = true
			retries = append(retries, rt)
		}
	}
	return timeouts, retries
}
