package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// kubeIncident lends its proxy evidence (reviews is the upstream) to the Kubernetes evidence
// tests; its own Kubernetes files are what the tests must capture again from the cluster.
const kubeIncident = "../testdata/incidents/mtls-mismatch"

// istioCRDs returns the CRD file that ships in the istio.io/api module this module requires.
func istioCRDs(t *testing.T) string {
	t.Helper()
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

// kubeObjects are the Kubernetes and Istio objects around productpage: its Service with an
// unprefixed port name, the upstream reviews with an EndpointSlice whose endpoint is not ready,
// and the mtls-mismatch incident's PeerAuthentication and DestinationRule, with a VirtualService
// for reviews and a DestinationRule for another service that must not be captured.
const kubeServices = `
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  selector: {app: productpage-v1}
  ports: [{name: web, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abcde
  namespace: default
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports: [{name: http, port: 9080, protocol: TCP}]
endpoints:
- addresses: [10.244.2.21]
  conditions: {ready: false}
  targetRef: {kind: Pod, name: reviews-v1-5b5d6494f4-8hm2c, namespace: default}
`

const kubeIstio = `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-external, namespace: default}
spec: {host: reviews, trafficPolicy: {tls: {mode: DISABLE}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{timeout: 3s, route: [{destination: {host: reviews}}]}]
`

// kubeCapture runs the Kubernetes part of a capture for a pod, over the proxy evidence of
// kubeIncident, as Capture does after reading the admin API.
func kubeCapture(ctx context.Context, t *testing.T, client kubernetes.Interface, dyn dynamic.Interface, cache *KubeCache, pod *corev1.Pod) *Result {
	t.Helper()
	r := &captureRun{o: CaptureOptions{Client: client, Dynamic: dyn, KubeCache: cache, Progress: io.Discard},
		res: &Result{Namespace: pod.Namespace, Pod: pod.Name}}
	for _, f := range []string{evidence.StatsProm, evidence.Stats2Prom, evidence.ConfigDump, evidence.AccessLog, evidence.Meta} {
		b, err := os.ReadFile(filepath.Join(kubeIncident, f))
		if err != nil {
			t.Fatal(err)
		}
		r.res.Evidence.Add(f, b)
	}
	if err := r.writePod(pod); err != nil {
		t.Fatal(err)
	}
	r.kube(ctx, pod)
	return r.res
}

func TestKubeEvidence(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := createPod(ctx, t, c, "productpage-v1", "productpage", SidecarContainer)
	waitRunning(ctx, t, c, pod)
	if err := c.Apply(ctx, kubeServices); err != nil {
		t.Fatal(err)
	}

	t.Run("without Istio's CRDs", func(t *testing.T) {
		res := kubeCapture(ctx, t, c.Client, c.Dynamic, nil, pod)
		var crd []string
		for _, w := range res.Warnings {
			if strings.Contains(w, "CRD is not installed") {
				crd = append(crd, w)
			} else {
				t.Errorf("unexpected warning: %s", w)
			}
		}
		if len(crd) != 3 || !strings.Contains(strings.Join(crd, "\n"), "Istio's DestinationRule CRD is not installed") {
			t.Errorf("warnings = %q, want one per Istio kind", crd)
		}
		if res.Evidence.File(evidence.Istio) != nil || res.Evidence.File(evidence.Services) == nil {
			t.Errorf("files = %v, want services.yaml and no istio.yaml", res.Evidence.Names())
		}
		if _, err := res.Snapshot(time.Now()); err != nil {
			t.Errorf("snapshot: %v", err)
		}
	})

	if err := c.Apply(ctx, istioCRDs(t)); err != nil {
		t.Fatalf("applying istio.io/api's CRDs: %v", err)
	}
	if err := c.Apply(ctx, kubeIstio); err != nil {
		t.Fatal(err)
	}

	t.Run("services, endpoint slices and Istio objects", func(t *testing.T) {
		res := kubeCapture(ctx, t, c.Client, c.Dynamic, &KubeCache{}, pod)
		if len(res.Warnings) > 0 {
			t.Errorf("warnings: %q", res.Warnings)
		}
		for file, want := range map[string][]string{
			evidence.Services:       {"kind: ServiceList", "name: productpage"},
			evidence.EndpointSlices: {"kind: EndpointSliceList", "name: reviews-abcde"},
			evidence.Istio:          {"kind: List", "name: reviews-external", "kind: PeerAuthentication", "kind: VirtualService"},
			evidence.Events:         {"kind: EventList"},
		} {
			got := stored(t, res, file)
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("%s lacks %q:\n%s", file, w, got)
				}
			}
		}
		if got := stored(t, res, evidence.Services); strings.Contains(got, "name: reviews") {
			t.Errorf("services.yaml holds reviews, which does not select the pod:\n%s", got)
		}
		if got := stored(t, res, evidence.Istio); strings.Contains(got, "name: ratings") || strings.Contains(got, "managedFields") {
			t.Errorf("istio.yaml holds the ratings DestinationRule or managed fields:\n%s", got)
		}
		snap, err := res.Snapshot(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rep := diagnose.Diagnose(snap, diagnose.Rules())
		var codes []string
		var mtls *diagnose.Finding
		for i, f := range rep.Findings {
			codes = append(codes, f.Code)
			if f.Code == "MESH0802" && mtls == nil {
				mtls = &rep.Findings[i]
			}
		}
		if mtls == nil || !strings.Contains(fmt.Sprint(mtls.Evidence), "default/reviews-external") || !strings.Contains(fmt.Sprint(mtls.Evidence), "default/default: mtls.mode STRICT") {
			t.Errorf("MESH0802 should name the DestinationRule and PeerAuthentication; findings %v: %+v", codes, mtls)
		}
		if !strings.Contains(strings.Join(codes, " "), "MESH0704") {
			t.Errorf("findings %v, want MESH0704 for productpage's port named web", codes)
		}
	})

	t.Run("destinationrules forbidden", func(t *testing.T) {
		cfg := limitedUser(ctx, t, c, "no-dr")
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res := kubeCapture(ctx, t, client, dyn, nil, pod)
		if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "needs list on destinationrules.networking.istio.io in namespaces default, istio-system") {
			t.Errorf("warnings = %q, want one naming list on destinationrules.networking.istio.io", res.Warnings)
		} else {
			t.Log(res.Warnings[0])
		}
		istio := stored(t, res, evidence.Istio)
		if !strings.Contains(istio, "kind: PeerAuthentication") || strings.Contains(istio, "kind: DestinationRule") {
			t.Errorf("istio.yaml should hold what the user may read:\n%s", istio)
		}
	})
}

// limitedUser may read what a capture needs except DestinationRules.
func limitedUser(ctx context.Context, t *testing.T, c *testcluster.Cluster, user string) *rest.Config {
	t.Helper()
	cfg, err := c.UserWithRole(ctx, user, "", // cluster-wide: the capture lists in default and istio-system
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "services", "events"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list"}},
		rbacv1.PolicyRule{APIGroups: []string{"security.istio.io"}, Resources: []string{"peerauthentications"}, Verbs: []string{"list"}},
		rbacv1.PolicyRule{APIGroups: []string{"networking.istio.io"}, Resources: []string{"virtualservices"}, Verbs: []string{"list"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestKubeCacheListsOnce checks that concurrent captures of one namespace share one list.
func TestKubeCacheListsOnce(t *testing.T) {
	var cache KubeCache
	var calls atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := cache.get("services/default", func() (any, error) {
				calls.Add(1)
				time.Sleep(10 * time.Millisecond)
				return []string{"a"}, nil
			})
			if err != nil || len(v.([]string)) != 1 {
				t.Errorf("get = %v, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("listed %d times, want once", n)
	}
	var none *KubeCache
	if _, err := none.get("x", func() (any, error) { calls.Add(1); return nil, nil }); err != nil || calls.Load() != 2 {
		t.Errorf("a nil cache should call list: calls %d", calls.Load())
	}
}

// stored is an evidence file as a capture writes it to disk (YAML for .yaml files).
func stored(t *testing.T, res *Result, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := res.Evidence.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(b)
}

// countingTransport counts the requests whose path contains a string.
type countingTransport struct {
	next  http.RoundTripper
	match string
	n     atomic.Int32
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, c.match) {
		c.n.Add(1)
	}
	return c.next.RoundTrip(r)
}

// TestSweepSharesEvents checks on the real API server that the captures of a sweep list their
// namespace's pod events once and that each pod's events.yaml still holds its own events only.
func TestSweepSharesEvents(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := []*corev1.Pod{
		createPod(ctx, t, c, "reviews-v1", "reviews", SidecarContainer),
		createPod(ctx, t, c, "reviews-v2", "reviews", SidecarContainer),
	}
	for i, p := range pods {
		waitRunning(ctx, t, c, p)
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.probe", p.Name), Namespace: p.Namespace},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, FieldPath: "spec.containers{istio-proxy}"},
			Reason:         "Unhealthy", Type: corev1.EventTypeWarning, Count: int32(i + 3),
			Message: fmt.Sprintf("Readiness probe failed: HTTP probe failed with statuscode: 503 (pod %d)", i),
		}
		if _, err := c.Client.CoreV1().Events(p.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := rest.CopyConfig(c.Config)
	counter := &countingTransport{match: "/events"}
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, share := range []bool{true, false} {
		counter.n.Store(0)
		cache := &KubeCache{ShareEvents: share}
		for i, p := range pods {
			res := kubeCapture(ctx, t, client, nil, cache, p)
			var list corev1.EventList
			if err := json.Unmarshal(res.Evidence.File(evidence.Events), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 1 || list.Items[0].InvolvedObject.UID != p.UID || !strings.Contains(list.Items[0].Message, fmt.Sprintf("(pod %d)", i)) {
				t.Errorf("share %v: events of %s: %+v, want its own event only", share, p.Name, list.Items)
			}
		}
		want := int32(1)
		if !share {
			want = int32(len(pods))
		}
		if n := counter.n.Load(); n != want {
			t.Errorf("share %v: %d event lists for %d pods, want %d", share, n, len(pods), want)
		}
	}
}
