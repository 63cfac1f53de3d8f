package install

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Istio's Helm charts, in the order they install: the CRDs and cluster roles, the control
// plane, then the ingress gateway, whose pods need istiod to inject them.
const (
	ChartBase    = "base"
	ChartIstiod  = "istiod"
	ChartGateway = "gateway"
	ChartCNI     = "cni"
	ChartZtunnel = "ztunnel"
	// KeyOperator is the key of -f and --set overrides that go into the IstioOperator's spec.
	KeyOperator = "operator"
)

// Chart is one chart the profile installs and the release that holds it.
type Chart struct {
	Name      string `json:"chart"`
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
}

// Charts lists the charts to install, in order.
func (p *Profile) Charts() []Chart {
	out := []Chart{
		{ChartBase, p.ReleaseName(ChartBase), p.Namespace},
		{ChartIstiod, p.ReleaseName(ChartIstiod), p.Namespace},
	}
	if p.Ambient {
		// istio-cni before ztunnel: ztunnel waits for the agent's socket to be ready.
		out = append(out, Chart{ChartCNI, p.ReleaseName(ChartCNI), p.Namespace}, Chart{ChartZtunnel, p.ReleaseName(ChartZtunnel), p.Namespace})
	}
	if p.Gateway {
		out = append(out, Chart{ChartGateway, p.ReleaseName(ChartGateway), p.GatewayNamespace})
	}
	return out
}

// meshConfig is the mesh-wide configuration both renderings carry.
func (p *Profile) meshConfig() map[string]any {
	return map[string]any{
		"defaultConfig": map[string]any{
			"holdApplicationUntilProxyStarts": p.HoldApplicationUntilProxyStarts,
			"tracing":                         map[string]any{"sampling": p.TracingSampling},
			"proxyStatsMatcher":               map[string]any{"inclusionRegexps": toAny(p.StatsInclusions)},
		},
	}
}

// HelmValues returns the values of one chart for the profile, before overrides.
func (p *Profile) HelmValues(chart string) (map[string]any, error) {
	var v map[string]any
	switch chart {
	case ChartBase:
		v = map[string]any{"global": map[string]any{"istioNamespace": p.Namespace}}
	case ChartIstiod:
		v = map[string]any{
			"global": map[string]any{
				"hub": p.Hub, "tag": p.Version, "istioNamespace": p.Namespace,
				"proxy": map[string]any{"resources": p.Proxy.values()},
			},
			"pilot": map[string]any{
				"resources":     p.Istiod.values(),
				"traceSampling": p.TracingSampling,
			},
			"meshConfig": p.meshConfig(),
		}
	case ChartGateway:
		v = map[string]any{
			"resources": p.Proxy.values(),
			// Two replicas at least: one gateway pod is an outage during its own rollout.
			"autoscaling": map[string]any{"minReplicas": int64(2)},
		}
	case ChartCNI:
		v = map[string]any{"profile": ProfileAmbient, "global": map[string]any{"hub": p.Hub, "tag": p.Version}, "resources": p.CNI.values()}
	case ChartZtunnel:
		v = map[string]any{"profile": ProfileAmbient, "hub": p.Hub, "tag": p.Version, "resources": p.Ztunnel.values()}
	default:
		return nil, fmt.Errorf("unknown chart %q (the profiles install %s, %s, %s, %s and %s)", chart, ChartBase, ChartIstiod, ChartGateway, ChartCNI, ChartZtunnel)
	}
	if p.Ambient && chart == ChartIstiod {
		v["profile"] = ProfileAmbient
	}
	if p.Revision != "" && chart != ChartBase {
		v["revision"] = p.Revision
	}
	return v, nil
}

// IstioOperator renders the profile as an IstioOperator for `istioctl install -f`.
func (p *Profile) IstioOperator() *unstructured.Unstructured {
	gw := map[string]any{
		"name": "istio-ingressgateway", "enabled": p.Gateway, "namespace": p.GatewayNamespace,
		"k8s": map[string]any{"resources": p.Proxy.values(), "hpaSpec": map[string]any{"minReplicas": int64(2)}},
	}
	spec := map[string]any{
		"profile": p.Name, "hub": p.Hub, "tag": p.Version,
		"meshConfig": p.meshConfig(),
		"components": map[string]any{
			"pilot":           map[string]any{"k8s": map[string]any{"resources": p.Istiod.values()}},
			"ingressGateways": []any{gw},
		},
		"values": map[string]any{
			"global": map[string]any{"istioNamespace": p.Namespace, "proxy": map[string]any{"resources": p.Proxy.values()}},
			"pilot":  map[string]any{"traceSampling": p.TracingSampling},
		},
	}
	name := "kubectl-mesh"
	if p.Revision != "" {
		spec["revision"] = p.Revision
		name += "-" + p.Revision
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
		"metadata": map[string]any{"name": name, "namespace": p.Namespace},
		"spec":     spec,
	}}
}

// TelemetryName is the mesh-wide Telemetry's name in the root namespace, as Istio's
// documentation names the mesh default.
const TelemetryName = "mesh-default"

// Telemetry is the mesh-wide Telemetry: the built-in envoy access log, for failed requests
// only (the diagnosis reads their response flags; logging every request costs CPU and
// storage for nothing).
func (p *Profile) Telemetry() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
		"metadata": map[string]any{"name": TelemetryName, "namespace": p.Namespace},
		"spec": map[string]any{
			"accessLogging": []any{map[string]any{
				"providers": []any{map[string]any{"name": "envoy"}},
				"filter":    map[string]any{"expression": p.AccessLogFilter},
			}},
		},
	}}
}

// Overrides are the user's -f and --set values, keyed by chart name (base, istiod, gateway)
// or "operator" for the IstioOperator's spec.
type Overrides map[string]map[string]any

// NewOverrides splits a values tree into its charts' parts, refusing other top-level keys.
func NewOverrides(tree map[string]any) (Overrides, error) {
	out := Overrides{}
	var unknown []string
	for k, v := range tree {
		switch k {
		case ChartBase, ChartIstiod, ChartGateway, ChartCNI, ChartZtunnel, KeyOperator:
		default:
			unknown = append(unknown, k)
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("overrides: %s must hold values (a map), not %T", k, v)
		}
		out[k] = m
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("overrides: unknown top-level key(s) %s: values go under base, istiod or gateway (the charts) or operator (the IstioOperator's spec), e.g. --set istiod.pilot.autoscaleMin=2",
			strings.Join(unknown, ", "))
	}
	return out, nil
}

// Merge returns base with the overrides of key on top, as Helm coalesces user values over a
// chart's: maps merge key by key, anything else in the overrides replaces what the profile
// set, and a null removes it ("--set istiod.pilot.resources.limits=null").
func (o Overrides) Merge(key string, base map[string]any) (map[string]any, error) {
	dst, err := jsonCopy(o[key])
	if err != nil {
		return nil, err
	}
	src, err := jsonCopy(base)
	if err != nil {
		return nil, err
	}
	return chartutil.CoalesceTables(dst, src), nil
}

// ProxyRequests are the sidecar requests the istiod chart will inject once the overrides are
// merged over the profile (istiod.global.proxy.resources.requests): what each sidecar will
// really ask of its node.
func (p *Profile) ProxyRequests(ov Overrides) (cpu, memory string, err error) {
	base, err := p.HelmValues(ChartIstiod)
	if err != nil {
		return "", "", err
	}
	merged, err := ov.Merge(ChartIstiod, base)
	if err != nil {
		return "", "", err
	}
	requests, _, _ := unstructured.NestedFieldNoCopy(merged, "global", "proxy", "resources", "requests")
	m, _ := requests.(map[string]any)
	// With istioctl, the same values sit under the IstioOperator's spec.values.
	if op, _, _ := unstructured.NestedFieldNoCopy(ov[KeyOperator], "values", "global", "proxy", "resources", "requests"); op != nil {
		if opm, ok := op.(map[string]any); ok {
			m = chartutil.CoalesceTables(jsonCopyOrNil(opm), jsonCopyOrNil(m))
		}
	}
	read := func(name string) (string, error) {
		v, ok := m[name]
		if !ok || v == nil {
			return "", nil
		}
		q, err := resource.ParseQuantity(fmt.Sprint(v))
		if err != nil {
			return "", fmt.Errorf("overrides: istiod.global.proxy.resources.requests.%s %v is not a quantity (such as 100m or 128Mi)", name, v)
		}
		return q.String(), nil
	}
	if cpu, err = read("cpu"); err != nil {
		return "", "", err
	}
	if memory, err = read("memory"); err != nil {
		return "", "", err
	}
	return cpu, memory, nil
}

func jsonCopyOrNil(m map[string]any) map[string]any {
	c, err := jsonCopy(m)
	if err != nil || c == nil {
		return map[string]any{}
	}
	return c
}

// jsonCopy deep-copies a values tree as JSON holds it (numbers become float64, as in values
// read from a file), so merging never changes the profile's or the user's maps.
func jsonCopy(m map[string]any) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
