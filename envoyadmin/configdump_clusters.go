package envoyadmin

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// dumpClusterSpec keeps the members of a Cluster that ClusterConfig reads. Transport sockets and
// typed_extension_protocol_options are read separately (see configdump_tls.go); metadata,
// load_assignment and filters, often most of a cluster's bytes, are never decoded.
var dumpClusterSpec = dumpSpec{
	"name":            nil,
	"type":            nil,
	"cluster_type":    {"name": nil},
	"connect_timeout": nil,
	"load_balancing_policy": {"policies": {
		"typed_extension_config": {"name": nil},
	}},
	"circuit_breakers": {"thresholds": {
		"priority":             nil,
		"max_connections":      nil,
		"max_pending_requests": nil,
		"max_requests":         nil,
		"max_retries":          nil,
	}},
	"outlier_detection":            nil,
	"common_http_protocol_options": {"idle_timeout": nil, "max_requests_per_connection": nil},
	"http2_protocol_options":       {},
	"max_requests_per_connection":  nil,
	"protocol_selection":           nil,
}

// The members of a Cluster read at the JSON level, by index in dumpClusterRaw.
const (
	dumpRawSocket = iota
	dumpRawSocketMatches
	dumpRawV2TLS
	dumpRawV2TLSHidden // v2's tls_context as v3 dumps of v2 resources name it
	dumpRawLBPolicy
	dumpRawHTTPOptions
	dumpRawCount
)

var dumpClusterRaw = [dumpRawCount]string{
	dumpRawSocket:        "transport_socket",
	dumpRawSocketMatches: "transport_socket_matches",
	dumpRawV2TLS:         "tls_context",
	dumpRawV2TLSHidden:   "hidden_envoy_deprecated_tls_context",
	dumpRawLBPolicy:      "lb_policy",
	dumpRawHTTPOptions:   "typed_extension_protocol_options",
}

var dumpHTTPOptionsSpec = dumpSpec{
	"common_http_protocol_options":   {"idle_timeout": nil, "max_requests_per_connection": nil},
	"explicit_http_config":           {"http2_protocol_options": {}, "http_protocol_options": {}},
	"use_downstream_protocol_config": {},
	"auto_config":                    {},
}

const dumpHTTPOptionsType = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// cluster summarises one Cluster resource (v3, or v2 envoy.api.v2.Cluster).
func (d *dumpDecoder) cluster(raw []byte) (*ClusterConfig, error) {
	var c clusterv3.Cluster
	var got [dumpRawCount][]byte
	if err := d.decodeCapture(raw, dumpClusterSpec, &c, dumpClusterRaw[:], got[:]); err != nil {
		return nil, err
	}
	out := &ClusterConfig{
		Name:            ParseClusterName(c.GetName()),
		DiscoveryType:   c.GetType().String(),
		ConnectTimeout:  c.GetConnectTimeout().AsDuration(),
		LBPolicy:        clusterv3.Cluster_ROUND_ROBIN.String(), // Envoy's default
		CircuitBreakers: dumpBreakers(c.GetCircuitBreakers()),
		Outlier:         dumpOutlier(c.GetOutlierDetection()),
	}
	if ct := c.GetClusterType(); ct != nil {
		out.DiscoveryType = ct.GetName() // envoy.clusters.aggregate, envoy.clusters.dynamic_forward_proxy
	}
	common := c.GetCommonHttpProtocolOptions()
	out.IdleTimeout = common.GetIdleTimeout().AsDuration()
	out.MaxRequestsPerConnection = dumpFirstUint32(common.GetMaxRequestsPerConnection(), c.GetMaxRequestsPerConnection())
	// With USE_DOWNSTREAM_PROTOCOL, http2_protocol_options only apply to HTTP/2 callers.
	out.HTTP2 = c.GetHttp2ProtocolOptions() != nil &&
		c.GetProtocolSelection() != clusterv3.Cluster_USE_DOWNSTREAM_PROTOCOL

	// lb_policy is read as written, because v2 names such as ORIGINAL_DST_LB are gone from the
	// v3 enum; load_balancing_policy, when set, replaces it.
	if lb := dumpEnumName(got[dumpRawLBPolicy], clusterv3.Cluster_LbPolicy_name); lb != "" {
		out.LBPolicy = lb
	}
	if pol := c.GetLoadBalancingPolicy().GetPolicies(); len(pol) > 0 {
		out.LBPolicy = pol[0].GetTypedExtensionConfig().GetName()
	}
	if !dumpIsNull(got[dumpRawHTTPOptions]) {
		d.clusterHTTPOptions(out, got[dumpRawHTTPOptions])
	}
	v2TLS := got[dumpRawV2TLS]
	if v2TLS == nil {
		v2TLS = got[dumpRawV2TLSHidden]
	}
	d.clusterTLS(out, got[dumpRawSocket], got[dumpRawSocketMatches], v2TLS)
	return out, nil
}

// clusterHTTPOptions applies the typed HttpProtocolOptions, which replaced the cluster's own
// protocol fields and win over them.
func (d *dumpDecoder) clusterHTTPOptions(out *ClusterConfig, opts []byte) {
	it := dumpObject(opts)
	for it.Next() {
		if dumpTypeName(dumpStringField(it.Val(), "@type")) != dumpHTTPOptionsType {
			continue
		}
		var o upstreamhttpv3.HttpProtocolOptions
		if err := d.decode(it.Val(), dumpHTTPOptionsSpec, &o); err != nil {
			d.warnf("typed_extension_protocol_options: %v", err)
			continue
		}
		common := o.GetCommonHttpProtocolOptions()
		if t := common.GetIdleTimeout(); t != nil {
			out.IdleTimeout = t.AsDuration()
		}
		if n := common.GetMaxRequestsPerConnection(); n != nil {
			out.MaxRequestsPerConnection = n.GetValue()
		}
		switch {
		case o.GetExplicitHttpConfig() != nil:
			out.HTTP2 = o.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
		case o.GetUseDownstreamProtocolConfig() != nil, o.GetAutoConfig() != nil:
			out.HTTP2 = false // HTTP/2 only for some callers or peers
		}
	}
}

// clusterTLS sets the cluster's TLS mode, SNI and SANs from its transport socket, its
// transport_socket_matches, or a v2 tls_context.
//
// Istio's auto mTLS is a match on endpoint metadata tlsMode=istio whose socket is ISTIO_MUTUAL,
// next to a plaintext default (a match without criteria, or no cluster socket at all).
func (d *dumpDecoder) clusterTLS(out *ClusterConfig, socket, matches, v2TLS []byte) {
	main := dumpSocketTLS{mode: TLSModePlaintext}
	var err error
	switch {
	case !dumpIsNull(socket):
		main, err = d.upstreamSocket(socket, 0)
	case !dumpIsNull(v2TLS):
		main, err = d.upstreamTLSContext(v2TLS)
	}
	if err != nil {
		d.warnf("transport socket: %v", err)
		out.TLSMode = ""
		return
	}
	var istio *dumpSocketTLS
	plainFallback := main.mode == TLSModePlaintext
	it := dumpArray(matches)
	for it.Next() {
		var criteria, ts []byte
		m := it.Object()
		for m.Next() {
			switch {
			case dumpKeyIs(m.Key(), "match"):
				criteria = m.Val()
			case dumpKeyIs(m.Key(), "transport_socket"):
				ts = m.Val()
			}
		}
		it.After(&m)
		got := dumpSocketTLS{mode: TLSModePlaintext}
		if !dumpIsNull(ts) {
			if got, err = d.upstreamSocket(ts, 0); err != nil {
				d.warnf("transport_socket_matches: %v", err)
				continue
			}
		}
		switch {
		case dumpStringField(criteria, "tlsMode") == "istio" && got.tls:
			if istio == nil {
				istio = &got
			}
		case !got.tls && dumpNoMembers(criteria):
			plainFallback = true
		}
	}
	if istio != nil && plainFallback {
		out.TLSMode, out.SNI, out.SANs = TLSModeAuto, istio.sni, istio.sans
		return
	}
	if istio != nil && !main.tls {
		// Every endpoint matches tlsMode=istio or none does; report what the match gives.
		main = *istio
	}
	out.TLSMode, out.SNI, out.SANs = main.mode, main.sni, main.sans
}

// dumpNoMembers reports whether raw is absent, null or an empty object: a match that every
// endpoint satisfies.
func dumpNoMembers(raw []byte) bool {
	it := dumpObject(raw)
	return !it.Next()
}

// dumpBreakers converts circuit breaker thresholds, one per priority.
func dumpBreakers(cb *clusterv3.CircuitBreakers) []CircuitBreaker {
	var out []CircuitBreaker
	for _, t := range cb.GetThresholds() {
		out = append(out, CircuitBreaker{
			Priority:           t.GetPriority().String(),
			MaxConnections:     dumpUint32Ptr(t.GetMaxConnections()),
			MaxPendingRequests: dumpUint32Ptr(t.GetMaxPendingRequests()),
			MaxRequests:        dumpUint32Ptr(t.GetMaxRequests()),
			MaxRetries:         dumpUint32Ptr(t.GetMaxRetries()),
		})
	}
	return out
}

// dumpOutlier converts outlier detection; present but empty means enabled with Envoy's defaults.
func dumpOutlier(od *clusterv3.OutlierDetection) *OutlierDetection {
	if od == nil {
		return nil
	}
	return &OutlierDetection{
		Consecutive5xx:            dumpUint32Ptr(od.GetConsecutive_5Xx()),
		ConsecutiveGatewayFailure: dumpUint32Ptr(od.GetConsecutiveGatewayFailure()),
		ConsecutiveLocalOrigin:    dumpUint32Ptr(od.GetConsecutiveLocalOriginFailure()),
		Interval:                  od.GetInterval().AsDuration(),
		BaseEjectionTime:          od.GetBaseEjectionTime().AsDuration(),
		MaxEjectionPercent:        dumpUint32Ptr(od.GetMaxEjectionPercent()),
	}
}

// dumpUint32Ptr returns the wrapper's value, or nil when it is unset.
func dumpUint32Ptr(v *wrapperspb.UInt32Value) *uint32 {
	if v == nil {
		return nil
	}
	n := v.GetValue()
	return &n
}

// dumpFirstUint32 returns the value of the first set wrapper, or 0.
func dumpFirstUint32(vs ...*wrapperspb.UInt32Value) uint32 {
	for _, v := range vs {
		if v != nil {
			return v.GetValue()
		}
	}
	return 0
}
