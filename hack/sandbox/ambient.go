package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// AmbientNamespace holds the sandbox's ambient pods: no sidecar, their node's ztunnel replaying
// real ztunnel lines from the real-world corpus that name them.
const AmbientNamespace = "demo-ambient"

// ambientPods are the ambient pods and the corpus case whose first line the ztunnel prints
// about each, named as in that line; a pod without a case is one istio-cni never marked.
var ambientPods = []struct{ name, realworld string }{
	{"echo-66d88ff694-pnk6h", "istio-ambient-ztunnel-pr-1229-005-outbound-hbone-timeout-networkpolicy-hint"},
	{"operator-68cc96bd7b-vfkgk", "istio-ambient-istio-issue-53696-002-inbound-policy-rejection-no-src-identity"},
	{"left-out", ""},
}

const ztunnelPod = "ztunnel-sandbox"

// populateAmbient creates the ambient namespace, its pods and the ztunnel of their node, whose
// log kwok serves from the corpus's lines.
func populateAmbient(ctx context.Context, c *testcluster.Cluster, p paths) error {
	root, err := testcluster.RepoRoot()
	if err != nil {
		return err
	}
	var lines []string
	for _, ap := range ambientPods {
		if ap.realworld == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, "testdata", "realworld", ap.realworld, "input.txt"))
		if err != nil {
			return fmt.Errorf("ztunnel's lines: %w", err)
		}
		lines = append(lines, strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	}
	logs := filepath.Join(p.replayDir(), "ztunnel.log")
	if err := os.WriteFile(logs, []byte(testcluster.CRILog(lines...)), 0o644); err != nil {
		return err
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: AmbientNamespace, Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}},
	} {
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
	}
	if err := c.Apply(ctx, testcluster.LogsRule("istio-system", ztunnelPod, []string{sidecarContainer}, logs)); err != nil {
		return fmt.Errorf("kwok rule of ztunnel's log: %w", err)
	}
	pod := func(ns, name string, labels, annotations map[string]string, container string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: c.Nodes[0], Containers: []corev1.Container{{Name: container, Image: "example.invalid/" + container}}}}
	}
	pods := []*corev1.Pod{pod("istio-system", ztunnelPod, map[string]string{"app": "ztunnel"}, nil, sidecarContainer)}
	for _, ap := range ambientPods {
		var marked map[string]string
		if ap.realworld != "" {
			marked = map[string]string{"ambient.istio.io/redirection": "enabled"}
		}
		pods = append(pods, pod(AmbientNamespace, ap.name, map[string]string{"app": strings.SplitN(ap.name, "-", 2)[0]}, marked, "app"))
	}
	for _, p := range pods {
		if _, err := c.Client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}
