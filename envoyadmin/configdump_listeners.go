package envoyadmin

import (
	"net"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Listeners are walked at the JSON level: a listener's bulk is its network filters' configs
// (HTTP filters, access logs, tracing tags, RBAC), and only a few fields of the connection
// manager and TCP proxy matter here. Filter configs may be v3 typed_config or v2 Struct config
// with only the filter's name to say what it is.

const (
	dumpHCMType      = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	dumpTCPProxyType = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
)

var dumpAddressSpec = dumpSpec{
	"socket_address":         {"address": nil, "port_value": nil},
	"pipe":                   {"path": nil},
	"envoy_internal_address": {"server_listener_name": nil, "endpoint_id": nil},
}

var dumpChainMatchSpec = dumpSpec{"destination_port": nil, "transport_protocol": nil}

var dumpHCMSpec = dumpSpec{
	"stat_prefix":         nil,
	"rds":                 {"route_config_name": nil},
	"stream_idle_timeout": nil,
}

// dumpListener is a decoded listener with what the summary still needs to decide whether it is
// inbound and what its mTLS mode is.
type dumpListener struct {
	cfg  ListenerConfig
	ip   string
	port uint32
	// ignore marks the chains that do not serve application traffic (see dumpIgnoredChain).
	ignore []bool
}

// listener summarises one Listener (v3, or v2 envoy.api.v2.Listener) and returns the routes of
// the route configs inlined in its connection managers.
func (d *dumpDecoder) listener(raw []byte) (*dumpListener, []RouteConfig, error) {
	l := &dumpListener{}
	var chains [][]byte
	var ports map[string]uint32
	it := dumpObject(raw)
	for it.Next() {
		switch k := it.Key(); {
		case dumpKeyIs(k, "name"):
			l.cfg.Name = dumpString(it.Val())
		case dumpKeyIs(k, "address"):
			var a corev3.Address
			if err := d.decode(it.Val(), dumpAddressSpec, &a); err != nil {
				d.warnf("address: %v", err)
				continue
			}
			l.cfg.Address = dumpAddress(&a)
			l.ip, l.port = a.GetSocketAddress().GetAddress(), a.GetSocketAddress().GetPortValue()
		case dumpKeyIs(k, "traffic_direction"):
			l.cfg.Direction = dumpEnumName(it.Val(), corev3.TrafficDirection_name)
			if l.cfg.Direction == corev3.TrafficDirection_UNSPECIFIED.String() {
				l.cfg.Direction = ""
			}
		case dumpKeyIs(k, "filter_chains"):
			chains = append(chains, dumpArrayValues(it.Val())...)
		case dumpKeyIs(k, "default_filter_chain"):
			if !dumpIsNull(it.Val()) {
				chains = append(chains, it.Val())
			}
		case dumpKeyIs(k, "filter_chain_matcher"):
			ports = map[string]uint32{}
			dumpMatcherPorts(it.Val(), "", ports, 0)
		}
	}
	if err := it.Err(); err != nil {
		return nil, nil, err
	}
	var routes []RouteConfig
	for _, c := range chains {
		port := l.port
		if ports != nil {
			if p := ports[dumpStringField(c, "name")]; p != 0 {
				port = p
			}
		}
		fc, ignore, rs := d.filterChain(c, port)
		if fc.DestinationPort == 0 {
			fc.DestinationPort = ports[fc.Name]
		}
		l.cfg.FilterChains = append(l.cfg.FilterChains, fc)
		l.ignore = append(l.ignore, ignore)
		routes = append(routes, rs...)
	}
	return l, routes, nil
}

// filterChain summarises one filter chain; port, the port the listener's matcher sends to it or
// the listener's own, stands in for a missing destination_port match.
func (d *dumpDecoder) filterChain(raw []byte, port uint32) (fc FilterChain, ignore bool, routes []RouteConfig) {
	var tcpCluster string
	it := dumpObject(raw)
	for it.Next() {
		switch k := it.Key(); {
		case dumpKeyIs(k, "name"):
			fc.Name = dumpString(it.Val())
		case dumpKeyIs(k, "filter_chain_match"):
			var m listenerv3.FilterChainMatch
			if err := d.decode(it.Val(), dumpChainMatchSpec, &m); err != nil {
				d.warnf("filter chain %q: filter_chain_match: %v", fc.Name, err)
				continue
			}
			fc.DestinationPort = m.GetDestinationPort().GetValue()
			fc.TransportProtocol = m.GetTransportProtocol()
		case dumpKeyIs(k, "transport_socket"):
			t, err := d.downstreamSocket(it.Val(), 0)
			if err != nil {
				d.warnf("filter chain %q: %v", fc.Name, err)
			}
			fc.TLS, fc.RequireClientCertificate = fc.TLS || t.tls, fc.RequireClientCertificate || t.requireClientCert
		case dumpKeyIs(k, "tls_context"), dumpKeyIs(k, "hidden_envoy_deprecated_tls_context"):
			if dumpIsNull(it.Val()) {
				continue
			}
			t, err := d.downstreamTLSContext(it.Val())
			if err != nil {
				d.warnf("filter chain %q: tls_context: %v", fc.Name, err)
			}
			fc.TLS, fc.RequireClientCertificate = fc.TLS || t.tls, fc.RequireClientCertificate || t.requireClientCert
		case dumpKeyIs(k, "filters"):
			filters := it.Array()
			for filters.Next() {
				rs, cluster := d.networkFilter(&fc, filters.Val())
				routes = append(routes, rs...)
				if cluster != "" {
					tcpCluster = cluster
				}
			}
			it.After(&filters)
		}
	}
	return fc, dumpIgnoredChain(fc, port, tcpCluster), routes
}

// networkFilter adds one network filter to fc, and returns the routes of an inline route config
// and the cluster of a TCP proxy.
func (d *dumpDecoder) networkFilter(fc *FilterChain, raw []byte) (routes []RouteConfig, tcpCluster string) {
	name, typ, cfg, _ := dumpSocket(raw)
	if name == "" {
		name = typ
	}
	fc.Filters = append(fc.Filters, name)
	switch {
	case typ == dumpHCMType || typ == "" && (name == "envoy.http_connection_manager" || name == "envoy.filters.network.http_connection_manager"):
		var h hcmv3.HttpConnectionManager
		if err := d.decode(cfg, dumpHCMSpec, &h); err != nil {
			d.warnf("filter chain %q: %s: %v", fc.Name, name, err)
			return nil, ""
		}
		if fc.StatPrefix == "" {
			fc.StatPrefix = h.GetStatPrefix()
		}
		fc.StreamIdleTimeout = h.GetStreamIdleTimeout().AsDuration()
		fc.RouteConfigName = h.GetRds().GetRouteConfigName()
		if rc := dumpField(cfg, "route_config"); !dumpIsNull(rc) {
			rs, err := d.routeConfig(rc, true)
			if err != nil {
				d.warnf("filter chain %q: route_config: %v", fc.Name, err)
			}
			fc.RouteConfigName = dumpStringField(rc, "name")
			return rs, ""
		}
	case typ == dumpTCPProxyType || typ == "" && (name == "envoy.tcp_proxy" || name == "envoy.filters.network.tcp_proxy"):
		// Read without importing the TCP proxy's package: two string fields are all it takes.
		if fc.StatPrefix == "" {
			fc.StatPrefix = dumpStringField(cfg, "stat_prefix")
		}
		return nil, dumpStringField(cfg, "cluster")
	}
	return nil, ""
}

// dumpMatcherPorts reads a listener's filter_chain_matcher (the xDS matcher API, which Istio
// uses for virtualInbound since 1.16 instead of per-chain filter_chain_match) and records, for
// each chain it selects on a destination port, that port. port is the port matched so far.
func dumpMatcherPorts(m []byte, port string, ports map[string]uint32, depth int) {
	if depth > 16 {
		return
	}
	onMatch := func(om []byte, port string) {
		if a := dumpField(om, "action"); !dumpIsNull(a) {
			name := dumpStringField(a, "name")
			if n, err := strconv.ParseUint(port, 10, 32); err == nil && name != "" && ports[name] == 0 {
				ports[name] = uint32(n)
			}
		}
		if sub := dumpField(om, "matcher"); !dumpIsNull(sub) {
			dumpMatcherPorts(sub, port, ports, depth+1)
		}
	}
	tree := dumpField(m, "matcher_tree")
	input := dumpTypeName(dumpStringField(dumpField(dumpField(tree, "input"), "typed_config"), "@type"))
	isPort := strings.HasSuffix(input, ".DestinationPortInput")
	entries := dumpObject(dumpField(dumpField(tree, "exact_match_map"), "map"))
	for entries.Next() {
		key := port
		if isPort {
			key = string(entries.Key())
		}
		onMatch(entries.Val(), key)
	}
	ranges := dumpArray(dumpField(dumpField(dumpField(tree, "custom_match"), "typed_config"), "range_matchers"))
	for ranges.Next() {
		onMatch(dumpField(ranges.Val(), "on_match"), port)
	}
	onMatch(dumpField(m, "on_no_match"), port)
}

// dumpIstioAgentPorts are the ports of Istio's own agent and proxy endpoints (15020 merged
// metrics, 15021 health, 15090 Envoy's Prometheus stats), which are never mTLS.
var dumpIstioAgentPorts = map[uint32]bool{15020: true, 15021: true, 15090: true}

// dumpIgnoredChain reports whether a filter chain leaves out of a listener's mTLS mode because
// it carries no application traffic: a chain that drops connections (a TCP proxy to
// BlackHoleCluster, Istio's "virtualInbound-blackhole" for traffic sent to 15006 itself), or
// one for Istio's agent ports. Passthrough chains do count: Istio gives them the same TLS as the
// ports it knows, and traffic to undeclared ports goes through them.
func dumpIgnoredChain(fc FilterChain, listenerPort uint32, tcpCluster string) bool {
	port := fc.DestinationPort
	if port == 0 {
		port = listenerPort
	}
	return dumpIstioAgentPorts[port] || tcpCluster == "BlackHoleCluster" ||
		strings.Contains(strings.ToLower(fc.Name), "blackhole")
}

// dumpMTLSMode adds up an inbound listener's chains: STRICT when every chain serving
// application traffic requires a client certificate, PERMISSIVE when some do and some accept
// clients without one (Istio's PERMISSIVE puts a TLS and a raw_buffer chain on each port),
// DISABLE when none does (plaintext, or TLS without client certificates), and "" when the
// listener has no application chain.
func dumpMTLSMode(l *dumpListener) string {
	var mtls, other int
	for i, fc := range l.cfg.FilterChains {
		switch {
		case l.ignore[i]:
		case fc.TLS && fc.RequireClientCertificate:
			mtls++
		default:
			other++
		}
	}
	switch {
	case mtls == 0 && other == 0:
		return ""
	case mtls == 0:
		return "DISABLE"
	case other == 0:
		return "STRICT"
	default:
		return "PERMISSIVE"
	}
}

// dumpInbound reports whether a listener receives traffic for the proxy's own workload: Istio's
// virtualInbound, a listener marked INBOUND, one named inbound... (Kuma, OSM), or, in Istio
// before 1.5, a listener on one of the pod's own IPs.
func dumpInbound(l *dumpListener, boot *dumpBootstrap) bool {
	switch {
	case l.cfg.Name == "virtualInbound", l.cfg.Direction == "INBOUND":
		return true
	case l.cfg.Direction == "OUTBOUND":
		return false
	case strings.HasPrefix(strings.ToLower(l.cfg.Name), "inbound"):
		return true
	}
	return boot != nil && l.ip != "" && boot.instanceIPs[l.ip]
}

// dumpAddress renders an address as host:port, unix:path or envoy://listener/endpoint.
func dumpAddress(a *corev3.Address) string {
	switch {
	case a.GetSocketAddress() != nil:
		s := a.GetSocketAddress()
		return net.JoinHostPort(s.GetAddress(), strconv.FormatUint(uint64(s.GetPortValue()), 10))
	case a.GetPipe() != nil:
		return "unix:" + a.GetPipe().GetPath()
	case a.GetEnvoyInternalAddress() != nil:
		e := a.GetEnvoyInternalAddress()
		if e.GetEndpointId() == "" {
			return "envoy://" + e.GetServerListenerName()
		}
		return "envoy://" + e.GetServerListenerName() + "/" + e.GetEndpointId()
	}
	return ""
}

// dumpEnumName returns the name of an enum value given as a name or as a number.
func dumpEnumName(raw []byte, names map[int32]string) string {
	if s := dumpString(raw); s != "" {
		return s
	}
	if n, err := strconv.ParseInt(string(raw), 10, 32); err == nil {
		if s, ok := names[int32(n)]; ok {
			return s
		}
		return strconv.FormatInt(n, 10)
	}
	return ""
}

// dumpArrayValues returns the elements of a JSON array.
func dumpArrayValues(raw []byte) [][]byte {
	var out [][]byte
	it := dumpArray(raw)
	for it.Next() {
		out = append(out, it.Val())
	}
	return out
}
