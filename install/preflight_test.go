package install

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func byCategory(checks []Check, cat string) []Check {
	var out []Check
	for _, c := range checks {
		if c.Category == cat {
			out = append(out, c)
		}
	}
	return out
}

// TestPreflight runs the checks on the real control plane: a fresh cluster passes, then an
// unsupported Kubernetes version, a user without cluster-admin, another tool's istiod and a
// node the sidecars would overfill each fail with what to do.
func TestPreflight(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := NewProfile(ProfileDefault, "")
	if err != nil {
		t.Fatal(err)
	}
	pf := &Preflight{Client: c.Client, Dynamic: c.Dynamic, Profile: p, SkipNodesReason: "not asked"}
	checks := pf.Run(ctx)
	if Failed(checks) {
		t.Fatalf("a fresh cluster fails the preflight: %+v", checks)
	}
	if v := byCategory(checks, CategoryCluster); len(v) != 1 || !strings.Contains(v[0].Message, "Kubernetes 1.33 is supported by Istio 1.30 (1.32 to 1.36)") {
		t.Errorf("version check %+v", v)
	}
	if e := byCategory(checks, CategoryExisting); len(e) != 1 || !strings.Contains(e[0].Message, "fresh install") {
		t.Errorf("existing Istio %+v", e)
	}

	// Istio 1.25 supports Kubernetes 1.29 to 1.32.
	old, _ := NewProfile(ProfileMinimal, "1.25.3")
	if v := (&Preflight{Client: c.Client, Dynamic: c.Dynamic, Profile: old}).version(); v.Status != CheckFailed || v.Fix == "" {
		t.Errorf("Istio 1.25 on Kubernetes 1.33: %+v", v)
	}

	// A user who may only read.
	cfg, err := c.UserWithRole(ctx, "viewer", "", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}})
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := kubernetes.NewForConfig(cfg)
	vd, _ := dynamic.NewForConfig(cfg)
	perms := (&Preflight{Client: vc, Dynamic: vd, Profile: p}).permissions(ctx)
	if len(perms) != 1 || perms[0].Status != CheckFailed || !strings.Contains(perms[0].Message, "create customresourcedefinitions.apiextensions.k8s.io") || perms[0].Fix == "" {
		t.Errorf("a reader's permissions %+v", perms)
	}

	// Another tool's injector webhook: the istiod chart would stop halfway on it.
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://127.0.0.1:1/inject"
	wh := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "x.sidecar-injector.istio.io", AdmissionReviewVersions: []string{"v1"}, SideEffects: &none,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}}}}
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, wh, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := pf.webhook(ctx); len(w) != 1 || w[0].Status != CheckFailed || !strings.Contains(w[0].Message, "istio-sidecar-injector exists") {
		t.Errorf("another tool's webhook: %+v", w)
	}
	if w := (&Preflight{Client: c.Client, Dynamic: c.Dynamic, Profile: &Profile{Revision: "1-30", Namespace: DefaultNamespace}}).webhook(ctx); len(w) != 0 {
		t.Errorf("a revision's webhook is its own: %+v", w)
	}
	if err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, wh.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Another tool's control plane at the same revision.
	replicas := int32(1)
	foreign := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "default", Labels: map[string]string{"app": "istiod"}},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "istiod"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "istiod"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "discovery", Image: "docker.io/istio/pilot:1.24.2"}}}}},
	}
	if _, err := c.Client.AppsV1().Deployments("default").Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ex := pf.existing(ctx)
	if len(ex) < 1 || ex[0].Status != CheckFailed || !strings.Contains(ex[0].Message, "istiod 1.24.2 (revision default) in default was installed by another tool") {
		t.Errorf("another tool's istiod: %+v", ex)
	}
	rev := *p
	rev.Revision = "1-30"
	if ex := (&Preflight{Client: c.Client, Dynamic: c.Dynamic, Profile: &rev}).existing(ctx); ex[0].Status != CheckOK || !strings.Contains(ex[0].Message, "beside") {
		t.Errorf("a revisioned install beside it: %+v", ex)
	}

	// The sidecar tax: a namespace to inject whose node has 50m of CPU left.
	node, err := c.Client.CoreV1().Nodes().Get(ctx, c.Nodes[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	almostAll := node.Status.Allocatable.Cpu().DeepCopy()
	almostAll.Sub(resource.MustParse("50m"))
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	big := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: c.Nodes[0],
		Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: almostAll}}}}}}
	if _, err := c.Client.CoreV1().Pods("shop").Create(ctx, big, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if capa := pf.capacity(ctx); len(capa) != 1 || capa[0].Status != CheckOK || !strings.Contains(capa[0].Message, "no namespace is labelled") {
		t.Errorf("before naming shop: %+v", capa)
	}
	pf.InjectNamespaces = []string{"shop"}
	capa := pf.capacity(ctx)
	if len(capa) != 1 || capa[0].Status != CheckFailed || !strings.Contains(capa[0].Message, "after injecting 1 pods (100m CPU and 128Mi each)") || capa[0].Fix == "" {
		t.Errorf("a node the sidecar overfills: %+v", capa)
	}
	// Overrides that shrink the sidecar's requests are what the check counts: 40m fits (tightly).
	if pf.Overrides, err = NewOverrides(map[string]any{ChartIstiod: map[string]any{"global": map[string]any{"proxy": map[string]any{
		"resources": map[string]any{"requests": map[string]any{"cpu": "40m", "memory": "64Mi"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if capa := pf.capacity(ctx); len(capa) != 1 || capa[0].Status == CheckFailed || !strings.Contains(capa[0].Message, "(40m CPU and 64Mi each)") {
		t.Errorf("a sidecar overridden to 40m: %+v", capa)
	}
}
