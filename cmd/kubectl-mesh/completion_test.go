package main

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// TestCompletion completes pod names, workload names and namespaces from a real API server, as
// kubectl (1.26+) asks kubectl_complete-mesh, which runs `kubectl-mesh __complete`.
func TestCompletion(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reviews-v2-abc", Namespace: "bookinfo"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/reviews"}}}}
	if _, err := c.Client.CoreV1().Pods("bookinfo").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := int32(0)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "ratings-v1", Namespace: "bookinfo"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ratings"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "ratings"}}, Spec: pod.Spec}}}
	if _, err := c.Client.AppsV1().Deployments("bookinfo").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env := []string{"KUBECONFIG=" + c.Kubeconfig}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "why-slow", "-n", "bookinfo", ""}, []string{"reviews-v2-abc", "deploy/", "svc/"}},
		{[]string{"__complete", "why-slow", "-n", "bookinfo", "deploy/"}, []string{"deploy/ratings-v1"}},
		{[]string{"__complete", "capture", "-n", "bookinfo", "pod/rev"}, []string{"pod/reviews-v2-abc"}},
		{[]string{"__complete", "why-slow", "-n", ""}, []string{"bookinfo", "default", "kube-system"}},
		{[]string{"__complete", "inject", ""}, []string{"bookinfo"}},
		{[]string{"__complete", "nodes", ""}, []string{c.Nodes[0]}},
	} {
		r := runEnv(t, env, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w+"\n") && !strings.Contains(r.stdout, w+"\t") {
				t.Errorf("%v: no %q in\n%s", tc.args, w, r.stdout)
			}
		}
	}
	if r := run(t, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "__start_kubectl-mesh") {
		t.Errorf("completion bash: exit %d\n%.300s", r.code, r.stdout)
	}
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		if r := run(t, "completion", shell); r.code != 0 || !strings.Contains(r.stdout, "kubectl-mesh") {
			t.Errorf("completion %s: exit %d", shell, r.code)
		}
	}
	// install's flags are the sibling's.
	if r := run(t, "__complete", "install", "--pro"); !strings.Contains(r.stdout, "--profile") {
		t.Errorf("install flags not completed:\n%s", r.stdout)
	}
}
