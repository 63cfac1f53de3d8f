// Package mtls sets a namespace's or the mesh's mTLS mode with a PeerAuthentication. Before
// STRICT it looks for the clients STRICT would cut off: requests that reach the namespace's
// sidecars in plaintext over a sampled window, and pods without a sidecar in the namespaces that
// call it; it refuses while there are any, unless forced. After applying, it checks in the
// sidecars' own configuration that their inbound listeners require client certificates.
package mtls

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
)

// Modes of a PeerAuthentication this command sets.
const (
	ModeStrict     = "STRICT"
	ModePermissive = "PERMISSIVE"
	// RootNamespace holds the mesh-wide PeerAuthentication.
	RootNamespace = "istio-system"
	// Name is the PeerAuthentication's name, as Istio's documentation names the namespace-wide
	// and mesh-wide ones.
	Name = "default"
)

// Options say what to set and how.
type Options struct {
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.RESTMapper
	RESTConfig *rest.Config
	// Namespace is the namespace to set; Mesh sets the mesh-wide policy instead.
	Namespace string
	Mesh      bool
	Mode      string
	// Window is the time between the two stats samples of the plaintext check.
	Window time.Duration
	// MaxPods bounds the sidecars sampled and verified.
	MaxPods int
	// Force applies STRICT despite plaintext clients.
	Force          bool
	DryRun         apply.DryRun
	ForceConflicts bool
	// VerifyTimeout bounds the wait for the sidecars to receive the new mode.
	VerifyTimeout time.Duration
	// VerifyPoll is the interval between two reads of the sidecars' configuration (1 s when 0).
	VerifyPoll time.Duration
	Progress   io.Writer
	// Sample samples the pods' sidecars over Window; nil is collect.SampleIntervals (a
	// port-forward to each). ConfigDump reads one sidecar's config dump; nil is
	// collect.ConfigDump. Tests give the plaintext check and the verification their sidecars
	// this way.
	Sample     func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval
	ConfigDump func(ctx context.Context, namespace, pod string) ([]byte, error)
}

// Client is a client STRICT would cut off.
type Client struct {
	// Source names it: "namespace/workload" as the sidecar saw it, "not in the mesh" when the
	// request carried no identity, or "pod namespace/name" for a pod without a sidecar.
	Source string `json:"source"`
	// Destination is the workload it reaches, for traffic seen.
	Destination string `json:"destination,omitempty"`
	// RequestsPerSecond is its plaintext rate over the window (requests, or TCP connections).
	RequestsPerSecond float64 `json:"requestsPerSecond,omitempty"`
	// Evidence says where it was seen.
	Evidence string `json:"evidence"`
}

// Verification is one sidecar's inbound mode after the change.
type Verification struct {
	Pod  string `json:"pod"`
	Mode string `json:"mode"`
	OK   bool   `json:"ok"`
}

// Result is what mtls found and did.
type Result struct {
	Target  string   `json:"target"`
	Mode    string   `json:"mode"`
	Clients []Client `json:"plaintextClients,omitempty"`
	Sampled []string `json:"sampled,omitempty"`
	// Unsampled are the sidecars whose traffic could not be read: a plaintext client of theirs
	// cannot be ruled out, so STRICT is refused while any remains, unless forced.
	Unsampled []string       `json:"unsampled,omitempty"`
	Refused   bool           `json:"refused"`
	Applied   *apply.Result  `json:"applied,omitempty"`
	Verified  []Verification `json:"verified,omitempty"`
	Warnings  []string       `json:"warnings,omitempty"`
}

func (o *Options) progress(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", a...)
	}
}

// PeerAuthentication is the object the command applies.
func PeerAuthentication(namespace, mode string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": Name, "namespace": namespace},
		"spec":     map[string]any{"mtls": map[string]any{"mode": mode}},
	}}
}

// Run checks, applies and verifies.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Window <= 0 {
		o.Window = 10 * time.Second
	}
	if o.MaxPods <= 0 {
		o.MaxPods = 20
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = time.Minute
	}
	if o.VerifyPoll <= 0 {
		o.VerifyPoll = time.Second
	}
	co := collect.CaptureOptions{Client: o.Client, RESTConfig: o.RESTConfig, Window: o.Window}
	if o.Sample == nil {
		o.Sample = func(ctx context.Context, pods []corev1.Pod, families ...string) []collect.PodInterval {
			return collect.SampleIntervals(ctx, co, pods, families...)
		}
	}
	if o.ConfigDump == nil {
		o.ConfigDump = func(ctx context.Context, namespace, pod string) ([]byte, error) {
			return collect.ConfigDump(ctx, co, namespace, pod)
		}
	}
	ns := o.Namespace
	target := "namespace " + ns
	if o.Mesh {
		ns, target = RootNamespace, "the mesh"
	}
	res := &Result{Target: target, Mode: o.Mode}
	pa := PeerAuthentication(ns, o.Mode)
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Progress, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.ForceConflicts}}
	if o.DryRun == apply.DryRunClient {
		r, err := a.Apply(ctx, pa)
		res.Applied = &r
		res.Warnings = append(res.Warnings, "client dry run: the plaintext clients were not looked for (that needs the cluster): use --dry-run=server")
		return res, err
	}
	pods, err := o.meshedPods(ctx)
	if err != nil {
		return nil, err
	}
	if o.Mode == ModeStrict {
		clients, sampled, unsampled, warnings, err := o.plaintextClients(ctx, pods)
		if err != nil {
			return nil, err
		}
		res.Clients, res.Sampled, res.Unsampled, res.Warnings = clients, sampled, unsampled, warnings
		if (len(clients) > 0 || len(unsampled) > 0) && !o.Force {
			res.Refused = true
			return res, nil
		}
	}
	r, err := a.Apply(ctx, pa)
	if err != nil {
		return nil, err
	}
	res.Applied = &r
	if o.DryRun == apply.DryRunNone && len(pods) > 0 {
		res.Verified = o.verify(ctx, pods)
	}
	return res, nil
}

// meshedPods are the running pods with a sidecar the change applies to, at most MaxPods.
// Gateways are left out: their istio-proxy has no inbound listener a PeerAuthentication sets,
// and reports its requests as their source, so sampling one finds no client and verifying
// one waits out VerifyTimeout for a mode it never shows.
func (o *Options) meshedPods(ctx context.Context) ([]corev1.Pod, error) {
	ns := o.Namespace
	if o.Mesh {
		ns = ""
	}
	l, err := o.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && hasSidecar(&p) && !isGateway(&p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return spread(out, o.MaxPods), nil
}

// spread takes at most n of the sorted pods, round robin over their namespaces: across the
// mesh, the sample then covers as many namespaces (and their callers) as it can.
func spread(pods []corev1.Pod, n int) []corev1.Pod {
	if len(pods) <= n {
		return pods
	}
	var order []string
	byNS := map[string][]corev1.Pod{}
	for _, p := range pods {
		if _, ok := byNS[p.Namespace]; !ok {
			order = append(order, p.Namespace)
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	out := make([]corev1.Pod, 0, n)
	for i := 0; len(out) < n; i++ {
		for _, ns := range order {
			if i < len(byNS[ns]) && len(out) < n {
				out = append(out, byNS[ns][i])
			}
		}
	}
	return out
}

func hasSidecar(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container(nil), p.Spec.Containers...), p.Spec.InitContainers...) {
		if c.Name == collect.SidecarContainer {
			return true
		}
	}
	return false
}

// isGateway reports whether the pod's istio-proxy runs as a gateway: pilot-agent's
// "proxy router" (an ingress or egress gateway, installed or injected with the gateway
// template) where a sidecar runs "proxy sidecar".
func isGateway(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if c.Name != collect.SidecarContainer {
			continue
		}
		argv := append(append([]string(nil), c.Command...), c.Args...)
		for i := 0; i+1 < len(argv); i++ {
			if argv[i] == "proxy" && argv[i+1] == "router" {
				return true
			}
		}
	}
	return false
}

// plaintextClients samples the sidecars' inbound side and lists the pods without a sidecar in
// the namespaces that call them.
func (o *Options) plaintextClients(ctx context.Context, pods []corev1.Pod) (clients []Client, sampled, unsampled, warnings []string, err error) {
	if len(pods) > 0 {
		o.progress("sampling the inbound traffic of %d sidecars for %v to find plaintext clients", len(pods), o.Window)
	}
	samples := o.Sample(ctx, pods, "istio_requests_total", "istio_tcp_connections_opened_total")
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, nil, err
	}
	callers := map[string]bool{o.Namespace: !o.Mesh}
	for _, s := range samples {
		pod := s.Namespace + "/" + s.Pod
		if s.Err != nil {
			warnings = append(warnings, fmt.Sprintf("sidecar of %s not sampled: %v", pod, s.Err))
			unsampled = append(unsampled, pod)
			continue
		}
		sampled = append(sampled, pod)
		clients = append(clients, plaintextSeen(s.Interval, pod, callers)...)
	}
	unmeshed, err := o.unmeshedCallers(ctx, callers)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return append(clients, unmeshed...), sampled, unsampled, warnings, nil
}

// plaintextSeen lists the sources of inbound requests and TCP connections without mTLS over
// the window, and records the namespaces of every inbound caller.
func plaintextSeen(iv *envoyadmin.StatsInterval, pod string, callers map[string]bool) []Client {
	bySource := map[string]*Client{}
	for _, series := range iv.Cur.Istio {
		l := series.Labels
		if l["reporter"] != "destination" || series.Histogram != nil {
			continue
		}
		if ns := l["source_workload_namespace"]; ns != "" && ns != "unknown" {
			callers[ns] = true
		}
		if l["connection_security_policy"] != "none" {
			continue
		}
		r := iv.Istio(series.Metric, l)
		if r.Value <= 0 || r.Cumulative {
			continue
		}
		src := "not in the mesh (no identity)"
		if w, ns := l["source_workload"], l["source_workload_namespace"]; w != "" && w != "unknown" {
			src = ns + "/" + w
		}
		dst := l["destination_workload_namespace"] + "/" + l["destination_workload"]
		key := src + ">" + dst
		c := bySource[key]
		if c == nil {
			c = &Client{Source: src, Destination: dst, Evidence: fmt.Sprintf("%s{reporter=destination, connection_security_policy=none} at %s over the window", series.Metric, pod)}
			bySource[key] = c
		}
		c.RequestsPerSecond += r.Rate
	}
	keys := make([]string, 0, len(bySource))
	for k := range bySource {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Client, 0, len(keys))
	for _, k := range keys {
		out = append(out, *bySource[k])
	}
	return out
}

// unmeshedCallers lists the running pods without a sidecar in the namespaces that call the
// target (the target's own, and those its sidecars saw requests from); for the mesh, every
// namespace but Kubernetes' own.
func (o *Options) unmeshedCallers(ctx context.Context, callers map[string]bool) ([]Client, error) {
	l, err := o.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	var out []Client
	for _, p := range l.Items {
		if p.Status.Phase != corev1.PodRunning || hasSidecar(&p) {
			continue
		}
		if p.Labels[nodes.ProbeLabel] == nodes.ProbeValue {
			continue // kubectl mesh nodes' own probe
		}
		if p.Namespace == RootNamespace {
			// The control plane's namespace: its gateways are proxies with identities, and
			// istiod and the CNI agent do not call workloads.
			continue
		}
		in := callers[p.Namespace]
		if o.Mesh {
			in = !strings.HasPrefix(p.Namespace, "kube-") && p.Namespace != RootNamespace
		}
		if !in {
			continue
		}
		why := "runs without a sidecar in namespace " + p.Namespace
		if !o.Mesh && p.Namespace != o.Namespace {
			why += ", whose pods call " + o.Namespace
		}
		out = append(out, Client{Source: "pod " + p.Namespace + "/" + p.Name, Evidence: why})
	}
	return out, nil
}

// verify waits until each sampled sidecar's inbound listeners are in the new mode, as istiod
// pushes it, and reports each.
func (o *Options) verify(ctx context.Context, pods []corev1.Pod) []Verification {
	want := o.Mode
	o.progress("waiting up to %v for the sidecars to receive %s", o.VerifyTimeout, want)
	deadline := time.Now().Add(o.VerifyTimeout)
	out := make([]Verification, len(pods))
	for i := range pods {
		out[i].Pod = pods[i].Namespace + "/" + pods[i].Name
	}
	for {
		pending := 0
		for i := range pods {
			if out[i].OK {
				continue
			}
			b, err := o.ConfigDump(ctx, pods[i].Namespace, pods[i].Name)
			if err != nil {
				out[i].Mode = "unread: " + err.Error()
				pending++
				continue
			}
			out[i].Mode = inboundMode(b)
			out[i].OK = out[i].Mode == want
			if !out[i].OK {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-time.After(o.VerifyPoll):
		}
	}
}

// inboundMode is what a sidecar's inbound listeners add up to: STRICT when every application
// chain requires a client certificate.
func inboundMode(dump []byte) string {
	s, err := envoyadmin.ParseConfigDump(dump)
	if err != nil {
		return "unread: " + err.Error()
	}
	mode := ""
	for _, l := range s.Listeners {
		if !l.Inbound || l.MTLSMode == "" {
			continue
		}
		switch {
		case mode == "":
			mode = l.MTLSMode
		case mode != l.MTLSMode:
			mode = ModePermissive // some listeners accept plaintext
		}
	}
	if mode == "" {
		return "no inbound listener"
	}
	return mode
}
