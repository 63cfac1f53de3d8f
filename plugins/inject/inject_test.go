package inject

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/inject"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/meshtest"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func run(ctx context.Context, kubeconfig string, args ...string) (*inject.Result, string, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs(append(args, "-o", "json"))
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	var r inject.Result
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
			return nil, errOut.String(), jerr
		}
	}
	return &r, errOut.String(), err
}

func deployment(ns, name string, replicas int32, podLabels map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	for k, v := range podLabels {
		labels[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/" + name}}}}},
	}
}

// keepSidecarOOMKilled holds the sidecars of app's pods at 1/2, OOM-killed, as a sidecar with
// too little memory is: kwok would mark them ready.
func keepSidecarOOMKilled(ctx context.Context, t *testing.T, c *testcluster.Cluster, ns, app string) {
	w, err := c.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted || p.Status.Phase != corev1.PodRunning {
				continue
			}
			changed := false
			for i := range p.Status.ContainerStatuses {
				cs := &p.Status.ContainerStatuses[i]
				if cs.Name == "istio-proxy" && (cs.Ready || cs.LastTerminationState.Terminated == nil) {
					cs.Ready, cs.RestartCount = false, 3
					cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}
					changed = true
				}
			}
			if !changed {
				continue
			}
			for i := range p.Status.Conditions {
				if p.Status.Conditions[i].Type == corev1.PodReady || p.Status.Conditions[i].Type == corev1.ContainersReady {
					p.Status.Conditions[i].Status = corev1.ConditionFalse
				}
			}
			_, _ = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		}
	}()
}

// TestInject injects a namespace through a real admission webhook on the real control plane:
// the workloads restart with their sidecar, a pod held at 1/2 is explained as OOM-killed, a
// pod too big for the node as not scheduled, an opted-out workload is left alone, and a second
// run changes nothing.
func TestInject(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	inj := meshtest.StartInjector(t, c, "1-30")
	inj.ProxyMemoryIn = map[string]string{"big": "300Gi"} // more than the node has
	for _, ns := range []string{"shop", "big"} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*appsv1.Deployment{
		deployment("shop", "web", 2, nil),
		deployment("shop", "api", 1, nil),
		deployment("shop", "batch", 1, map[string]string{"sidecar.istio.io/inject": "false"}),
		deployment("big", "heavy", 1, nil),
	} {
		if d.Name == "batch" {
			d.Spec.Template.Annotations = map[string]string{"sidecar.istio.io/inject": "false"}
		}
		if _, err := c.Client.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, ns := range []string{"shop", "big"} {
			l, err := c.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, d := range l.Items {
				if d.Status.AvailableReplicas != *d.Spec.Replicas {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("workloads not running before injection: %v", err)
	}
	keepSidecarOOMKilled(ctx, t, c, "shop", "api")
	// web was restarted with kubectl rollout restart before: its annotation is kubectl's.
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}`)
	if _, err := c.Client.AppsV1().Deployments("shop").Patch(ctx, "web", types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-rollout"}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2, err
	}); err != nil {
		t.Fatal(err)
	}

	res, stderr, err := run(ctx, c.Kubeconfig, "shop", "--timeout", "8s")
	if cli.Code(err) != cli.ExitFindings {
		t.Fatalf("inject shop: %v, want exit 1 for the pod at 1/2\nstderr:\n%s", err, stderr)
	}
	got := map[string]inject.Workload{}
	for _, w := range res.Workloads {
		got[w.Name] = w
	}
	if w := got["web"]; w.Action != "restarted" || w.Pods != 2 || w.Meshed != 2 {
		t.Errorf("web: %+v, want restarted with 2 of 2 pods meshed", w)
	}
	if w := got["batch"]; w.Action != "opted out" {
		t.Errorf("batch (sidecar.istio.io/inject=false): %+v", w)
	}
	var oom *inject.Problem
	for i, p := range res.Problems {
		if strings.HasPrefix(p.Pod, "api-") && p.Ready == "1/2" {
			oom = &res.Problems[i]
		}
		if strings.HasPrefix(p.Pod, "web-") {
			t.Errorf("web pod reported: %+v", p)
		}
	}
	if oom == nil || !strings.Contains(oom.Reason, "OOM") || oom.Fix == "" {
		t.Fatalf("the api pod kept at 1/2: %+v (problems %+v)", oom, res.Problems)
	}
	ns, _ := c.Client.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if ns.Labels["istio-injection"] != "enabled" || res.Label.Action != "configured" {
		t.Errorf("namespace labels %v, label %s", ns.Labels, res.Label.Action)
	}

	// A second run restarts nothing: the namespace, web and api stay as they are.
	before := map[string]string{}
	l, _ := c.Client.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{})
	for _, d := range l.Items {
		before[d.Name] = d.ResourceVersion
	}
	res, _, _ = run(ctx, c.Kubeconfig, "shop", "--timeout", "8s")
	if res.Label.Action != "unchanged" || len(res.Restarts) != 0 {
		t.Errorf("second run: label %s, restarts %v", res.Label.Action, res.Restarts)
	}
	for _, w := range res.Workloads {
		// api's rollout is stuck on its new pod, or done if the controller saw that pod ready
		// for a moment before it was held at 1/2 and replaced the old one: not restarted
		// either way, and still reported.
		apiOK := w.Action == "rollout in progress" || w.Action == "already meshed"
		if w.Name == "api" && !apiOK || w.Name == "web" && w.Action != "already meshed" {
			t.Errorf("second run: %+v", w)
		}
	}
	stillReported := false
	for _, p := range res.Problems {
		stillReported = stillReported || strings.HasPrefix(p.Pod, "api-") && p.Ready == "1/2"
	}
	if !stillReported {
		t.Errorf("second run forgot the api pod at 1/2: %+v", res.Problems)
	}
	l, _ = c.Client.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{})
	for _, d := range l.Items {
		if d.ResourceVersion != before[d.Name] {
			t.Errorf("second run changed deployment %s", d.Name)
		}
	}

	// A sidecar too big for the node: the new pod is not scheduled.
	res, _, err = run(ctx, c.Kubeconfig, "big", "--timeout", "5s")
	if cli.Code(err) != cli.ExitFindings {
		t.Fatalf("inject big: %v", err)
	}
	pending := false
	for _, p := range res.Problems {
		pending = pending || p.Ready == "Pending" && strings.Contains(p.Reason, "Insufficient memory")
	}
	if !pending {
		t.Errorf("no pending pod explained by memory: %+v", res.Problems)
	}

	// A server dry run on a fresh namespace changes nothing.
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dry, _ := c.Client.CoreV1().Namespaces().Get(ctx, "dry", metav1.GetOptions{})
	if _, _, err := run(ctx, c.Kubeconfig, "dry", "--dry-run=server"); err != nil {
		t.Fatal(err)
	}
	if after, _ := c.Client.CoreV1().Namespaces().Get(ctx, "dry", metav1.GetOptions{}); after.ResourceVersion != dry.ResourceVersion {
		t.Error("a server dry run labelled the namespace")
	}

	// Moving shop to a revision: refused while istio-injection is set, then done with --force-conflicts.
	if _, _, err := run(ctx, c.Kubeconfig, "shop", "--revision", "1-30", "--no-restart"); err == nil || !strings.Contains(err.Error(), "takes precedence") {
		t.Errorf("revision over istio-injection: %v", err)
	}
	res, _, err = run(ctx, c.Kubeconfig, "shop", "--revision", "1-30", "--force-conflicts", "--timeout", "8s")
	if cli.Code(err) != cli.ExitFindings { // api still OOMs
		t.Fatalf("inject --revision --force-conflicts: %v", err)
	}
	if w := findWorkload(res, "web"); w.Action != "restarted" || w.Meshed != 2 {
		t.Errorf("web moved to 1-30: %+v", w)
	}
	ns, _ = c.Client.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if _, still := ns.Labels["istio-injection"]; still || ns.Labels["istio.io/rev"] != "1-30" {
		t.Errorf("namespace labels after the move: %v", ns.Labels)
	}
}

func findWorkload(r *inject.Result, name string) inject.Workload {
	for _, w := range r.Workloads {
		if w.Name == name {
			return w
		}
	}
	return inject.Workload{}
}
