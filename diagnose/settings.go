package diagnose

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
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
// will do, with Envoy's defaults filled in and marked as such. JSON and YAML carry the values;
// the table renders them.
type UpstreamSettings struct {
	Cluster        envoyadmin.ClusterName `json:"cluster"`
	DiscoveryType  string                 `json:"discoveryType"`
	TLSMode        string                 `json:"tlsMode"`
	ConnectTimeout DurationSetting        `json:"connectTimeout"`
	IdleTimeout    DurationSetting        `json:"idleTimeout"`
	MaxConnections LimitSetting           `json:"maxConnections"`
	MaxPending     LimitSetting           `json:"maxPendingRequests"`
	MaxRequests    LimitSetting           `json:"maxRequests"`
	MaxRetries     LimitSetting           `json:"maxRetries"`
	// MaxRequestsPerConnection is 0 when unlimited (Envoy's default).
	MaxRequestsPerConnection uint32 `json:"maxRequestsPerConnection"`
	// Outlier is nil when outlier detection is off.
	Outlier *envoyadmin.OutlierDetection `json:"outlierDetection"`
	// Routes are the routes that send traffic to the cluster; empty when none does (TCP or
	// unused clusters).
	Routes []RouteSettings `json:"routes"`
}

// DurationSetting is a timeout; Default marks Envoy's value for an unset field.
type DurationSetting struct {
	Seconds float64 `json:"seconds"`
	Default bool    `json:"default"`
}

// LimitSetting is a circuit-breaker threshold; Unlimited marks Istio's 2^32-1, Default Envoy's
// value for an unset threshold.
type LimitSetting struct {
	Limit     uint32 `json:"limit"`
	Unlimited bool   `json:"unlimited"`
	Default   bool   `json:"default"`
}

// RouteSettings are the timeout and retries of one route to the cluster.
type RouteSettings struct {
	RouteConfig string `json:"routeConfig"`
	VirtualHost string `json:"virtualHost"`
	// Timeout is the route timeout; Seconds 0 with Default false means disabled.
	Timeout DurationSetting         `json:"timeout"`
	Retry   *envoyadmin.RetryPolicy `json:"retry"`
}

// Settings lists every cluster of a config dump with its effective settings, sorted by name.
func Settings(cfg *envoyadmin.ConfigSummary) []UpstreamSettings {
	routes := map[string][]RouteSettings{}
	for _, r := range cfg.Routes {
		rs := RouteSettings{RouteConfig: r.RouteConfigName, VirtualHost: r.VirtualHost, Retry: r.Retry,
			Timeout: DurationSetting{Seconds: defaultRouteTimeout.Seconds(), Default: true}}
		if r.Timeout != nil {
			rs.Timeout = DurationSetting{Seconds: r.Timeout.Seconds()}
		}
		for _, c := range r.Clusters {
			routes[c.Name] = append(routes[c.Name], rs)
		}
	}
	out := make([]UpstreamSettings, 0, len(cfg.Clusters))
	for _, c := range cfg.Clusters {
		cb := defaultPriority(c.CircuitBreakers)
		out = append(out, UpstreamSettings{
			Cluster:                  c.Name,
			DiscoveryType:            c.DiscoveryType,
			TLSMode:                  c.TLSMode,
			ConnectTimeout:           durationOr(c.ConnectTimeout, defaultConnectTimeout),
			IdleTimeout:              durationOr(c.IdleTimeout, defaultIdleTimeout),
			MaxConnections:           limitOr(cb.MaxConnections, defaultBreakerLimit),
			MaxPending:               limitOr(cb.MaxPendingRequests, defaultBreakerLimit),
			MaxRequests:              limitOr(cb.MaxRequests, defaultBreakerLimit),
			MaxRetries:               limitOr(cb.MaxRetries, defaultMaxRetries),
			MaxRequestsPerConnection: c.MaxRequestsPerConnection,
			Outlier:                  c.Outlier,
			Routes:                   routes[c.Name.Raw],
		})
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

func durationOr(d, def time.Duration) DurationSetting {
	if d > 0 {
		return DurationSetting{Seconds: d.Seconds()}
	}
	return DurationSetting{Seconds: def.Seconds(), Default: true}
}

func limitOr(v *uint32, def uint32) LimitSetting {
	switch {
	case v == nil:
		return LimitSetting{Limit: def, Default: true}
	case *v == istioUnlimited:
		return LimitSetting{Limit: *v, Unlimited: true}
	}
	return LimitSetting{Limit: *v}
}

// String prints 1h and 5m30s rather than 1h0m0s, with * for a default.
func (d DurationSetting) String() string {
	s := shortDuration(time.Duration(d.Seconds * float64(time.Second)))
	if d.Default {
		s += "*"
	}
	return s
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

// String prints the limit, "unlimited", and * for a default.
func (l LimitSetting) String() string { return string(l.appendText(nil)) }

// appendText appends String's text to b, for the table's rows.
func (l LimitSetting) appendText(b []byte) []byte {
	if l.Unlimited {
		return append(b, "unlimited"...)
	}
	b = strconv.AppendUint(b, uint64(l.Limit), 10)
	if l.Default {
		b = append(b, '*')
	}
	return b
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
		parts = append(parts, "every "+shortDuration(o.Interval))
	}
	if o.BaseEjectionTime > 0 {
		parts = append(parts, "eject "+shortDuration(o.BaseEjectionTime))
	}
	if o.MaxEjectionPercent != nil {
		parts = append(parts, fmt.Sprintf("max %d%%", *o.MaxEjectionPercent))
	}
	if len(parts) == 0 {
		return "on (defaults)"
	}
	return strings.Join(parts, " ")
}

// routeTexts lists the distinct timeouts and retry policies of a cluster's routes for the table.
func routeTexts(rs []RouteSettings) (timeouts, retries []string) {
	// However many routes a cluster has, they hold a few distinct timeouts and retry policies:
	// the lists are searched, not indexed in maps made for every row of the table.
	for _, r := range rs {
		t := r.Timeout.String()
		if r.Timeout.Seconds == 0 && !r.Timeout.Default {
			t = "none"
		}
		if !slices.Contains(timeouts, t) {
			timeouts = append(timeouts, t)
		}
		rt := "none"
		if r.Retry != nil {
			on := r.Retry.RetryOn
			if len(r.Retry.RetriableStatusCodes) > 0 {
				codes := make([]string, len(r.Retry.RetriableStatusCodes))
				for i, c := range r.Retry.RetriableStatusCodes {
					codes[i] = fmt.Sprint(c)
				}
				on += " " + strings.Join(codes, ",")
			}
			rt = fmt.Sprintf("%d×[%s]", r.Retry.NumRetries, on)
			if r.Retry.PerTryTimeout > 0 {
				rt += " per try " + shortDuration(r.Retry.PerTryTimeout)
			}
		}
		if !slices.Contains(retries, rt) {
			retries = append(retries, rt)
		}
	}
	return timeouts, retries
}
