// Package meshtest starts the test control plane with meshed pods whose sidecars replay
// incident folders: the live tests of why-slow and capture share it.
package meshtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/incidentpod"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// Pod is a pod of the test cluster whose sidecar replays an incident folder (a name in the
// incidents folder, or an absolute path).
type Pod struct {
	Name, Incident string
	// Labels replace the captured pod's labels when set.
	Labels map[string]string
	// Admin, when set, serves the pod's admin API instead of a replay of the incident (a test
	// that changes what the proxy answers, as istiod's pushes do).
	Admin http.Handler
}

func (p Pod) dir(incidents string) string {
	if filepath.IsAbs(p.Incident) {
		return p.Incident
	}
	return filepath.Join(incidents, p.Incident)
}

// Start starts the test control plane with one replayed admin API per pod (a replay alternates
// its two stats samples, so pods cannot share one), its logs and, for incidents with node
// samples, its exec'd node probe, and creates the pods from the incidents' pod.yaml in
// namespace ns, Running. extraRules are more kwok rules (a ClusterPortForward for pods made
// by a controller, say).
func Start(t testing.TB, incidents, ns string, pods []Pod, extraRules ...string) *testcluster.Cluster {
	t.Helper()
	rules := append([]string(nil), extraRules...)
	replays := map[string]string{} // incident folder -> the folder its node replay writes
	for _, p := range pods {
		var h http.Handler = p.Admin
		if h == nil {
			r, err := adminreplay.New(p.dir(incidents))
			if err != nil {
				t.Fatal(err)
			}
			h = r
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		rules = append(rules, testcluster.PortForwardRule(ns, p.Name, 15000, strings.TrimPrefix(srv.URL, "http://")))
		cri, err := incidentpod.CRILog(p.dir(incidents))
		if err != nil {
			t.Fatal(err)
		}
		logs := filepath.Join(t.TempDir(), p.Name+".log")
		if err := os.WriteFile(logs, cri, 0o644); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, testcluster.LogsRule(ns, p.Name, []string{"istio-proxy"}, logs))
		// The node probe's exec runs in a folder kept moving like /proc from the incident's
		// node samples (the harness's tail shim points the probe's /proc paths there). Pods of
		// one incident share it, as pods of one node share its /proc: a replay per pod costs a
		// core at 500 pods.
		dir := p.dir(incidents)
		if _, err := os.Stat(filepath.Join(dir, diagnose.FileNode2)); err == nil {
			work, ok := replays[dir]
			if !ok {
				work = t.TempDir()
				r, err := nodereplay.Start(context.Background(), dir, work)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(r.Stop)
				replays[dir] = work
			}
			rules = append(rules, testcluster.ExecRule(ns, p.Name, []string{"istio-proxy"}, work))
		}
	}
	c := testcluster.Start(t, testcluster.Options{KwokRules: rules})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	specs := make([]*incidentpod.Spec, len(pods))
	for i, p := range pods {
		spec, err := incidentpod.FromIncident(p.dir(incidents), ns, p.Name, c.Nodes[0])
		if err != nil {
			t.Fatal(err)
		}
		if p.Labels != nil {
			spec.Pod.Labels = p.Labels
		}
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, spec.Pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		specs[i] = spec
	}
	for i, p := range pods {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := c.Client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil || got.Status.Phase != corev1.PodRunning {
				return false, err
			}
			if st := specs[i].Status; st != nil {
				// Show what the capture showed: a sidecar not ready, restarts.
				got.Status.ContainerStatuses, got.Status.InitContainerStatuses = st.ContainerStatuses, st.InitContainerStatuses
				got.Status.Conditions = st.Conditions
				_, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, got, metav1.UpdateOptions{})
				return err == nil, nil // a conflict with kwok's own update: try again
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("pod %s/%s not Running: %v", ns, p.Name, err)
		}
	}
	return c
}

// StartHop starts the mesh of the network-latency incident in namespace default: productpage,
// which waits 400 ms on reviews on average, and one reviews pod (reviews-v2) whose sidecar
// replays the incident's samples of its inbound side (its application answers in 27 ms),
// behind a reviews Service whose EndpointSlice the controller manager has made.
func StartHop(t testing.TB, incidents string) *testcluster.Cluster {
	t.Helper()
	server := t.TempDir()
	for src, dst := range map[string]string{"hop-1.prom": "stats.prom", "hop-1-2.prom": "stats-2.prom", "meta.json": "meta.json"} {
		b, err := os.ReadFile(filepath.Join(incidents, "network-latency", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(server, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := Start(t, incidents, "default", []Pod{{Name: "productpage", Incident: "network-latency"}, {Name: "reviews-v2", Incident: server}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "default"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews-v2"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}},
	}
	if _, err := c.Client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=reviews"})
		return err == nil && len(l.Items) > 0 && len(l.Items[0].Endpoints) > 0, err
	})
	if err != nil {
		t.Fatalf("no EndpointSlice for reviews: %v", err)
	}
	return c
}
