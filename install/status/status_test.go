package status

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
)

// The status engine's decisions on fake clients, in milliseconds: the control-plane tests
// (plugins/status) run the same engine against a real API server.

func istiod(ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "discovery", Image: "docker.io/istio/pilot:1.30.3"},
		}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
	}
}

func crd(group string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "things." + group},
		"spec": map[string]any{"group": group, "versions": []any{
			map[string]any{"name": "v1", "served": true, "storage": true},
		}},
	}}
}

func newStatus(objs []runtime.Object, crds ...runtime.Object) *Status {
	scheme := runtime.NewScheme()
	gvrs := map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}
	return &Status{Client: fake.NewSimpleClientset(objs...), Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, gvrs, crds...)}
}

func find(checks []check.Check, category, part string) *check.Check {
	for i := range checks {
		if checks[i].Category == category && strings.Contains(checks[i].Message, part) {
			return &checks[i]
		}
	}
	return nil
}

func TestStatusDecisions(t *testing.T) {
	injected := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Labels: map[string]string{"istio-injection": "enabled"}}}
	for _, tc := range []struct {
		name     string
		objs     []runtime.Object
		crds     []runtime.Object
		category string
		part     string
		want     check.Status
	}{
		{"no istiod", nil, nil, CategoryControlPlane, "no istiod", check.Failed},
		{"istiod ready", []runtime.Object{istiod(1)}, nil, CategoryControlPlane, "1.30.3 (revision default)", check.OK},
		{"istiod not ready", []runtime.Object{istiod(0)}, nil, CategoryControlPlane, "0 of 1 replicas ready", check.Failed},
		{"no CRDs", []runtime.Object{istiod(1)}, nil, CategoryCRDs, "not installed", check.Failed},
		{"Istio's CRDs", []runtime.Object{istiod(1)}, []runtime.Object{crd("networking.istio.io"), crd("security.istio.io"), crd("example.com")}, CategoryCRDs, "2 Istio CRDs in 2 API groups", check.OK},
		{"an injected namespace served", []runtime.Object{istiod(1), injected}, nil, CategoryNamespaces, "bookinfo: revision default", check.OK},
		{"an injected namespace no istiod serves", []runtime.Object{istiod(0), injected}, nil, CategoryNamespaces, "which no ready istiod serves", check.Failed},
		{"no namespace injected", []runtime.Object{istiod(1)}, nil, CategoryNamespaces, "no namespace is labelled", check.Warning},
	} {
		checks := newStatus(tc.objs, tc.crds...).Run(context.Background())
		c := find(checks, tc.category, tc.part)
		if c == nil || c.Status != tc.want {
			t.Errorf("%s: %+v, want a %s check with %q in %v", tc.name, c, tc.want, tc.part, checks)
		}
		if c != nil && c.Status != check.OK && c.Fix == "" {
			t.Errorf("%s: %q has no fix", tc.name, c.Message)
		}
	}
}

// A part that cannot be read is a warning, and the rest is still checked.
func TestStatusReadFailureIsAWarning(t *testing.T) {
	s := newStatus([]runtime.Object{istiod(1)})
	s.Client.(*fake.Clientset).PrependReactor("list", "mutatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	checks := s.Run(context.Background())
	if c := find(checks, CategoryWebhooks, "could not be read: forbidden"); c == nil || c.Status != check.Warning {
		t.Errorf("webhooks: %v", checks)
	}
	if c := find(checks, CategoryControlPlane, "1 of 1 replicas ready"); c == nil || c.Status != check.OK {
		t.Errorf("the control plane was not checked after the failure: %v", checks)
	}
}
