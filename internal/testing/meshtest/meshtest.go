// Package meshtest starts the test control plane with meshed pods whose sidecars replay
// incident folders: the live tests of why-slow and capture share it, and hack/examples uses
// its error-returning core (ServeReplays, CreatePods, WriteHopServer, CreateService) on a
// detached control plane.
package meshtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
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
	// Registered before the control plane's cleanups, so they run after its processes stop.
	r, err := ServeReplays(incidents, ns, pods, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	c := testcluster.Start(t, testcluster.Options{KwokRules: append(append([]string(nil), extraRules...), r.Rules...)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := CreatePods(ctx, c, incidents, ns, pods); err != nil {
		t.Fatal(err)
	}
	return c
}

// Replays serve what kwok routes the pods of a mesh to: an admin API replay per pod, its
// sidecar's log file and, for incidents with node samples, a node replay per incident.
type Replays struct {
	// Rules are the kwok rules (PortForward, Logs, Exec, namespaced and named like each pod)
	// that route the pods to the replays, for testcluster.Options.KwokRules.
	Rules []string
	stops []func()
}

// Close stops the replays' servers and node replays.
func (r *Replays) Close() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
	r.stops = nil
}

// ServeReplays starts the replays of pods in namespace ns, writing their files into workDir;
// Close stops them. A pod's admin API replay alternates its incident's two stats samples, so
// pods cannot share one; pods of one incident share its node replay, as pods of one node
// share its /proc (a replay per pod costs a core at 500 pods).
func ServeReplays(incidents, ns string, pods []Pod, workDir string) (*Replays, error) {
	r := &Replays{}
	nodes := map[string]string{} // incident folder -> the folder its node replay writes
	for _, p := range pods {
		if err := r.serve(p, p.dir(incidents), ns, workDir, nodes); err != nil {
			r.Close()
			return nil, fmt.Errorf("replay of pod %s (%s): %w", p.Name, p.Incident, err)
		}
	}
	return r, nil
}

func (r *Replays) serve(p Pod, dir, ns, workDir string, nodes map[string]string) error {
	var h http.Handler = p.Admin
	if h == nil {
		a, err := adminreplay.New(dir)
		if err != nil {
			return err
		}
		h = a
	}
	srv := httptest.NewServer(h)
	r.stops = append(r.stops, srv.Close)
	r.Rules = append(r.Rules, testcluster.PortForwardRule(ns, p.Name, 15000, strings.TrimPrefix(srv.URL, "http://")))
	cri, err := incidentpod.CRILog(dir)
	if err != nil {
		return err
	}
	logs := filepath.Join(workDir, p.Name+".log")
	if err := os.WriteFile(logs, cri, 0o644); err != nil {
		return err
	}
	r.Rules = append(r.Rules, testcluster.LogsRule(ns, p.Name, []string{"istio-proxy"}, logs))
	// The node probe's exec runs in a folder kept moving like /proc from the incident's node
	// samples (the harness's tail shim points the probe's /proc paths there).
	if _, err := os.Stat(filepath.Join(dir, diagnose.FileNode2)); err != nil {
		return nil
	}
	work, ok := nodes[dir]
	if !ok {
		work = filepath.Join(workDir, "node-"+strconv.Itoa(len(nodes)))
		if err := os.MkdirAll(work, 0o755); err != nil {
			return err
		}
		nr, err := nodereplay.Start(context.Background(), dir, work)
		if err != nil {
			return err
		}
		r.stops = append(r.stops, nr.Stop)
		nodes[dir] = work
	}
	r.Rules = append(r.Rules, testcluster.ExecRule(ns, p.Name, []string{"istio-proxy"}, work))
	return nil
}

// CreatePods creates namespace ns (when missing) and the pods from the incidents' pod.yaml on
// the cluster's first node, and waits until kwok runs them, with the captured container
// statuses of incidents whose pod was not healthy.
func CreatePods(ctx context.Context, c *testcluster.Cluster, incidents, ns string, pods []Pod) error {
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	specs := make([]*incidentpod.Spec, len(pods))
	for i, p := range pods {
		spec, err := incidentpod.FromIncident(p.dir(incidents), ns, p.Name, c.Nodes[0])
		if err != nil {
			return err
		}
		if p.Labels != nil {
			spec.Pod.Labels = p.Labels
		}
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, spec.Pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("pod %s: %w", p.Name, err)
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
			return fmt.Errorf("pod %s/%s not Running: %w", ns, p.Name, err)
		}
	}
	return nil
}

// StartHop starts the mesh of the network-latency incident in namespace default: productpage,
// which waits 400 ms on reviews on average, and one reviews pod (reviews-v2) whose sidecar
// replays the incident's samples of its inbound side (its application answers in 27 ms),
// behind a reviews Service whose EndpointSlice the controller manager has made.
func StartHop(t testing.TB, incidents string) *testcluster.Cluster {
	t.Helper()
	server := t.TempDir()
	if err := WriteHopServer(incidents, server); err != nil {
		t.Fatal(err)
	}
	c := Start(t, incidents, "default", []Pod{{Name: "productpage", Incident: "network-latency"}, {Name: "reviews-v2", Incident: server}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := CreateService(ctx, c, "default", "reviews", map[string]string{"app": "reviews-v2"}); err != nil {
		t.Fatal(err)
	}
	return c
}

// WriteHopServer writes into dir an evidence folder of the upstream side of the
// network-latency incident's hop: reviews-v2's inbound samples (hop-1.prom, hop-1-2.prom) as
// its stats, for a pod that replays it.
func WriteHopServer(incidents, dir string) error {
	for src, dst := range map[string]string{"hop-1.prom": "stats.prom", "hop-1-2.prom": "stats-2.prom", "meta.json": "meta.json"} {
		b, err := os.ReadFile(filepath.Join(incidents, "network-latency", src))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// CreateService creates Service ns/name on port 9080 selecting selector and waits until the
// controller manager has made its EndpointSlice with an endpoint.
func CreateService(ctx context.Context, c *testcluster.Cluster, ns, name string, selector map[string]string) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: selector,
			Ports: []corev1.ServicePort{{Name: "http", Port: 9080, TargetPort: intstr.FromInt32(9080)}}},
	}
	if _, err := c.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("service %s/%s: %w", ns, name, err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := c.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		return err == nil && len(l.Items) > 0 && len(l.Items[0].Endpoints) > 0, err
	})
	if err != nil {
		return fmt.Errorf("no EndpointSlice for %s/%s: %w", ns, name, err)
	}
	return nil
}
