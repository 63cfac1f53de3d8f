package inject

import (
	"context"
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

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/fakeapi"
)

// The fake cluster of inject's tests: the fake API server, the Deployment controller and
// kubelet the test plays, and the pods they make.

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
