// Package canary splits a Service's traffic between a stable and a canary version with Istio:
// a DestinationRule with a subset per version (from the pods' version label) and the seeds'
// connection pool and outlier detection, then a VirtualService with the weights, the
// DestinationRule first so no route ever names a subset that does not exist. It refuses a
// subset without ready pods (a 503 NC/UH waiting to happen), promotes and rolls back, and in
// progressive mode raises the weight step by step while the canary's sidecars show its error
// rate and p99 within bounds, rolling back by itself when they do not.
package canary

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// VersionLabel is the pod label that names a version, as Istio's canary examples use it.
const VersionLabel = "version"

// Options say what to split and how.
type Options struct {
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.RESTMapper
	RESTConfig *rest.Config
	Namespace  string
	Service    string
	// Canary and Stable are the versions (values of the pods' version label); Stable is found
	// among the Service's pods when empty and there is one other version.
	Canary, Stable string
	// Weight is the canary's share of requests, in percent.
	Weight int
	// Promote sends everything to the canary; Rollback everything to the stable version.
	Promote, Rollback bool
	// Step, Interval, MaxErrorRate (a fraction) and MaxP99 drive the progressive mode: from
	// Weight, Step more every Interval while the canary keeps within the bounds. Step 0 is a
	// single split.
	Step         int
	Interval     time.Duration
	MaxErrorRate float64
	MaxP99       time.Duration
	DryRun       apply.DryRun
	Force        bool
	Progress     io.Writer
	// Sample samples the canary pods' sidecars over Interval; nil is collect.SampleIntervals
	// (a port-forward to each). Tests give the progressive mode its measurements this way.
	Sample func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval
}

// StepResult is one weight the canary ran at, and what its sidecars measured.
type StepResult struct {
	Weight int `json:"weight"`
	// Requests, ErrorRate (a fraction) and P99Millis are the canary's inbound side over the
	// interval; P99Millis is 0 when its sidecars keep no duration histogram.
	Requests  float64 `json:"requests"`
	ErrorRate float64 `json:"errorRate"`
	P99Millis float64 `json:"p99Millis,omitempty"`
	Verdict   string  `json:"verdict"`
}

// Result is what canary did.
type Result struct {
	Service string         `json:"service"`
	Stable  string         `json:"stable"`
	Canary  string         `json:"canary"`
	Weight  int            `json:"weight"`
	Applied []apply.Result `json:"applied"`
	Steps   []StepResult   `json:"steps,omitempty"`
	// RolledBack says why the progressive mode went back to the stable version.
	RolledBack string `json:"rolledBack,omitempty"`
}

func (o *Options) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// Run applies the split (or runs the progressive rollout).
func Run(ctx context.Context, o Options) (*Result, error) {
	svc, err := o.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", o.Namespace, o.Service, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("service %s/%s has no selector: its pods cannot be split by version", o.Namespace, o.Service)
	}
	pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return nil, fmt.Errorf("pods of service %s/%s: %w", o.Namespace, o.Service, err)
	}
	versions := readyByVersion(pods.Items)
	if o.Stable == "" {
		var others []string
		for v := range versions {
			if v != o.Canary && v != "" {
				others = append(others, v)
			}
		}
		sort.Strings(others)
		if len(others) != 1 {
			return nil, fmt.Errorf("service %s/%s has pods of versions %v besides %s: name the stable one with --stable", o.Namespace, o.Service, others, o.Canary)
		}
		o.Stable = others[0]
	}
	// A subset without a ready pod answers every request routed to it with 503 (UH). Only the
	// subsets that will receive traffic need one: a rollback is how one leaves a broken canary.
	need := []string{o.Stable, o.Canary}
	switch {
	case o.Promote:
		need = []string{o.Canary}
	case o.Rollback:
		need = []string{o.Stable}
	}
	for _, v := range need {
		if versions[v].ready == 0 {
			return nil, fmt.Errorf("subset %s of %s/%s has no ready pod (%d pods with %s=%s): requests routed to it would fail with 503 UH; deploy it first",
				v, o.Namespace, o.Service, versions[v].all, VersionLabel, v)
		}
	}
	weight := o.Weight
	switch {
	case o.Promote:
		weight = 100
	case o.Rollback:
		weight = 0
	}
	res := &Result{Service: o.Namespace + "/" + o.Service, Stable: o.Stable, Canary: o.Canary}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Progress, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.Force}}
	if err := o.refuseForeign(ctx); err != nil {
		return nil, err
	}
	split := func(w int) error {
		for _, obj := range []*unstructured.Unstructured{o.destinationRule(), o.virtualService(w)} {
			r, err := a.Apply(ctx, obj)
			if err != nil {
				return err
			}
			res.Applied = append(res.Applied, r)
		}
		res.Weight = w
		return nil
	}
	if err := split(weight); err != nil {
		return nil, err
	}
	if o.Step <= 0 || o.Promote || o.Rollback || o.DryRun != apply.DryRunNone {
		return res, nil
	}
	return res, o.progressive(ctx, res, split, o.readyCanaryPods)
}

// readyCanaryPods lists the canary's ready pods afresh: pods restart and scale during a rollout.
func (o *Options) readyCanaryPods(ctx context.Context) ([]corev1.Pod, error) {
	svc, err := o.Client.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("service %s/%s: %w", o.Namespace, o.Service, err)
	}
	set := labels.Set{}
	for k, v := range svc.Spec.Selector {
		set[k] = v
	}
	set[VersionLabel] = o.Canary
	pods, err := o.Client.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(set).String()})
	if err != nil {
		return nil, fmt.Errorf("pods of canary %s: %w", o.Canary, err)
	}
	return canaryPods(pods.Items, o.Canary), nil
}

type versionPods struct{ all, ready int }

func readyByVersion(pods []corev1.Pod) map[string]versionPods {
	out := map[string]versionPods{}
	for i := range pods {
		p := &pods[i]
		v := p.Labels[VersionLabel]
		vp := out[v]
		vp.all++
		if podReady(p) {
			vp.ready++
		}
		out[v] = vp
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func canaryPods(pods []corev1.Pod, version string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Labels[VersionLabel] == version && podReady(&p) {
			out = append(out, p)
		}
	}
	return out
}

func (o *Options) host() string { return o.Service + "." + o.Namespace + ".svc.cluster.local" }

// destinationRule has a subset per version, the connection pool and the outlier detection.
func (o *Options) destinationRule() *unstructured.Unstructured {
	subset := func(v string) map[string]any {
		return map[string]any{"name": v, "labels": map[string]any{VersionLabel: v}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": o.Service, "namespace": o.Namespace},
		"spec": map[string]any{
			"host": o.host(),
			"trafficPolicy": map[string]any{
				"connectionPool": map[string]any{
					"tcp":  map[string]any{"maxConnections": int64(1024), "connectTimeout": "10s"},
					"http": map[string]any{"http1MaxPendingRequests": int64(1024), "http2MaxRequests": int64(1024), "maxRetries": int64(3)},
				},
				// Eject a host after 5 consecutive 5xx for 30 s, checked every 10 s: a canary pod
				// that fails is taken out of the pool before it fails many requests.
				"outlierDetection": map[string]any{
					"consecutive5xxErrors": int64(5), "interval": "10s", "baseEjectionTime": "30s", "maxEjectionPercent": int64(50),
				},
			},
			"subsets": []any{subset(o.Stable), subset(o.Canary)},
		},
	}}
}

// virtualService routes weight percent of the Service's requests to the canary subset.
func (o *Options) virtualService(weight int) *unstructured.Unstructured {
	route := func(subset string, w int) map[string]any {
		return map[string]any{"destination": map[string]any{"host": o.host(), "subset": subset}, "weight": int64(w)}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": o.Service, "namespace": o.Namespace},
		"spec": map[string]any{
			"hosts": []any{o.Service},
			"http":  []any{map[string]any{"route": []any{route(o.Stable, 100-weight), route(o.Canary, weight)}}},
		},
	}}
}

// refuseForeign refuses when another tool's DestinationRule or VirtualService already routes
// the Service: two of them for one host make Istio pick one, not merge them.
func (o *Options) refuseForeign(ctx context.Context) error {
	if o.Force || o.DryRun == apply.DryRunClient {
		return nil
	}
	for _, k := range []struct{ resource, kind string }{{"destinationrules", "DestinationRule"}, {"virtualservices", "VirtualService"}} {
		l, err := o.Dynamic.Resource(gvr(k.resource)).Namespace(o.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			if meta.IsNoMatchError(err) || strings.Contains(err.Error(), "the server could not find the requested resource") {
				return fmt.Errorf("the cluster does not serve Istio's %s: install Istio first (kubectl mesh install)", k.kind)
			}
			return fmt.Errorf("listing %s: %w", k.resource, err)
		}
		for _, obj := range l.Items {
			if apply.IsOurs(&obj) || !routes(obj, o.Service, o.host()) {
				continue
			}
			return fmt.Errorf("%s %s/%s of another tool already applies to %s: change it yourself, or rerun with --force-conflicts to add kubectl-mesh's beside it",
				k.kind, o.Namespace, obj.GetName(), o.host())
		}
	}
	return nil
}

func routes(obj unstructured.Unstructured, short, host string) bool {
	if h, _, _ := unstructured.NestedString(obj.Object, "spec", "host"); h == short || h == host {
		return true
	}
	hosts, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "hosts")
	for _, h := range hosts {
		if h == short || h == host {
			return true
		}
	}
	return false
}

// progressive raises the weight by Step every Interval while the canary's sidecars show it
// within bounds, and rolls back to the stable version when they do not. A step with no request
// at the canary is held (no evidence to judge it on), three times at most.
func (o *Options) progressive(ctx context.Context, res *Result, split func(int) error, list func(context.Context) ([]corev1.Pod, error)) error {
	weight, held := res.Weight, 0
	for {
		o.progress("canary %s at %d%%: measuring its sidecars for %v", o.Canary, weight, o.Interval)
		pods, err := list(ctx)
		var st StepResult
		if err == nil {
			if len(pods) == 0 {
				err = fmt.Errorf("no ready pod of %s=%s", VersionLabel, o.Canary)
			} else {
				st, err = o.measure(ctx, pods)
			}
		}
		st.Weight = weight
		switch {
		case ctx.Err() != nil:
			// Interrupted: leave the split where it is; the user decides with --promote or --rollback.
			return fmt.Errorf("canary %s left at %d%%: %w", o.Canary, weight, ctx.Err())
		case err != nil:
			// A canary that cannot be judged is not promoted further.
			st.Verdict = "cannot measure the canary: " + err.Error()
		case st.Requests == 0:
			held++
			st.Verdict = "held: no request reached the canary"
			if held >= 3 {
				st.Verdict = "no request reached the canary in three intervals"
			}
		case st.ErrorRate > o.MaxErrorRate:
			st.Verdict = fmt.Sprintf("error rate %.2f%% over %.2f%%", 100*st.ErrorRate, 100*o.MaxErrorRate)
		case o.MaxP99 > 0 && st.P99Millis > float64(o.MaxP99.Milliseconds()):
			st.Verdict = fmt.Sprintf("p99 %.0f ms over %d ms", st.P99Millis, o.MaxP99.Milliseconds())
		default:
			st.Verdict = "ok"
		}
		res.Steps = append(res.Steps, st)
		p99 := "-"
		if st.P99Millis > 0 {
			p99 = fmt.Sprintf("%.0f ms", st.P99Millis)
		}
		o.progress("  %d requests, %.2f%% errors, p99 %s: %s", int(st.Requests), 100*st.ErrorRate, p99, st.Verdict)
		switch {
		case st.Verdict == "ok" && weight == 100:
			return nil
		case st.Verdict == "ok":
			weight = min(100, weight+o.Step)
			held = 0
			if err := split(weight); err != nil {
				return err
			}
		case strings.HasPrefix(st.Verdict, "held"):
		default:
			res.RolledBack = st.Verdict
			o.progress("rolling back to %s: %s", o.Stable, st.Verdict)
			return split(0)
		}
	}
}

// measure samples the canary pods' sidecars over the interval: their inbound requests, the 5xx
// among them, and the p99 of their durations.
func (o *Options) measure(ctx context.Context, pods []corev1.Pod) (StepResult, error) {
	const requests, durations = "istio_requests_total", "istio_request_duration_milliseconds"
	destination := map[string]string{"reporter": "destination"}
	co := collect.CaptureOptions{Client: o.Client, RESTConfig: o.RESTConfig, Window: o.Interval}
	var (
		total, errs float64
		hist        *envoyadmin.Histogram
	)
	sample := o.Sample
	if sample == nil {
		sample = func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval {
			return collect.SampleIntervals(ctx, co, pods, families...)
		}
	}
	for _, p := range sample(ctx, pods, requests, durations) {
		if p.Err != nil {
			return StepResult{}, fmt.Errorf("sampling canary pod %s/%s: %w", p.Namespace, p.Pod, p.Err)
		}
		iv := p.Interval
		total += iv.Istio(requests, destination).Value
		for _, s := range iv.Cur.Istio {
			if s.Metric == requests && s.Labels["reporter"] == "destination" && strings.HasPrefix(s.Labels["response_code"], "5") {
				errs += iv.Istio(requests, s.Labels).Value
			}
		}
		if h := iv.IstioHistogram(durations, destination); h != nil && h.Count > 0 {
			hist = envoyadmin.MergeHistograms(hist, h)
		}
	}
	st := StepResult{Requests: total}
	if total > 0 {
		st.ErrorRate = errs / total
	}
	if hist != nil {
		// A histogram Envoy did not close with +Inf has no p99: none, rather than NaN in -o json.
		if p99 := hist.Quantile(0.99); !math.IsNaN(p99) && !math.IsInf(p99, 0) {
			st.P99Millis = p99
		}
	}
	return st, nil
}

func gvr(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: resource}
}
