package whyslow

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

const incidents = "../../testdata/incidents"

// meshedPod is a pod of the test cluster whose sidecar replays an incident folder.
type meshedPod = meshtest.Pod

func startMesh(t testing.TB, ns string, pods []meshedPod, extraRules ...string) *testcluster.Cluster {
	t.Helper()
	return meshtest.Start(t, incidents, ns, pods, extraRules...)
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
			pods = append(pods, meshedPod{Name: e.Name(), Incident: e.Name()})
		}
	}
	c := startMesh(t, "incidents", pods)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel) // the parallel subtests run after this function returns
	for _, p := range pods {
		t.Run(p.Incident, func(t *testing.T) {
			t.Parallel()
			offline, err := diagnose.LoadDir(filepath.Join(incidents, p.Incident), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := diagnose.Diagnose(offline, diagnose.Rules())
			stdout, stderr, err := runCmd(ctx, c, "pod/"+p.Name, "-n", "incidents", "--window", "1s", "-o", "json")
			if err != nil {
				t.Fatalf("why-slow: %v\nstderr:\n%s", err, stderr)
			}
			var got diagnose.Report
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("output is not a report: %v\n%s", err, stdout)
			}
			if got.Target != "pod incidents/"+p.Name || want.WindowSeconds > 0 && got.WindowSeconds < 1 {
				t.Errorf("target %q window %v, want pod incidents/%s over at least 1 s", got.Target, got.WindowSeconds, p.Name)
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
				w.Subject.Name = "incidents/" + p.Name
			}
			if g.Code != w.Code || g.Subject != w.Subject {
				t.Errorf("top finding %s on %v, want %s on %v (as from the folder)\nlive: %v\nfolder: %v\nwarnings: %v",
					g.Code, g.Subject, w.Code, w.Subject, summarize(got.Findings), summarize(want.Findings), got.Warnings)
			}
			if !strings.Contains(stderr, "stats sample 2 of 2") && p.Incident != "sidecar-not-ready" {
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
		pods = append(pods, meshedPod{Name: name, Incident: inc})
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
	c := meshtest.StartHop(t, incidents)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

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
