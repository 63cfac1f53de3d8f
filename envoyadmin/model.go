// Package envoyadmin reads the outputs of Envoy's admin API (/stats in its three formats,
// /config_dump, /clusters, /certs, /server_info) and sidecar access logs, and turns them into
// the plain Go values below. The diagnosis engine reads only these values, never raw admin
// output, so the same rules work on a live proxy and on a captured folder.
package envoyadmin

import "time"

// StatsFormat says which admin endpoint a stats sample came from.
type StatsFormat string

// The stats formats Envoy's admin API serves.
const (
	StatsText       StatsFormat = "text"       // GET /stats
	StatsJSON       StatsFormat = "json"       // GET /stats?format=json
	StatsPrometheus StatsFormat = "prometheus" // GET /stats/prometheus
)

// StatsSample is one reading of a proxy's stats, in any admin format, normalised so that rules
// need not care which format it came from.
//
// Names are canonical: Envoy's dotted stat name with every '.' replaced by '_' and without the
// Prometheus "envoy_" prefix, so "cluster_manager.cds.update_rejected" (text) and
// "envoy_cluster_manager_cds_update_rejected" (Prometheus) are the same key
// "cluster_manager_cds_update_rejected". Stats scoped to an upstream cluster are not in Stats but
// in Clusters, keyed by the cluster's name, with the cluster part removed from the stat name.
type StatsSample struct {
	Format StatsFormat `json:"format"`
	// Stats are counters and gauges not scoped to a cluster, by canonical name. Prometheus series
	// of one metric that differ only by labels other than the cluster are summed.
	Stats map[string]float64 `json:"stats,omitempty"`
	// Strings are text-valued stats (for example "..._version_text": "v13") by canonical name.
	Strings map[string]string `json:"strings,omitempty"`
	// Histograms not scoped to a cluster, by canonical name
	// (for example "http_inbound_0_0_0_0_8080_downstream_rq_time").
	Histograms map[string]*Histogram `json:"histograms,omitempty"`
	// Clusters holds the stats of each upstream cluster by its name
	// ("outbound|9080||reviews.default.svc.cluster.local", "xds-grpc").
	Clusters map[string]*ClusterStats `json:"clusters,omitempty"`
	// Istio holds Istio's standard metrics (istio_requests_total,
	// istio_request_duration_milliseconds, istio_tcp_*), present in the Prometheus format only.
	Istio []IstioSeries `json:"istio,omitempty"`
	// Gauges records, for Prometheus samples, each stat's TYPE by the key it has in Stats or in
	// ClusterStats.Values: true for a gauge, false for a counter, absent when untyped. The text
	// and JSON formats do not say; use IsGauge, which falls back to Envoy's known gauges.
	Gauges map[string]bool `json:"gauges,omitempty"`
	// Skipped counts the input lines (text, Prometheus) or "stats" entries (JSON) that could not
	// be read and were left out, so that a caller can warn "3 lines of stats.txt did not parse".
	Skipped int `json:"skipped,omitempty"`
	// Warnings quote the first few skipped lines, with their line numbers, and any other part of
	// the input that was ignored.
	Warnings []string `json:"warnings,omitempty"`
}

// ClusterStats are the stats of one upstream cluster.
type ClusterStats struct {
	Name ClusterName `json:"name"`
	// Values are counters and gauges by canonical stat suffix: "upstream_rq_timeout",
	// "circuit_breakers_default_rq_pending_open", "outlier_detection_ejections_active",
	// "upstream_rq_503", "upstream_rq_5xx", "ssl_connection_error".
	Values map[string]float64 `json:"values,omitempty"`
	// Histograms by canonical stat suffix: "upstream_rq_time", "upstream_cx_connect_ms".
	Histograms map[string]*Histogram `json:"histograms,omitempty"`
}

// Histogram is one Envoy histogram, in milliseconds for the latency histograms. Prometheus (and
// JSON with buckets) give cumulative buckets; the text and JSON formats give Envoy's computed
// quantiles instead. Either or both may be present.
type Histogram struct {
	// Buckets are cumulative counts by upper bound, ascending; the last bound is +Inf when the
	// source had one.
	Buckets []Bucket `json:"buckets,omitempty"`
	Count   float64  `json:"count"`
	Sum     float64  `json:"sum"`
	// Quantiles are Envoy's computed quantiles, ascending by Q.
	Quantiles []Quantile `json:"quantiles,omitempty"`
	// NoValues is true for a text histogram reported as "No recorded values".
	NoValues bool `json:"noValues,omitempty"`
}

// Bucket is one cumulative histogram bucket: Count observations were <= UpperBound.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      float64 `json:"count"`
}

// Quantile is one of Envoy's computed quantiles. Interval is over Envoy's last stats flush
// interval (not the capture window) and Cumulative is since the proxy started; either is NaN when
// Envoy had no value ("nan" in the text format, null in JSON).
type Quantile struct {
	Q          float64 `json:"q"` // 0..1: P99 is 0.99
	Interval   float64 `json:"interval"`
	Cumulative float64 `json:"cumulative"`
}

// IstioSeries is one series of an Istio standard metric from /stats/prometheus.
type IstioSeries struct {
	// Metric is the Prometheus metric name without suffix: "istio_requests_total",
	// "istio_request_duration_milliseconds", "istio_tcp_connections_opened_total", ...
	Metric string            `json:"metric"`
	Labels map[string]string `json:"labels"`
	// Value is the counter or gauge value; for a histogram it is the observation count.
	Value     float64    `json:"value"`
	Histogram *Histogram `json:"histogram,omitempty"`
}

// ClusterName is an upstream cluster name, split by Istio's convention
// direction|port|subset|host ("outbound|9080|v2|reviews.default.svc.cluster.local",
// "inbound|8080||", "inbound-vip|9080|http|details.bookinfo.svc.cluster.local"). Names that do not
// follow it ("xds-grpc", "PassthroughCluster", Consul's and Kuma's names) have only Raw set.
type ClusterName struct {
	Raw       string `json:"raw"`
	Direction string `json:"direction,omitempty"` // outbound, inbound, inbound-vip
	Port      int    `json:"port,omitempty"`
	// Subset is the DestinationRule subset of an outbound cluster.
	Subset string `json:"subset,omitempty"`
	// PortName is the third field of an inbound cluster, which Istio fills with the service
	// port's name ("http"), not a subset.
	PortName string `json:"portName,omitempty"`
	Host     string `json:"host,omitempty"`
}

// String returns the cluster's name as Envoy reports it.
func (n ClusterName) String() string { return n.Raw }

// ConfigSummary is what the diagnosis needs from a /config_dump: the effective resilience and TLS
// settings of every cluster, route and inbound listener.
type ConfigSummary struct {
	// Proxy identifies the proxy from the bootstrap's node (Istio version, pod, namespace).
	Proxy     ProxyInfo        `json:"proxy"`
	Clusters  []ClusterConfig  `json:"clusters,omitempty"`
	Routes    []RouteConfig    `json:"routes,omitempty"`
	Listeners []ListenerConfig `json:"listeners,omitempty"`
	// Endpoints come from an EndpointsConfigDump (config_dump?include_eds).
	Endpoints []ClusterEndpoints `json:"endpoints,omitempty"`
	// Secrets come from a SecretsConfigDump (certificates, never keys).
	Secrets []Cert `json:"secrets,omitempty"`
	// StatsInclusions are the bootstrap's stats_matcher inclusion patterns (Istio's
	// proxyStatsMatcher), each as "prefix:...", "suffix:...", "exact:..." or "regex:...".
	// Empty with StatsMatcherSet true means Envoy's default of recording everything is overridden.
	StatsInclusions []string `json:"statsInclusions,omitempty"`
	StatsMatcherSet bool     `json:"statsMatcherSet,omitempty"`
	// Rejected lists resources whose last update Envoy rejected (error_state in the dump).
	Rejected []RejectedResource `json:"rejected,omitempty"`
	// Warming names the clusters and listeners still warming ("cluster outbound|443||x"):
	// waiting for their endpoints, a secret or an initial fetch.
	Warming []string `json:"warming,omitempty"`
	// Warnings name the parts of the dump that could not be decoded and were skipped.
	Warnings []string `json:"warnings,omitempty"`
}

// ProxyInfo identifies the proxy that produced a config dump.
type ProxyInfo struct {
	NodeID       string `json:"nodeId,omitempty"`
	Cluster      string `json:"cluster,omitempty"`
	IstioVersion string `json:"istioVersion,omitempty"`
	EnvoyVersion string `json:"envoyVersion,omitempty"`
	PodName      string `json:"podName,omitempty"`
	Namespace    string `json:"namespace,omitempty"`
	// ProxyConfig is the raw proxy.istio.io/config annotation or PROXY_CONFIG metadata, when set.
	ProxyConfig string `json:"proxyConfig,omitempty"`
}

// TLS modes of an upstream cluster's transport socket.
const (
	TLSModeIstioMutual = "ISTIO_MUTUAL" // Istio's SDS "default" certificate and ROOTCA validation
	TLSModeMutual      = "MUTUAL"       // client certificate of the user's own
	TLSModeSimple      = "SIMPLE"       // TLS without client certificate
	TLSModePlaintext   = "DISABLE"      // no TLS
	// TLSModeAuto is Istio's auto mTLS: a tlsMode-istio transport_socket_match with a plaintext
	// fallback, so endpoints with a sidecar get ISTIO_MUTUAL and the others plaintext.
	TLSModeAuto = "AUTO_ISTIO_MUTUAL"
)

// ClusterConfig is one cluster's effective settings. Pointer and zero Duration fields mean "not
// set in the config", so Envoy's default applies; the Default* helpers say what that default is.
type ClusterConfig struct {
	Name           ClusterName   `json:"name"`
	Source         string        `json:"source"`        // "static" or "dynamic"
	DiscoveryType  string        `json:"discoveryType"` // EDS, STRICT_DNS, LOGICAL_DNS, STATIC, ORIGINAL_DST
	ConnectTimeout time.Duration `json:"connectTimeout,omitempty"`
	// CircuitBreakers has one entry per priority present in the config ("DEFAULT", "HIGH").
	CircuitBreakers []CircuitBreaker  `json:"circuitBreakers,omitempty"`
	Outlier         *OutlierDetection `json:"outlierDetection,omitempty"`
	TLSMode         string            `json:"tlsMode"`        // one of the TLSMode* constants
	SNI             string            `json:"sni,omitempty"`  // upstream TLS SNI
	SANs            []string          `json:"sans,omitempty"` // subject alt names the upstream must present
	// IdleTimeout is the upstream connection pool's idle timeout
	// (common_http_protocol_options.idle_timeout); Envoy's default is 1h.
	IdleTimeout              time.Duration `json:"idleTimeout,omitempty"`
	MaxRequestsPerConnection uint32        `json:"maxRequestsPerConnection,omitempty"`
	HTTP2                    bool          `json:"http2,omitempty"` // upstream speaks HTTP/2
	LBPolicy                 string        `json:"lbPolicy,omitempty"`
	// VersionInfo is the xDS version the cluster came with.
	VersionInfo string `json:"versionInfo,omitempty"`
}

// CircuitBreaker is one priority's thresholds; nil means Envoy's default (1024 for connections,
// pending and requests; 3 for retries). Istio sets them to 2^32-1 when no DestinationRule does.
type CircuitBreaker struct {
	Priority           string  `json:"priority"`
	MaxConnections     *uint32 `json:"maxConnections,omitempty"`
	MaxPendingRequests *uint32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        *uint32 `json:"maxRequests,omitempty"`
	MaxRetries         *uint32 `json:"maxRetries,omitempty"`
}

// OutlierDetection is a cluster's outlier detection as configured.
type OutlierDetection struct {
	Consecutive5xx            *uint32       `json:"consecutive5xx,omitempty"`
	ConsecutiveGatewayFailure *uint32       `json:"consecutiveGatewayFailure,omitempty"`
	ConsecutiveLocalOrigin    *uint32       `json:"consecutiveLocalOriginFailure,omitempty"`
	Interval                  time.Duration `json:"interval,omitempty"`
	BaseEjectionTime          time.Duration `json:"baseEjectionTime,omitempty"`
	MaxEjectionPercent        *uint32       `json:"maxEjectionPercent,omitempty"`
}

// RouteConfig is one route of one virtual host.
type RouteConfig struct {
	RouteConfigName string   `json:"routeConfig"` // "9080", "inbound|8080||", "http.8080"
	VirtualHost     string   `json:"virtualHost"`
	Domains         []string `json:"domains,omitempty"`
	Name            string   `json:"name,omitempty"`  // route name ("default", VirtualService name)
	Match           string   `json:"match,omitempty"` // "prefix /", "path /x", "regex ..."
	// Clusters are the route's target clusters; more than one for weighted routes.
	Clusters []WeightedCluster `json:"clusters,omitempty"`
	// Timeout is the route timeout; nil means not set (Envoy's default is 15s; Istio sets 0s,
	// disabled, when no VirtualService sets one). Zero means disabled.
	Timeout *time.Duration `json:"timeout,omitempty"`
	Retry   *RetryPolicy   `json:"retry,omitempty"`
	// DirectResponse and Redirect routes have no cluster.
	DirectResponse int `json:"directResponse,omitempty"`
}

// WeightedCluster is a route target with its weight (100 for a single cluster).
type WeightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

// RetryPolicy is a route's retry policy.
type RetryPolicy struct {
	RetryOn              string        `json:"retryOn"`
	NumRetries           uint32        `json:"numRetries"` // Envoy's default is 1 when unset
	PerTryTimeout        time.Duration `json:"perTryTimeout,omitempty"`
	RetriableStatusCodes []uint32      `json:"retriableStatusCodes,omitempty"`
}

// ListenerConfig is one listener with what decides mTLS on it.
type ListenerConfig struct {
	Name      string `json:"name"`                // "virtualInbound", "0.0.0.0_9080", "10.96.0.10_53"
	Address   string `json:"address"`             // "0.0.0.0:15006"
	Direction string `json:"direction,omitempty"` // INBOUND, OUTBOUND or "" as Envoy reports it
	// Inbound is true for Istio's virtualInbound listener and listeners with direction INBOUND.
	Inbound      bool          `json:"inbound"`
	FilterChains []FilterChain `json:"filterChains,omitempty"`
	// MTLSMode is what the filter chains add up to for inbound traffic: "STRICT" when every chain
	// that serves application traffic requires a client certificate, "PERMISSIVE" when a plaintext
	// chain sits beside an mTLS one, "DISABLE" when none terminates TLS, "" for outbound listeners.
	MTLSMode string `json:"mtlsMode,omitempty"`
}

// FilterChain is one filter chain of a listener.
type FilterChain struct {
	Name string `json:"name,omitempty"`
	// DestinationPort is the filter_chain_match destination port, 0 when any.
	DestinationPort   uint32 `json:"destinationPort,omitempty"`
	TransportProtocol string `json:"transportProtocol,omitempty"` // "tls", "raw_buffer", ""
	// TLS is true when the chain terminates TLS (a DownstreamTlsContext transport socket).
	TLS bool `json:"tls"`
	// RequireClientCertificate is the DownstreamTlsContext's require_client_certificate.
	RequireClientCertificate bool `json:"requireClientCertificate"`
	// Filters are the network filters' names, such as envoy.filters.network.http_connection_manager.
	Filters []string `json:"filters,omitempty"`
	// RouteConfigName is the HTTP connection manager's RDS route config name, when any.
	RouteConfigName string `json:"routeConfigName,omitempty"`
	// StreamIdleTimeout and RequestTimeout come from the HTTP connection manager.
	StreamIdleTimeout time.Duration `json:"streamIdleTimeout,omitempty"`
	// StatPrefix is the HTTP connection manager's or TCP proxy's stat prefix.
	StatPrefix string `json:"statPrefix,omitempty"`
}

// ClusterEndpoints are the endpoints of one cluster from an EndpointsConfigDump.
type ClusterEndpoints struct {
	Cluster   string     `json:"cluster"`
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Endpoint is one endpoint with its EDS health status.
type Endpoint struct {
	Address      string `json:"address"`                // host:port
	HealthStatus string `json:"healthStatus,omitempty"` // HEALTHY, UNHEALTHY, DRAINING, UNKNOWN...
	Weight       uint32 `json:"weight,omitempty"`
	Locality     string `json:"locality,omitempty"`
	// TLSMode is the endpoint's istio tlsMode metadata ("istio" when it has a sidecar).
	TLSMode string `json:"tlsMode,omitempty"`
}

// RejectedResource is an xDS resource whose last update the proxy rejected.
type RejectedResource struct {
	Kind    string    `json:"kind"` // cluster, listener, route, secret
	Name    string    `json:"name"`
	Details string    `json:"details"`
	When    time.Time `json:"when,omitempty"`
}

// UpstreamClusters is the /clusters output.
type UpstreamClusters struct {
	Clusters []UpstreamCluster `json:"clusters"`
}

// UpstreamCluster is one cluster of /clusters with its hosts as the proxy sees them now.
type UpstreamCluster struct {
	Name        ClusterName `json:"name"`
	AddedViaAPI bool        `json:"addedViaApi"`
	// CircuitBreakers from /clusters' "default_priority::max_connections::..." lines or JSON.
	CircuitBreakers []CircuitBreaker `json:"circuitBreakers,omitempty"`
	Hosts           []UpstreamHost   `json:"hosts,omitempty"`
}

// UpstreamHost is one host of an upstream cluster.
type UpstreamHost struct {
	Address string `json:"address"` // host:port
	// HealthFlags are Envoy's flags without the leading '/' ("failed_outlier_check",
	// "failed_active_hc", "pending_dynamic_removal", "failed_eds_health"); empty when healthy.
	HealthFlags []string `json:"healthFlags,omitempty"`
	// EDSHealth is the EDS health status (HEALTHY, UNHEALTHY, DRAINING...), when reported.
	EDSHealth string `json:"edsHealth,omitempty"`
	Weight    uint32 `json:"weight,omitempty"`
	Zone      string `json:"zone,omitempty"`
	// Stats are the per-host counters and gauges ("cx_connect_fail", "rq_timeout", "rq_error",
	// "rq_total", "rq_success", "cx_active", "rq_active"); absent means zero.
	Stats map[string]uint64 `json:"stats,omitempty"`
	// SuccessRate is the outlier detector's success rate, when it computes one (-1 otherwise).
	SuccessRate float64 `json:"successRate,omitempty"`
}

// Healthy reports whether the host carries no failure health flag.
func (h UpstreamHost) Healthy() bool { return len(h.HealthFlags) == 0 }

// Cert is one certificate the proxy holds, from /certs or an SDS SecretsConfigDump. Private keys
// are never read.
type Cert struct {
	// Secret is the SDS secret or /certs entry it belongs to ("default", "ROOTCA", a file path).
	Secret string `json:"secret"`
	// CA is true for trust anchors (ca_cert, validation context), false for the proxy's own chain.
	CA              bool      `json:"ca"`
	SerialNumber    string    `json:"serialNumber,omitempty"`
	Subject         string    `json:"subject,omitempty"`
	SubjectAltNames []string  `json:"subjectAltNames,omitempty"` // spiffe://cluster.local/ns/x/sa/y
	NotBefore       time.Time `json:"notBefore,omitempty"`
	NotAfter        time.Time `json:"notAfter,omitempty"`
	// DaysUntilExpiration as reported by /certs, when it was (-1 if absent).
	DaysUntilExpiration int64 `json:"daysUntilExpiration,omitempty"`
}

// ServerInfo is the /server_info output.
type ServerInfo struct {
	Version     string        `json:"version"` // full Envoy build string
	State       string        `json:"state"`   // LIVE, DRAINING, PRE_INITIALIZING, INITIALIZING
	Uptime      time.Duration `json:"uptime"`  // uptime_current_epoch
	Concurrency int           `json:"concurrency,omitempty"`
	NodeID      string        `json:"nodeId,omitempty"`
	// IstioVersion from the node metadata, when present.
	IstioVersion string `json:"istioVersion,omitempty"`
}

// AccessLogEntry is one sidecar access-log line. Durations are -1 when the log said "-".
type AccessLogEntry struct {
	Line      int       `json:"line"`
	Timestamp time.Time `json:"timestamp,omitempty"` // the request's start time
	Method    string    `json:"method,omitempty"`
	Path      string    `json:"path,omitempty"`
	Protocol  string    `json:"protocol,omitempty"`
	Code      int       `json:"code"` // 0 for TCP and for requests that got no response
	// Flags are the response flags ("UF", "URX"); empty when the log said "-".
	Flags []string `json:"flags,omitempty"`
	// Details is %RESPONSE_CODE_DETAILS% ("via_upstream",
	// "upstream_reset_before_response_started{connection_termination}").
	Details string `json:"details,omitempty"`
	// ConnectionTermination is %CONNECTION_TERMINATION_DETAILS%.
	ConnectionTermination string `json:"connectionTermination,omitempty"`
	// TransportFailure is %UPSTREAM_TRANSPORT_FAILURE_REASON% ("delayed connect error: 111",
	// "TLS_error:...").
	TransportFailure string        `json:"transportFailure,omitempty"`
	BytesReceived    int64         `json:"bytesReceived"`
	BytesSent        int64         `json:"bytesSent"`
	Duration         time.Duration `json:"duration"`
	// UpstreamServiceTime is x-envoy-upstream-service-time: the time the upstream took.
	UpstreamServiceTime time.Duration `json:"upstreamServiceTime"`
	Authority           string        `json:"authority,omitempty"`
	UpstreamHost        string        `json:"upstreamHost,omitempty"`
	UpstreamCluster     string        `json:"upstreamCluster,omitempty"`
	RouteName           string        `json:"routeName,omitempty"`
	// GRPCStatus is %GRPC_STATUS% ("Unavailable", "14"), where the format logs it.
	GRPCStatus string `json:"grpcStatus,omitempty"`
	// Format names the line's format: "istio", "istio-1.1", "envoy", "json".
	Format string `json:"format"`
}

// ResetError is the parsed form of the error Envoy sends as a 503 body:
// "upstream connect error or disconnect/reset before headers. [retried and the latest ]reset
// reason: R[, transport failure reason: T]".
type ResetError struct {
	Retried          bool   `json:"retried"`
	Reason           string `json:"reason"`                     // "connection termination"
	TransportFailure string `json:"transportFailure,omitempty"` // "delayed connect error: 111"
}
