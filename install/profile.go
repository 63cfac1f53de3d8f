// Package install holds the production Istio profile of `kubectl mesh install` and renders it
// two ways: Helm values for Istio's charts (base, istiod, gateway) and an IstioOperator for
// istioctl, plus the mesh-wide Telemetry that keeps access logs for failed requests only. The
// preflight checks and the Helm engine build on it.
package install

import (
	"fmt"
	"strings"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Profile names. Istio's demo profile (100% tracing, every access log, no resource requests)
// is not offered: it is not for production.
const (
	ProfileMinimal = "minimal" // istiod and the CRDs
	ProfileDefault = "default" // and an ingress gateway
	ProfileAmbient = "ambient" // istiod in ambient mode, the istio-cni node agent and ztunnel
)

const (
	// DefaultNamespace is where istiod runs and the mesh-wide configuration lives.
	DefaultNamespace = "istio-system"
	// DefaultGatewayNamespace is where the default profile's ingress gateway runs, apart from
	// istiod as Istio's Helm instructions have it.
	DefaultGatewayNamespace = "istio-ingress"
	// DefaultHub is the registry of Istio's images.
	DefaultHub = "docker.io/istio"
	// DefaultTracingSampling is the share of requests traced, in percent.
	DefaultTracingSampling = 1.0
)

// Resources are a container's requests and limits as Kubernetes quantities ("" leaves one out).
type Resources struct {
	RequestCPU, RequestMemory, LimitCPU, LimitMemory string
}

func (r Resources) values() map[string]any {
	out := map[string]any{}
	put := func(kind, res, v string) {
		if v == "" {
			return
		}
		m, _ := out[kind].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[kind] = m
		}
		m[res] = v
	}
	put("requests", "cpu", r.RequestCPU)
	put("requests", "memory", r.RequestMemory)
	put("limits", "cpu", r.LimitCPU)
	put("limits", "memory", r.LimitMemory)
	return out
}

// Profile is what `kubectl mesh install` sets up, typed: both renderings come from it.
type Profile struct {
	// Name is ProfileMinimal or ProfileDefault.
	Name string `json:"name"`
	// Version is the Istio release ("1.30.4"): the charts' version and the images' tag.
	Version string `json:"version"`
	// Revision names a revisioned control plane ("1-30"), for canary upgrades; "" is the
	// default revision.
	Revision string `json:"revision,omitempty"`
	Hub      string `json:"hub"`
	// Namespace holds istiod; GatewayNamespace the ingress gateway.
	Namespace        string `json:"namespace"`
	GatewayNamespace string `json:"gatewayNamespace,omitempty"`
	// Gateway installs the ingress gateway chart.
	Gateway bool `json:"gateway"`
	// Ambient installs the ambient data plane: istiod in ambient mode, istio-cni and ztunnel.
	Ambient bool `json:"ambient,omitempty"`
	// Ztunnel and CNI are their pods' resources, with Ambient.
	Ztunnel Resources `json:"ztunnel,omitzero"`
	CNI     Resources `json:"cni,omitzero"`
	// Istiod and Proxy are the control plane's and every sidecar's resources.
	Istiod Resources `json:"istiod"`
	Proxy  Resources `json:"proxy"`
	// TracingSampling is the percentage of requests traced.
	TracingSampling float64 `json:"tracingSampling"`
	// AccessLogFilter is the CEL filter of the mesh-wide access log: only failed requests.
	AccessLogFilter string `json:"accessLogFilter"`
	// HoldApplicationUntilProxyStarts starts the application after its sidecar is ready, so
	// its first calls do not fail (the usual cause of a crash-looping app at 1/2 after
	// injection).
	HoldApplicationUntilProxyStarts bool `json:"holdApplicationUntilProxyStarts"`
	// StatsInclusions are the proxyStatsMatcher inclusionRegexps: the Envoy stats the
	// diagnosis reads, which Istio's sidecars do not keep by default.
	StatsInclusions []string `json:"statsInclusions"`
}

// NewProfile returns the production profile of the given name, with the seeds' settings.
func NewProfile(name, version string) (*Profile, error) {
	switch name {
	case ProfileMinimal, ProfileDefault, ProfileAmbient:
	case "demo":
		return nil, fmt.Errorf("the demo profile is not for production (100%% tracing, every access log, no resource requests): use --profile minimal or --profile default")
	default:
		return nil, fmt.Errorf("unknown profile %q: use --profile minimal (istiod), default (istiod and an ingress gateway) or ambient (istiod, istio-cni and ztunnel)", name)
	}
	if version == "" {
		version = DefaultVersion
	}
	if _, _, err := minorOf(version); err != nil {
		return nil, err
	}
	return &Profile{
		Name: name, Version: version, Hub: DefaultHub,
		Namespace: DefaultNamespace, GatewayNamespace: DefaultGatewayNamespace,
		Gateway: name == ProfileDefault,
		Ambient: name == ProfileAmbient,
		// ztunnel's and istio-cni's chart defaults, set so that they show and -f can see them.
		Ztunnel:                         Resources{RequestCPU: "200m", RequestMemory: "512Mi"},
		CNI:                             Resources{RequestCPU: "100m", RequestMemory: "100Mi"},
		Istiod:                          Resources{RequestCPU: "500m", RequestMemory: "2048Mi"},
		Proxy:                           Resources{RequestCPU: "100m", RequestMemory: "128Mi", LimitCPU: "2000m", LimitMemory: "1024Mi"},
		TracingSampling:                 DefaultTracingSampling,
		AccessLogFilter:                 "response.code >= 400",
		HoldApplicationUntilProxyStarts: true,
		StatsInclusions:                 StatsInclusions(),
	}, nil
}

// StatsInclusions are the proxyStatsMatcher inclusionRegexps that keep what the diagnosis reads
// (the terms of envoyadmin.DefaultStatsFilter, which the live collection asks for): the
// per-upstream request, connection, timeout, overflow, reset, retry, outlier-detection,
// circuit-breaker, membership and TLS stats of every cluster, and the listeners' and
// connection managers' downstream and TLS stats. Istio matches them against the full stat name
// ("cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_time").
func StatsInclusions() []string {
	return []string{`(cluster|http|listener)\..*(` + envoyadmin.ClusterStatTerms + "|" + envoyadmin.DownstreamStatTerms + `).*`}
}

// ReleaseName is the Helm release of a chart: the chart's name, with the revision for the
// revisioned charts, as Istio's instructions name them.
func (p *Profile) ReleaseName(chart string) string {
	switch chart {
	case ChartBase:
		return "istio-base"
	case ChartGateway:
		return "istio-ingressgateway" + p.revisionSuffix()
	case ChartCNI:
		return "istio-cni"
	case ChartZtunnel:
		return "ztunnel"
	}
	return chart + p.revisionSuffix()
}

func (p *Profile) revisionSuffix() string {
	if p.Revision == "" {
		return ""
	}
	return "-" + p.Revision
}

// Validate checks what the flags may have set.
func (p *Profile) Validate() error {
	if p.TracingSampling < 0 || p.TracingSampling > 100 {
		return fmt.Errorf("--tracing-sampling is a percentage from 0 to 100 (got %v); production meshes trace 1 to 10%%", p.TracingSampling)
	}
	if p.Revision != "" && strings.ContainsAny(p.Revision, ". /") {
		return fmt.Errorf("--revision %q: a revision is a DNS label such as 1-30 (no dots)", p.Revision)
	}
	if p.Ambient && p.Revision != "" {
		return fmt.Errorf("--profile ambient with --revision: istio-cni is one per cluster and serves every revision; install the ambient profile as the default revision, then revisioned control planes with --profile minimal")
	}
	return nil
}
