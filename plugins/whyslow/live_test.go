package whyslow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/adminreplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/incidentpod"
	"github.com/kubectl-mesh/kubectl-mesh/internal/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testcluster"
)

const incidents = "../../testdata/incidents"

// meshedPod is a pod of the test cluster whose sidecar replays an incident folder (a name in
// testdata/incidents, or an absolute path).
type meshedPod struct {
	name, incident string
	// labels replace the captured pod's labels when set.
	labels map[string]string
}

func (p meshedPod) dir() string {
	if filepath.IsAbs(p.incident) {
		return p.incident
	}
	return filepath.Join(incidents, p.incident)
}

// startMesh starts the control plane with one replayed admin API per pod (a replay alternates
// its two stats samples, so pods cannot share one) and creates the pods from the incidents'
// pod.yaml in namespace ns.
func startMesh(t testing.TB, ns string, pods []meshedPod, extraRules ...string) *testcluster.Cluster {
	t.Helper()
	rules := append([]string(nil), extraRules...)
	replays := map[string]string{} // incident folder -> the folder its node replay writes
	for _, p := range pods {
		h, err := adminreplay.New(p.dir())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		rules = append(rules, testcluster.PortForwardRule(ns, p.name, 15000, strings.TrimPrefix(srv.URL, "http://")))
		cri, err := incidentpod.CRILog(p.dir())
		if err != nil {
			t.Fatal(err)
		}
		logs := filepath.Join(t.TempDir(), p.name+".log")
		if err := os.WriteFile(logs, cri, 0o644); err != nil {
			t.Fatal(err)
		}
		rules = append(rules, testcluster.LogsRule(ns, p.name, []string{"istio-proxy"}, logs))
		// The node probe's exec runs in a folder kept moving like /proc from the incident's
		// node samples (the harness's tail shim points the probe's /proc paths there). Pods of
		// one incident share it, as pods of one node share its /proc: a replay per pod costs a
		// core at 500 pods.
		dir := p.dir()
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
			rules = append(rules, testcluster.ExecRule(ns, p.name, []string{"istio-proxy"}, work))
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
		spec, err := incidentpod.FromIncident(p.dir(), ns, p.name, c.Nodes[0])
		if err != nil {
			t.Fatal(err)
		}
		if p.labels != nil {
			spec.Pod.Labels = p.labels
		}
		if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, spec.Pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("pod %s: %v", p.name, err)
		}
		specs[i] = spec
	}
	for i, p := range pods {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got, err := c.Client.CoreV1().Pods(ns).Get(ctx, p.name, metav1.GetOptions{})
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
			t.Fatalf("pod %s/%s not Running: %v", ns, p.name, err)
		}
	}
	return c
}

// runCmd runs `kubectl mesh why-slow ARGS` against the cluster as a user would. The replayed
// proxies date their answers on the clock of their capture, so certificates are judged as
// the capture's folder judges them.
func runCmd(ctx context.Context, c *testcluster.Cluster, args ...string) (stdout, stderr string, err error) {
	return runCmdAs(ctx, c.Kubeconfig, args...)
}

// runCmdAs runs `kubectl mesh why-slow ARGS` with a kubeconfig of another user.
func runCmdAs(ctx context.Context, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// TestLiveIncidents diagnoses one live pod per incident through the real API server (pod read,
// port-forward through kwok to the replayed admin API) and checks each names the cause the
// incident was made for: the same top finding as the incident's folder, which the diagnose
// package's incident tests pin to the injected cause.
func TestLiveIncidents(t *testing.T) {
	entries, err := os.ReadDir(incidents)
	if err != nil {
		t.Fatal(err)
	}
	var pods []meshedPod
	for _, e := range entries {
		if e.IsDir() && e.Name() != "gen" {
			pods = append(pods, meshedPod{name: e.Name(), incident: e.Name()})
		}
	}
	c := startMesh(t, "incidents", pods)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel) // the parallel subtests run after this function returns
	for _, p := range pods {
		t.Run(p.incident, func(t *testing.T) {
			t.Parallel()
			offline, err := diagnose.LoadDir(filepath.Join(incidents, p.incident), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := diagnose.Diagnose(offline, diagnose.Rules())
			stdout, stderr, err := runCmd(ctx, c, "pod/"+p.name, "-n", "incidents", "--window", "1s", "-o", "json")
			if err != nil {
				t.Fatalf("why-slow: %v\nstderr:\n%s", err, stderr)
			}
			var got diagnose.Report
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("output is not a report: %v\n%s", err, stdout)
			}
			if got.Target != "pod incidents/"+p.name || want.WindowSeconds > 0 && got.WindowSeconds < 1 {
				t.Errorf("target %q window %v, want pod incidents/%s over at least 1 s", got.Target, got.WindowSeconds, p.name)
			}
			if len(want.Findings) == 0 {
				for _, f := range got.Findings {
					if f.Severity != diagnose.SeverityInfo {
						t.Errorf("healthy pod: %s %s (%s)", f.Code, f.Title, f.Severity)
					}
				}
				return
			}
			if len(got.Findings) == 0 {
				t.Fatalf("no findings, want %s; warnings %v", want.Findings[0].Code, got.Warnings)
			}
			g, w := got.Findings[0], want.Findings[0]
			if w.Subject.Kind == "pod" || w.Subject.Kind == "proxy" {
				// The live pod is named after the incident, not as the captured one was.
				w.Subject.Name = "incidents/" + p.name
			}
			if g.Code != w.Code || g.Subject != w.Subject {
				t.Errorf("top finding %s on %v, want %s on %v (as from the folder)\nlive: %v\nfolder: %v\nwarnings: %v",
					g.Code, g.Subject, w.Code, w.Subject, summarize(got.Findings), summarize(want.Findings), got.Warnings)
			}
			if !strings.Contains(stderr, "stats sample 2 of 2") && p.incident != "sidecar-not-ready" {
				t.Errorf("no progress on stderr:\n%s", stderr)
			}
		})
	}
}

// TestSweepRanksFaultyFirst sweeps 50 meshed pods, two of them faulty, and checks the two
// come first in the summary, text and JSON, and that -l and deploy-style targets narrow it.
func TestSweepRanksFaultyFirst(t *testing.T) {
	const n = 50
	faulty := map[string]string{"reviews-17": "timeout", "ratings-33": "circuit-breaker"}
	var pods []meshedPod
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("web-%02d", i)
		switch i {
		case 17:
			name = "reviews-17"
		case 33:
			name = "ratings-33"
		}
		inc := "healthy"
		if f, ok := faulty[name]; ok {
			inc = f
		}
		pods = append(pods, meshedPod{name: name, incident: inc})
	}
	c := startMesh(t, "shop", pods)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stdout, stderr, err := runCmd(ctx, c, "-n", "shop", "--window", "1s", "-o", "json", "--concurrency", "16")
	if err != nil {
		t.Fatalf("sweep: %v\nstderr:\n%s", err, stderr)
	}
	var r diagnose.SweepReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("output is not a sweep report: %v\n%.500s", err, stdout)
	}
	if len(r.Pods) != n {
		t.Fatalf("%d pods in the report, want %d", len(r.Pods), n)
	}
	for i := 0; i < 2; i++ {
		p := r.Pods[i]
		if _, ok := faulty[p.Pod]; !ok || p.Top() == nil {
			t.Errorf("rank %d is %s (error %q), want one of the faulty pods", i+1, p.Pod, p.Error)
		}
	}
	for _, p := range r.Pods[2:] {
		if p.Error != "" {
			t.Errorf("%s not diagnosed: %s", p.Pod, p.Error)
		} else if top := p.Top(); top != nil && top.Severity != diagnose.SeverityInfo {
			t.Errorf("healthy pod %s reports %s %s", p.Pod, top.Code, top.Title)
		}
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d/%d pods diagnosed", n, n)) {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}

	text, _, err := runCmd(ctx, c, "-n", "shop", "--window", "1s", "--top", "5", "-l", "app")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "NAMESPACE") {
		t.Fatalf("text summary:\n%s", text)
	}
	for i, l := range lines[1:3] {
		f := strings.Fields(l)
		if len(f) < 2 || faulty[f[1]] == "" {
			t.Errorf("text row %d = %q, want a faulty pod", i+1, l)
		}
	}
}

func summarize(fs []diagnose.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s %s %s impact %.3g", f.Code, f.Severity, f.Subject, f.Impact))
	}
	return out
}

// TestFollowHop diagnoses productpage of the network-latency incident live: it waits 400 ms on
// reviews on average. The hop is followed through the real API server: the reviews Service, its
// EndpointSlice (made by the controller manager from the running pod), and a port-forward to
// the reviews pod, whose replayed sidecar measured its application at 27 ms. The report must
// say the time goes between the pods.
func TestFollowHop(t *testing.T) {
	server := t.TempDir() // the reviews pod's sidecar: the incident's samples of its inbound side
	for src, dst := range map[string]string{"hop-1.prom": "stats.prom", "hop-1-2.prom": "stats-2.prom", "meta.json": "meta.json"} {
		b, err := os.ReadFile(filepath.Join(incidents, "network-latency", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(server, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := startMesh(t, "default", []meshedPod{{name: "productpage", incident: "network-latency"}, {name: "reviews-v2", incident: server}})
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

	stdout, stderr, err := runCmd(ctx, c, "pod/productpage", "--window", "1s", "-o", "json")
	if err != nil {
		t.Fatalf("why-slow: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "following the hop to reviews.default: sampling 1 of its pods") {
		t.Errorf("stderr does not say the hop was followed:\n%s", stderr)
	}
	var r diagnose.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	var hop *diagnose.Finding
	for i := range r.Findings {
		if r.Findings[i].Code == "MESH1105" {
			hop = &r.Findings[i]
		}
	}
	if hop == nil {
		t.Fatalf("no MESH1105 in %v; warnings %v", summarize(r.Findings), r.Warnings)
	}
	appTime := false
	for _, e := range hop.Evidence {
		if e.Label == "mean application time at the upstream" {
			appTime = true
			if e.Value < 20 || e.Value > 35 {
				t.Errorf("application time %v ms, want about 27 (the replayed reviews sidecar's)", e.Value)
			}
		}
	}
	if !appTime {
		t.Errorf("MESH1105 has no application time at the upstream: %+v", hop.Evidence)
	}

	// A user bound to exactly the roles `kubectl mesh rbac` prints gets the same diagnosis with
	// nothing refused: every read the live path makes, the hop's included, is in them.
	alice := boundToPrintedRoles(ctx, t, c, "alice")
	stdout, stderr, err = runCmdAs(ctx, alice, "pod/productpage", "--window", "1s", "-o", "json")
	if err != nil {
		t.Fatalf("why-slow as a user with the printed roles: %v\n%s", err, stderr)
	}
	var ra diagnose.Report
	if err := json.Unmarshal([]byte(stdout), &ra); err != nil {
		t.Fatal(err)
	}
	for _, w := range ra.Warnings {
		if strings.Contains(w, "forbidden") {
			t.Errorf("refused with the printed roles: %s", w)
		}
	}
	if !strings.Contains(stdout, "MESH1105") {
		t.Errorf("the hop was not followed with the printed roles; warnings %v", ra.Warnings)
	}

	// --follow=false leaves the hop alone.
	stdout, _, err = runCmd(ctx, c, "pod/productpage", "--window", "1s", "-o", "json", "--follow=false")
	if err != nil || strings.Contains(stdout, "MESH1105") {
		t.Errorf("--follow=false: err %v, MESH1105 reported: %v", err, strings.Contains(stdout, "MESH1105"))
	}
}

// boundToPrintedRoles applies the ClusterRoles `kubectl mesh rbac` prints, binds user to both
// cluster-wide, and returns the user's kubeconfig.
func boundToPrintedRoles(ctx context.Context, t *testing.T, c *testcluster.Cluster, user string) string {
	t.Helper()
	namespaced, nodes := collect.Roles("kubectl-mesh")
	for _, r := range []*rbacv1.ClusterRole{namespaced, nodes} {
		if _, err := c.Client.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		b := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user + "-" + r.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}
		if _, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kc, err := c.UserKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}
