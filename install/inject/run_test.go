package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// inject.Run's decisions on a fake API server, in milliseconds. Fakes run no controller, so
// the test plays the Deployment controller and the kubelet: when a Deployment's restart
// annotation changes, it replaces the Deployment's pods with pods made as a test case says
// (with a ready sidecar, a sidecar not ready, OOM-killed, no sidecar, unschedulable...) and
// sets the rollout's status. plugins/inject runs the same engine on the test control plane.

var restartedAt = t0.UTC().Format(time.RFC3339)

// The first injection labels the namespace and restarts the workloads without a sidecar, and
// only those; a second changes nothing.
func TestInjectAndRerun(t *testing.T) {
	optedOut := deployment("legacy", 1, map[string]string{annotationInject: "false"})
	// A meshed StatefulSet and DaemonSet, rolled out: the wait checks them too.
	one := int32(1)
	selector := func(app string) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}, corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}}}
	}
	db := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Spec: appsv1.StatefulSetSpec{Replicas: &one},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 1, Replicas: 1, ReadyReplicas: 1, UpdatedReplicas: 1, CurrentRevision: "db-1", UpdateRevision: "db-1"}}
	db.Spec.Selector, db.Spec.Template = selector("db")
	agent := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 1, CurrentNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1, NumberReady: 1}}
	agent.Spec.Selector, agent.Spec.Template = selector("agent")
	c := newCluster(t, map[string]string{"team": "shop"},
		[]*appsv1.Deployment{deployment("reviews", 2, nil), deployment("ratings", 1, nil), deployment("idle", 0, nil), optedOut},
		map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 2), "ratings": meshed("ratings", "default", 1), "legacy": unmeshed("legacy", 1)},
		db, meshed("db", "default", 1)[0], agent, meshed("agent", "default", 1)[0])
	ratingsRV := c.deployment(t, "ratings").ResourceVersion
	o := c.options(Options{Restart: true, Timeout: 5 * time.Second})

	start := time.Now()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > o.Timeout/2 {
		t.Errorf("waited %v: the wait ends once the pods are meshed, not at its timeout", waited)
	}
	if res.Label.Action != apply.Configured || res.Revision != "default" {
		t.Errorf("label %v, revision %s", res.Label, res.Revision)
	}
	n := c.namespace(t)
	if n.Labels[LabelInjection] != "enabled" || n.Labels["team"] != "shop" || n.Labels[LabelRevision] != "" || n.Labels[apply.ManagedByLabel] != "" {
		t.Errorf("namespace labels %v", n.Labels)
	}
	want := "DaemonSet/agent already meshed 1/1; Deployment/idle no pods 0/0; Deployment/legacy opted out 0/1; Deployment/ratings already meshed 1/1; " +
		"Deployment/reviews restarted 2/2; StatefulSet/db already meshed 1/1"
	if got := workloads(res); got != want {
		t.Errorf("workloads\n got %s\nwant %s", got, want)
	}
	if len(res.Problems) != 0 {
		t.Errorf("problems %+v", res.Problems)
	}
	if len(res.Restarts) != 1 || res.Restarts[0].Name != "reviews" || res.Restarts[0].Action != apply.Configured {
		t.Errorf("restarts %v", res.Restarts)
	}
	if got := c.deployment(t, "reviews").Spec.Template.Annotations[AnnotationRestartedAt]; got != restartedAt {
		t.Errorf("reviews restarted at %q, want %q as kubectl rollout restart writes it", got, restartedAt)
	}
	for _, name := range []string{"legacy", "ratings", "idle"} {
		if _, ok := c.deployment(t, name).Spec.Template.Annotations[AnnotationRestartedAt]; ok {
			t.Errorf("%s was restarted", name)
		}
	}
	if c.deployment(t, "ratings").ResourceVersion != ratingsRV {
		t.Error("the meshed deployment was written")
	}
	if got := c.podNames(t); got != "agent-meshed-0 db-meshed-0 legacy-old-0 ratings-meshed-0 reviews-r1-0 reviews-r1-1" {
		t.Errorf("pods after the rollout: %s", got)
	}

	// A second run: the label and the workloads are as wanted.
	nsRV, reviewsRV := c.namespace(t).ResourceVersion, c.deployment(t, "reviews").ResourceVersion
	res, err = Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Label.Action != apply.Unchanged || len(res.Restarts) != 0 || len(res.Problems) != 0 {
		t.Errorf("rerun: label %v, restarts %v, problems %+v", res.Label, res.Restarts, res.Problems)
	}
	want = "DaemonSet/agent already meshed 1/1; Deployment/idle no pods 0/0; Deployment/legacy opted out 0/1; Deployment/ratings already meshed 1/1; " +
		"Deployment/reviews already meshed 2/2; StatefulSet/db already meshed 1/1"
	if got := workloads(res); got != want {
		t.Errorf("rerun workloads\n got %s\nwant %s", got, want)
	}
	if c.namespace(t).ResourceVersion != nsRV || c.deployment(t, "reviews").ResourceVersion != reviewsRV {
		t.Error("the rerun wrote the namespace or the deployment")
	}
}

// Workloads that are not restarted: --no-restart, and a rollout still in progress (another
// restart would only start another rollout).
func TestNotRestarted(t *testing.T) {
	inProgress := deployment("reviews", 2, map[string]string{AnnotationRestartedAt: "2026-03-01T11:59:00Z"})
	inProgress.Status.UpdatedReplicas, inProgress.Status.AvailableReplicas = 1, 1
	for _, tc := range []struct {
		name    string
		restart bool
		d       *appsv1.Deployment
		want    string
	}{
		{"--no-restart", false, deployment("reviews", 2, nil), "Deployment/reviews not restarted (--no-restart) 0/2"},
		{"a rollout in progress", true, inProgress, "Deployment/reviews rollout in progress 0/2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, nil, []*appsv1.Deployment{tc.d}, map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 2)})
			before := c.deployment(t, "reviews")
			res, err := Run(context.Background(), c.options(Options{Restart: tc.restart}))
			if err != nil {
				t.Fatal(err)
			}
			if got := workloads(res); got != tc.want {
				t.Errorf("workloads %s, want %s", got, tc.want)
			}
			if after := c.deployment(t, "reviews"); after.ResourceVersion != before.ResourceVersion || len(res.Restarts) != 0 {
				t.Errorf("restarted: %v, template annotations %v", res.Restarts, after.Spec.Template.Annotations)
			}
			if c.namespace(t).Labels[LabelInjection] != "enabled" {
				t.Error("the namespace was not labelled")
			}
		})
	}
}

// A restart takes the annotation over from whoever restarted last (kubectl rollout restart):
// that is what a restart is, and it needs no --force-conflicts.
func TestRestartTakesTheAnnotationOver(t *testing.T) {
	d := deployment("reviews", 1, nil)
	c := newCluster(t, nil, []*appsv1.Deployment{d}, map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 1)})
	// kubectl rollout restart, before the namespace was labelled: the new pods have no sidecar.
	c.rev = ""
	d = c.deployment(t, "reviews")
	d.Spec.Template.Annotations = map[string]string{AnnotationRestartedAt: "2026-02-01T00:00:00Z"}
	if err := c.api.Update("kubectl-rollout", d); err != nil {
		t.Fatal(err)
	}
	c.rev = "default"
	now := c.clock.Now()
	res, err := Run(context.Background(), c.options(Options{Restart: true, Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if got := workloads(res); got != "Deployment/reviews restarted 1/1" {
		t.Errorf("workloads %s", got)
	}
	if got, want := c.deployment(t, "reviews").Spec.Template.Annotations[AnnotationRestartedAt], now.Format(time.RFC3339); got != want {
		t.Errorf("restarted at %q, want %q", got, want)
	}
}

// Moving a namespace to a revision: istio-injection, which Istio prefers, is removed only with
// --force-conflicts; then the pods injected by another revision are restarted.
func TestRevisionMove(t *testing.T) {
	setup := func(t *testing.T) *cluster {
		c := newCluster(t, nil, []*appsv1.Deployment{deployment("reviews", 2, nil)}, map[string][]*corev1.Pod{"reviews": meshed("reviews", "default", 2)})
		// kubectl label ns shop istio-injection=enabled
		n := c.namespace(t)
		n.Labels = map[string]string{LabelInjection: "enabled"}
		if err := c.api.Update("kubectl-label", n); err != nil {
			t.Fatal(err)
		}
		c.rev = "1-30"
		return c
	}
	t.Run("refused without --force-conflicts", func(t *testing.T) {
		c := setup(t)
		before := c.namespace(t)
		res, err := Run(context.Background(), c.options(Options{Revision: "1-30", Restart: true}))
		if err == nil || !strings.Contains(err.Error(), "--force-conflicts") || !strings.Contains(err.Error(), "kubectl label ns shop istio-injection-") {
			t.Fatalf("%+v, %v: want the refusal and what to do", res, err)
		}
		if after := c.namespace(t); after.ResourceVersion != before.ResourceVersion {
			t.Errorf("namespace changed: %v", after.Labels)
		}
		if _, ok := c.deployment(t, "reviews").Spec.Template.Annotations[AnnotationRestartedAt]; ok {
			t.Error("restarted although refused")
		}
	})
	t.Run("--force-conflicts", func(t *testing.T) {
		c := setup(t)
		res, err := Run(context.Background(), c.options(Options{Revision: "1-30", Restart: true, ForceConflicts: true, Timeout: 5 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		n := c.namespace(t)
		if _, ok := n.Labels[LabelInjection]; ok || n.Labels[LabelRevision] != "1-30" || NamespaceRevision(n.Labels) != "1-30" {
			t.Errorf("namespace labels %v", n.Labels)
		}
		if got := workloads(res); got != "Deployment/reviews restarted 2/2" || len(res.Problems) != 0 {
			t.Errorf("workloads %s, problems %+v", got, res.Problems)
		}
		if res.Revision != "1-30" || res.Label.Action != apply.Configured {
			t.Errorf("revision %s, label %v", res.Revision, res.Label)
		}
	})
}

// Enabling injection where someone disabled it changes their label: a conflict, named, unless
// --force-conflicts.
func TestDisabledByAnother(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force-conflicts=%v", force), func(t *testing.T) {
			c := newCluster(t, nil, nil, nil)
			n := c.namespace(t)
			n.Labels = map[string]string{LabelInjection: "disabled"}
			if err := c.api.Update("kubectl-label", n); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), c.options(Options{Restart: true, ForceConflicts: force}))
			var conflict *apply.ConflictError
			switch got := c.namespace(t).Labels[LabelInjection]; {
			case !force && (!errors.As(err, &conflict) || !strings.Contains(err.Error(), "kubectl-label")):
				t.Errorf("error %v, want a conflict with kubectl-label's label", err)
			case !force && got != "disabled":
				t.Errorf("label %s after the conflict", got)
			case force && (err != nil || got != "enabled"):
				t.Errorf("forced: label %s, %v", got, err)
			}
		})
	}
}

// Dry runs store nothing: the namespace, the workloads and the pods are as they were.
func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		mode          apply.DryRun
		label, reboot apply.Action
	}{
		{apply.DryRunServer, apply.WouldConfigure, apply.WouldConfigure},
		{apply.DryRunClient, apply.Printed, apply.Printed},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			c := newCluster(t, map[string]string{LabelInjection: "enabled"}, []*appsv1.Deployment{deployment("reviews", 2, nil)},
				map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 2)})
			nsBefore, dBefore, podsBefore := c.namespace(t).ResourceVersion, c.deployment(t, "reviews").ResourceVersion, c.podNames(t)
			var out bytes.Buffer
			o := c.options(Options{Revision: "1-30", Restart: true, ForceConflicts: true, DryRun: tc.mode, Progress: &out})
			res, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if res.Label.Action != tc.label || len(res.Restarts) != 1 || res.Restarts[0].Action != tc.reboot {
				t.Errorf("label %v, restarts %v", res.Label, res.Restarts)
			}
			if got := workloads(res); got != "Deployment/reviews would restart 0/2" {
				t.Errorf("workloads %s", got)
			}
			if n := c.namespace(t); n.ResourceVersion != nsBefore || n.Labels[LabelInjection] != "enabled" || n.Labels[LabelRevision] != "" {
				t.Errorf("namespace changed: %v", n.Labels)
			}
			if c.deployment(t, "reviews").ResourceVersion != dBefore || c.podNames(t) != podsBefore {
				t.Error("the deployment or its pods changed")
			}
			if tc.mode == apply.DryRunClient && (!strings.Contains(out.String(), LabelRevision+": 1-30") || !strings.Contains(out.String(), AnnotationRestartedAt)) {
				t.Errorf("client dry run printed:\n%s", out.String())
			}
		})
	}
}

// Pods that do not run with a ready sidecar after the wait are explained, each with a fix.
func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rev    string // the revision that injects the new pods, "" for none
		run    func(*corev1.Pod) *corev1.Pod
		stuck  bool
		ready  string
		reason string
		code   string
		fix    string
	}{
		{name: "sidecar not ready", rev: "default", run: proxyNotReady, ready: "1/2", reason: "not ready", code: "MESH1301", fix: "istioctl proxy-status"},
		{name: "sidecar OOM-killed", rev: "default", run: proxyOOMKilled, ready: "1/2", reason: "OOM-killed", code: "MESH1302", fix: "memory"},
		{name: "sidecar not ready, OOM-killed days ago", rev: "default", run: proxyOOMKilledLongAgo, ready: "1/2", reason: "not ready", code: "MESH1301", fix: "istioctl proxy-status"},
		{name: "injector did not act", rev: "", run: ready, ready: "1/1", reason: "the injector did not act", fix: "kubectl mesh status"},
		{name: "injected by another revision", rev: "1-29", run: ready, ready: "2/2", reason: "injected by revision 1-29", fix: "kubectl mesh inject shop"},
		{name: "unschedulable with its sidecar", rev: "default", run: unschedulable, ready: "Pending", reason: "not scheduled: 0/3 nodes are available: 3 Insufficient memory.", fix: "sidecar's requests"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, nil, []*appsv1.Deployment{deployment("reviews", 1, nil)}, map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 1)})
			c.rev, c.run = tc.rev, tc.run
			res, err := Run(context.Background(), c.options(Options{Restart: true}))
			if err != nil {
				t.Fatal(err)
			}
			if got := workloads(res); got != "Deployment/reviews restarted 0/1" {
				t.Errorf("workloads %s", got)
			}
			if len(res.Problems) != 1 {
				t.Fatalf("problems %+v, want the new pod's", res.Problems)
			}
			p := res.Problems[0]
			if p.Pod != "reviews-r1-0" || p.Workload != "deployment/reviews" || p.Ready != tc.ready || !strings.Contains(p.Reason, tc.reason) || p.Code != tc.code || !strings.Contains(p.Fix, tc.fix) {
				t.Errorf("problem %+v\nwant ready %s, reason with %q, code %q, a fix with %q", p, tc.ready, tc.reason, tc.code, tc.fix)
			}
		})
	}
}

// A rollout stuck on its new pods: the old pods, not replaced yet, are named as such beside
// the new pod that holds the rollout.
func TestStuckRollout(t *testing.T) {
	c := newCluster(t, nil, []*appsv1.Deployment{deployment("reviews", 1, nil)}, map[string][]*corev1.Pod{"reviews": unmeshed("reviews", 1)})
	c.run, c.stuck = proxyNotReady, true
	res, err := Run(context.Background(), c.options(Options{Restart: true}))
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, p := range res.Problems {
		reasons[p.Pod] = p.Reason
	}
	if len(reasons) != 2 || !strings.HasPrefix(reasons["reviews-old-0"], "not replaced yet") || !strings.Contains(reasons["reviews-r1-0"], "not ready") {
		t.Errorf("problems %+v", res.Problems)
	}
	if got := workloads(res); got != "Deployment/reviews restarted 0/2" {
		t.Errorf("workloads %s", got)
	}
}

// A rerun waits for nothing it did not restart, but still names a meshed pod that is not well.
func TestRerunNamesUnwellPods(t *testing.T) {
	pods := meshed("reviews", "default", 2)
	proxyNotReady(pods[1])
	d := deployment("reviews", 2, nil)
	d.Status.AvailableReplicas = 1
	c := newCluster(t, map[string]string{LabelInjection: "enabled"}, []*appsv1.Deployment{d}, map[string][]*corev1.Pod{"reviews": pods})
	start := time.Now()
	res, err := Run(context.Background(), c.options(Options{Restart: true, Timeout: 3 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 1500*time.Millisecond {
		t.Errorf("waited %v for a workload it did not restart", time.Since(start))
	}
	if got := workloads(res); got != "Deployment/reviews already meshed 1/2" || len(res.Restarts) != 0 {
		t.Errorf("workloads %s, restarts %v", got, res.Restarts)
	}
	if len(res.Problems) != 1 || res.Problems[0].Pod != pods[1].Name || res.Problems[0].Ready != "1/2" {
		t.Errorf("problems %+v", res.Problems)
	}
}
