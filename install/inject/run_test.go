package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/fakeapi"
)

// inject.Run's decisions on a fake API server, in milliseconds. Fakes run no controller, so
// the test plays the Deployment controller and the kubelet: when a Deployment's restart
// annotation changes, it replaces the Deployment's pods with pods made as a test case says
// (with a ready sidecar, a sidecar not ready, OOM-killed, no sidecar, unschedulable...) and
// sets the rollout's status. plugins/inject runs the same engine on the test control plane.

const ns = "shop"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is the engine's clock: the test's controller moves it on as pods start.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sidecarStatus(rev string) string {
	return fmt.Sprintf(`{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":%q}`, rev)
}

// newPod is a running pod of app whose containers are all ready; rev is the revision that
// injected its sidecar, "" for none.
func newPod(app, name, rev string, created time.Time) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: map[string]string{"app": app},
			CreationTimestamp: metav1.NewTime(created)},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.invalid/" + app}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: app, Ready: true}}},
	}
	if rev != "" {
		p.Annotations = map[string]string{annotationStatus: sidecarStatus(rev)}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: sidecar, Image: "docker.io/istio/proxyv2:1.30.3"})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: sidecar, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(created)}}})
	}
	return p
}

func proxyStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.ContainerStatuses {
		if p.Status.ContainerStatuses[i].Name == sidecar {
			return &p.Status.ContainerStatuses[i]
		}
	}
	panic("no sidecar in " + p.Name)
}

// How the kubelet runs a new pod.
func ready(p *corev1.Pod) *corev1.Pod { return p }

func proxyNotReady(p *corev1.Pod) *corev1.Pod {
	proxyStatus(p).Ready = false
	return p
}

func proxyOOMKilled(p *corev1.Pod) *corev1.Pod {
	st := proxyStatus(p)
	st.Ready, st.RestartCount = false, 3
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	st.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137,
		FinishedAt: metav1.NewTime(p.CreationTimestamp.Add(20 * time.Second))}}
	return p
}

// proxyOOMKilledLongAgo was OOM-killed a day before it stopped being ready for another reason.
func proxyOOMKilledLongAgo(p *corev1.Pod) *corev1.Pod {
	proxyOOMKilled(p)
	st := proxyStatus(p)
	st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: p.CreationTimestamp}}
	st.LastTerminationState.Terminated.FinishedAt = metav1.NewTime(p.CreationTimestamp.Add(-48 * time.Hour))
	return p
}

func unschedulable(p *corev1.Pod) *corev1.Pod {
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	return p
}

func deployment(app string, replicas int32, template map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: template},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.invalid/" + app}}}}},
		// Rolled out: the fake API server gives a new object generation 1.
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: replicas, AvailableReplicas: replicas},
	}
}

// cluster is the fake API server with the test's Deployment controller and kubelet.
type cluster struct {
	api   *fakeapi.Server
	clock *clock
	// rev and run make the new pods of a restart: the revision that injects them ("" for
	// none: the injector did not act) and how the kubelet runs them.
	rev string
	run func(*corev1.Pod) *corev1.Pod
	// stuck keeps the old pods, as a rollout does while its new pods are not ready.
	stuck bool

	pods     map[string][]*corev1.Pod // each Deployment's pods, by its name
	restarts map[string]string        // the restart each Deployment last rolled out
	rollouts map[string]int           // how many, to name the pods of each ("reviews-r1-0")
}

// newCluster stores the namespace with labels, the Deployments with their pods (by the
// Deployment's name) and other objects.
func newCluster(t *testing.T, labels map[string]string, ds []*appsv1.Deployment, pods map[string][]*corev1.Pod, other ...runtime.Object) *cluster {
	t.Helper()
	c := &cluster{clock: &clock{t: t0}, rev: "default", run: ready, pods: pods, restarts: map[string]string{}, rollouts: map[string]int{}}
	// As the API server stores a new namespace. With no field set at all, its creator would own
	// nothing, and the field manager would give a later label to "before-first-apply".
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	objs := append([]runtime.Object{namespace}, other...)
	for _, d := range ds {
		objs = append(objs, d)
		c.restarts[d.Name] = d.Spec.Template.Annotations[AnnotationRestartedAt]
		for _, p := range pods[d.Name] {
			objs = append(objs, p)
		}
	}
	c.api = fakeapi.New(fakeapi.Options{Kinds: []fakeapi.Kind{fakeapi.Namespace, fakeapi.Deployment, fakeapi.StatefulSet, fakeapi.DaemonSet},
		Objects: objs, Now: c.clock.Now})
	c.api.OnWrite("deployments", func(obj runtime.Object) { c.rollout(t, obj.(*appsv1.Deployment)) })
	return c
}

// rollout replaces a restarted Deployment's pods and reports the rollout in its status.
func (c *cluster) rollout(t *testing.T, d *appsv1.Deployment) {
	at := d.Spec.Template.Annotations[AnnotationRestartedAt]
	if at == c.restarts[d.Name] {
		return // a status update, or a write that restarts nothing
	}
	c.restarts[d.Name] = at
	c.rollouts[d.Name]++
	old := c.pods[d.Name]
	var fresh []*corev1.Pod
	readyPods := int32(0)
	for i := range *d.Spec.Replicas {
		p := c.run(newPod(d.Name, fmt.Sprintf("%s-r%d-%d", d.Name, c.rollouts[d.Name], i), c.rev, c.clock.Now()))
		if p.Status.Phase == corev1.PodPending {
			ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: p.Name + ".1", Namespace: ns}, Reason: "FailedScheduling", Type: corev1.EventTypeWarning,
				Message:        "0/3 nodes are available: 3 Insufficient memory.",
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID}}
			if err := c.api.Create("default-scheduler", ev); err != nil {
				t.Error(err)
			}
		}
		if err := c.api.Create("kubelet", p); err != nil {
			t.Error(err)
		}
		if meshedAndReady(p, c.rev) || c.rev == "" && p.Status.Phase == corev1.PodRunning {
			readyPods++
		}
		fresh = append(fresh, p)
	}
	total := int32(len(fresh))
	if c.stuck {
		fresh, total = append(old, fresh...), total+int32(len(old))
	} else {
		for _, p := range old {
			if err := c.api.Delete(p); err != nil {
				t.Error(err)
			}
		}
	}
	c.pods[d.Name] = fresh
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: total, UpdatedReplicas: *d.Spec.Replicas, ReadyReplicas: readyPods, AvailableReplicas: readyPods}
	if err := c.api.Update("kube-controller-manager", d); err != nil {
		t.Error(err)
	}
	c.clock.advance(time.Minute) // the pods have run a while by the time the wait ends
}

func (c *cluster) options(o Options) Options {
	o.Client, o.Dynamic, o.Mapper, o.Namespace, o.Now = c.api.Client, c.api.Dynamic, c.api.Mapper, ns, c.clock.Now
	o.Poll = time.Millisecond
	if o.Timeout == 0 {
		o.Timeout = 20 * time.Millisecond // the wait times out only in cases with problems
	}
	return o
}

func (c *cluster) namespace(t *testing.T) *corev1.Namespace {
	t.Helper()
	n, err := c.api.Client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (c *cluster) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.api.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// podNames lists the namespace's pods, as stored.
func (c *cluster) podNames(t *testing.T) string {
	t.Helper()
	l, err := c.api.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Items {
		out = append(out, p.Name)
	}
	return strings.Join(out, " ")
}

func workloads(r *Result) string {
	var out []string
	for _, w := range r.Workloads {
		out = append(out, fmt.Sprintf("%s/%s %s %d/%d", w.Kind, w.Name, w.Action, w.Meshed, w.Pods))
	}
	return strings.Join(out, "; ")
}

func unmeshed(app string, n int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, newPod(app, fmt.Sprintf("%s-old-%d", app, i), "", t0.Add(-time.Hour)))
	}
	return out
}

func meshed(app, rev string, n int) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range n {
		out = append(out, newPod(app, fmt.Sprintf("%s-meshed-%d", app, i), rev, t0.Add(-time.Hour)))
	}
	return out
}

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
