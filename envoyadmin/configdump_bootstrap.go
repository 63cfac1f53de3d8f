package envoyadmin

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// The bootstrap is read for its node (who the proxy is) and its stats matcher (which stats the
// proxy records at all). The Bootstrap type itself is not decoded: its package links every
// bootstrap-level extension type, which the start-up budget cannot afford.

var dumpNodeSpec = dumpSpec{
	"id":                       nil,
	"cluster":                  nil,
	"metadata":                 nil,
	"user_agent_version":       nil,
	"user_agent_build_version": {"version": nil, "metadata": nil},
}

var dumpStringMatcherSpec = dumpSpec{
	"exact": nil, "prefix": nil, "suffix": nil, "contains": nil, "safe_regex": {"regex": nil},
}

// dumpBootstrap is what the bootstrap gives the summary.
type dumpBootstrap struct {
	proxy           ProxyInfo
	statsInclusions []string
	statsMatcherSet bool
	// instanceIPs are the pod's IPs (Istio's INSTANCE_IPS), which mark old inbound listeners.
	instanceIPs map[string]bool
}

// bootstrap reads the node and the stats matcher of a BootstrapConfigDump's bootstrap.
func (d *dumpDecoder) bootstrap(raw []byte) (*dumpBootstrap, error) {
	b := &dumpBootstrap{instanceIPs: map[string]bool{}}
	nodeRaw := dumpField(raw, "node")
	if !dumpIsNull(nodeRaw) {
		var node corev3.Node
		if err := d.decode(nodeRaw, dumpNodeSpec, &node); err != nil {
			d.warnf("node: %v", err)
		} else {
			b.node(&node, nodeRaw)
		}
	}
	sm := dumpField(dumpField(raw, "stats_config"), "stats_matcher")
	if !dumpIsNull(sm) {
		b.statsMatcherSet = true
		patterns := dumpArray(dumpField(dumpField(sm, "inclusion_list"), "patterns"))
		for patterns.Next() {
			var m matcherv3.StringMatcher
			if err := d.decode(patterns.Val(), dumpStringMatcherSpec, &m); err != nil {
				d.warnf("stats_matcher: %v", err)
				continue
			}
			s := dumpMatcherString(&m, false)
			if s == "" {
				if re := dumpStringField(patterns.Val(), "regex"); re != "" {
					s = "regex:" + re // v2
				}
			}
			if s != "" {
				b.statsInclusions = append(b.statsInclusions, s)
			}
		}
	}
	return b, nil
}

// node fills ProxyInfo from the node: Istio's metadata when present, else what the node id
// says (Istio's "sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local").
func (b *dumpBootstrap) node(node *corev3.Node, nodeRaw []byte) {
	md := node.GetMetadata().GetFields()
	str := func(keys ...string) string {
		for _, k := range keys {
			if s := md[k].GetStringValue(); s != "" {
				return s
			}
		}
		return ""
	}
	p := &b.proxy
	p.NodeID = node.GetId()
	p.Cluster = node.GetCluster()
	p.IstioVersion = str("ISTIO_VERSION")
	p.PodName = str("NAME", "POD_NAME")
	p.Namespace = str("NAMESPACE", "POD_NAMESPACE", "CONFIG_NAMESPACE")
	if parts := strings.Split(p.NodeID, "~"); len(parts) == 4 {
		// parts[2] is "<pod>.<namespace>" and parts[3] "<namespace>.svc.<domain>"; pod names
		// may hold dots, namespaces may not.
		ns, _, _ := strings.Cut(parts[3], ".")
		pod := parts[2]
		if ns != "" && strings.HasSuffix(pod, "."+ns) {
			pod = strings.TrimSuffix(pod, "."+ns)
		} else if i := strings.LastIndexByte(pod, '.'); i > 0 {
			pod, ns = pod[:i], cmp.Or(ns, pod[i+1:])
		}
		p.PodName, p.Namespace = cmp.Or(p.PodName, pod), cmp.Or(p.Namespace, ns)
	}
	p.ProxyConfig = dumpProxyConfig(md, dumpField(nodeRaw, "metadata"))
	for _, ip := range strings.Split(str("INSTANCE_IPS"), ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			b.instanceIPs[ip] = true
		}
	}
	p.EnvoyVersion = dumpEnvoyVersion(node, nodeRaw)
}

// dumpProxyConfig returns Istio's effective proxy config (PROXY_CONFIG metadata, an object in
// the node metadata) as compact JSON, or else the pod's proxy.istio.io/config annotation.
func dumpProxyConfig(md map[string]*structpb.Value, rawMetadata []byte) string {
	if pc := dumpField(rawMetadata, "PROXY_CONFIG"); !dumpIsNull(pc) {
		if s := dumpString(pc); s != "" {
			return s
		}
		var buf bytes.Buffer
		if json.Compact(&buf, pc) == nil {
			return buf.String()
		}
	}
	return md["ANNOTATIONS"].GetStructValue().GetFields()["proxy.istio.io/config"].GetStringValue()
}

// dumpEnvoyVersion returns the Envoy version ("1.19.3-dev") from the node's build version
// (v2 build_version, kept in v3 dumps as hidden_envoy_deprecated_build_version) or its
// user_agent_build_version.
func dumpEnvoyVersion(node *corev3.Node, nodeRaw []byte) string {
	for _, k := range [...]string{"build_version", "hidden_envoy_deprecated_build_version"} {
		// "<sha>/<version>/<status>/<build type>/<ssl>"
		if parts := strings.Split(dumpStringField(nodeRaw, k), "/"); len(parts) >= 2 && parts[1] != "" {
			return parts[1]
		}
	}
	if bv := node.GetUserAgentBuildVersion(); bv.GetVersion() != nil {
		v := bv.GetVersion()
		s := fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
		if label := bv.GetMetadata().GetFields()["build.label"].GetStringValue(); label != "" {
			s += "-" + label
		}
		return s
	}
	return node.GetUserAgentVersion()
}
