package collect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// MaxUpstreamServices bounds the upstream Services whose EndpointSlices and Istio objects a
// capture reads: the ones the proxy sent the most requests to.
const MaxUpstreamServices = 20

// KubeCache shares what is namespace- or node-wide among the captures of a sweep: the lists of
// Services, EndpointSlices and Istio objects (a namespace's Services are listed once for all
// its pods, not once per pod), with ShareEvents its events, and the kubelets' cAdvisor scrapes
// (nodeMetrics). It is safe for concurrent captures; the zero value is ready to use. A nil
// *KubeCache shares nothing.
type KubeCache struct {
	// ShareEvents lists each namespace's pod events once for all its captures instead of one
	// list per pod: a sweep's choice. The API server filters events by field by walking all
	// of a namespace's events, so one list costs it less than a list per pod, but for one pod
	// the list of its own events is the smaller answer.
	ShareEvents bool

	mu      sync.Mutex
	entries map[string]*kubeCacheEntry
	nodes   nodeScrapes
}

type kubeCacheEntry struct {
	once  sync.Once
	items any
	err   error
}

// get returns the cached result of list under key, calling list once per key however many
// captures ask at the same time.
func (c *KubeCache) get(key string, list func() (any, error)) (any, error) {
	if c == nil {
		return list()
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*kubeCacheEntry{}
	}
	e := c.entries[key]
	if e == nil {
		e = &kubeCacheEntry{}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.items, e.err = list() })
	return e.items, e.err
}

// kube reads the Kubernetes evidence of the pod: its events, the Services that select it, the
// EndpointSlices of those and of the upstreams it calls, and the Istio objects that apply. What
// cannot be read becomes one warning per resource, naming the permission or the CRD missing.
func (r *captureRun) kube(ctx context.Context, pod *corev1.Pod) {
	r.progress("events, Services, EndpointSlices and Istio configuration of %s/%s", pod.Namespace, pod.Name)
	r.events(ctx, pod)
	own := r.services(ctx, pod)
	upstreams := upstreamHosts(&r.res.Evidence)
	r.endpointSlices(ctx, own, upstreams)
	if r.o.Dynamic != nil {
		r.istio(ctx, pod, upstreams)
	}
}

func (r *captureRun) events(ctx context.Context, pod *corev1.Pod) {
	items, err := r.podEvents(ctx, pod)
	if err != nil {
		r.kubeWarning(evidence.Events, "events", "", pod.Namespace, err)
		return
	}
	out := corev1.EventList{Items: items}
	for i := range out.Items {
		out.Items[i].ManagedFields = nil
	}
	r.writeList(evidence.Events, "EventList", "v1", &out)
}

// podEvents lists the events of the pod: its own (a field selector on its name and UID), or,
// when the cache shares events, from one list of the namespace's pod events.
func (r *captureRun) podEvents(ctx context.Context, pod *corev1.Pod) ([]corev1.Event, error) {
	events := r.o.Client.CoreV1().Events(pod.Namespace)
	if r.o.KubeCache == nil || !r.o.KubeCache.ShareEvents {
		sel := fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID)}.AsSelector().String()
		list, err := events.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	}
	byPod, err := r.o.KubeCache.get("events/"+pod.Namespace, func() (any, error) {
		list, err := events.List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.kind", "Pod").String()})
		if err != nil {
			return nil, err
		}
		m := map[types.UID][]corev1.Event{}
		for _, e := range list.Items {
			m[e.InvolvedObject.UID] = append(m[e.InvolvedObject.UID], e)
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	// Copies: the captures of one namespace write their pods' events at once.
	return append([]corev1.Event(nil), byPod.(map[types.UID][]corev1.Event)[pod.UID]...), nil
}

// services writes the Services of the pod's namespace whose selector matches its labels.
func (r *captureRun) services(ctx context.Context, pod *corev1.Pod) []corev1.Service {
	all, err := r.o.KubeCache.get("services/"+pod.Namespace, func() (any, error) {
		l, err := r.o.Client.CoreV1().Services(pod.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	})
	if err != nil {
		r.kubeWarning(evidence.Services, "services", "", pod.Namespace, err)
		return nil
	}
	var own []corev1.Service
	for _, s := range all.([]corev1.Service) {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			s.ManagedFields = nil
			own = append(own, s)
		}
	}
	r.writeList(evidence.Services, "ServiceList", "v1", &corev1.ServiceList{Items: own})
	return own
}

// endpointSlices writes the EndpointSlices of the pod's own Services and of the upstream hosts.
func (r *captureRun) endpointSlices(ctx context.Context, own []corev1.Service, upstreams []string) {
	want := map[string]map[string]bool{} // namespace -> service names
	add := func(ns, name string) {
		if want[ns] == nil {
			want[ns] = map[string]bool{}
		}
		want[ns][name] = true
	}
	for _, s := range own {
		add(s.Namespace, s.Name)
	}
	for _, h := range upstreams {
		if name, ns, ok := envoyadmin.ServiceHostParts(h); ok {
			add(ns, name)
		}
	}
	if len(want) == 0 {
		return
	}
	var out []discoveryv1.EndpointSlice
	var failed []error
	var failedNS []string
	for _, ns := range sortedNamespaces(want) {
		all, err := r.o.KubeCache.get("endpointslices/"+ns, func() (any, error) {
			l, err := r.o.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, err
			}
			return l.Items, nil
		})
		if err != nil {
			failed, failedNS = append(failed, err), append(failedNS, ns)
			continue
		}
		for _, sl := range all.([]discoveryv1.EndpointSlice) {
			if want[ns][sl.Labels[discoveryv1.LabelServiceName]] {
				sl.ManagedFields = nil
				out = append(out, sl)
			}
		}
	}
	if len(failed) > 0 {
		r.kubeWarning(evidence.EndpointSlices, "endpointslices", "discovery.k8s.io", strings.Join(failedNS, ", "), failed[0])
		if len(failed) == len(want) {
			return
		}
	}
	r.writeList(evidence.EndpointSlices, "EndpointSliceList", "discovery.k8s.io/v1", &discoveryv1.EndpointSliceList{Items: out})
}

// upstreamHosts returns the Kubernetes service hosts ("reviews.default.svc.cluster.local") the
// proxy sent requests to, read from the stats already captured, busiest first, at most
// MaxUpstreamServices.
func upstreamHosts(ev *evidence.Set) []string {
	b := ev.File(evidence.Stats2Prom)
	if b == nil {
		b = ev.File(evidence.StatsProm)
	}
	if b == nil {
		return nil
	}
	sample, err := envoyadmin.ParseStatsPrometheus(bytes.NewReader(b), envoyadmin.WithPrometheusFamilies(
		"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_cx_total", "envoy_cluster_upstream_cx_none_healthy",
		"envoy_cluster_upstream_cx_connect_fail", "istio_requests_total"))
	if err != nil {
		return nil
	}
	load := map[string]float64{}
	for _, c := range sample.Clusters {
		if c.Name.Direction != "outbound" || !strings.Contains(c.Name.Host, ".svc.") {
			continue
		}
		n := c.Values["upstream_rq_total"] + c.Values["upstream_cx_total"] + c.Values["upstream_cx_none_healthy"] + c.Values["upstream_cx_connect_fail"]
		if n > 0 {
			load[c.Name.Host] += n
		}
	}
	for _, s := range sample.Istio {
		if s.Metric == "istio_requests_total" && s.Labels["reporter"] == "source" && strings.Contains(s.Labels["destination_service"], ".svc.") && s.Value > 0 {
			load[s.Labels["destination_service"]] += s.Value
		}
	}
	hosts := make([]string, 0, len(load))
	for h := range load {
		hosts = append(hosts, h)
	}
	sort.Slice(hosts, func(i, j int) bool {
		if load[hosts[i]] != load[hosts[j]] {
			return load[hosts[i]] > load[hosts[j]]
		}
		return hosts[i] < hosts[j]
	})
	return hosts[:min(len(hosts), MaxUpstreamServices)]
}

func sortedNamespaces(m map[string]map[string]bool) []string {
	out := make([]string, 0, len(m))
	for ns := range m {
		if ns != "" {
			out = append(out, ns)
		}
	}
	sort.Strings(out)
	return out
}

// writeList writes a list as `kubectl get` prints it: JSON in memory, YAML on disk.
func (r *captureRun) writeList(name, kind, apiVersion string, list any) {
	b, err := listJSON(kind, apiVersion, list)
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s not captured: %v", name, err))
		return
	}
	_ = r.write(name, b)
}

// listJSON is a list as `kubectl get -o json` prints it, each object's annotations redacted.
func listJSON(kind, apiVersion string, list any) ([]byte, error) {
	b, err := json.Marshal(list)
	var m map[string]any
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, err
	}
	m["apiVersion"], m["kind"] = apiVersion, kind
	if m["items"] == nil {
		m["items"] = []any{}
	}
	delete(m, "metadata")
	evidence.RedactObjects(m["items"])
	return json.Marshal(m)
}

// kubeWarning turns a failed list into one line: the permission missing when it is forbidden.
// what names the evidence left out ("services.yaml", "DestinationRules for istio.yaml").
func (r *captureRun) kubeWarning(what, resource, group, namespaces string, err error) {
	res := resource
	if group != "" {
		res += "." + group
	}
	nsWord := "namespace"
	if strings.Contains(namespaces, ",") {
		nsWord = "namespaces"
	}
	if apierrors.IsForbidden(err) {
		first, _, _ := strings.Cut(namespaces, ",")
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s not captured: listing %s is forbidden; it needs list on %s in %s %s (`kubectl auth can-i list %s -n %s` checks it); the diagnosis goes on without them",
			what, res, res, nsWord, namespaces, res, first))
		return
	}
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s not captured: listing %s in %s %s: %v", what, res, nsWord, namespaces, err))
}
