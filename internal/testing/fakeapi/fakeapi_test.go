package fakeapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

var (
	nsGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	paGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}
	paGVR = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
)

func applyPatch(t *testing.T, obj map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The server-side apply the engines rely on, on a built-in kind written by both clients: a
// label applied over the typed client's object, unchanged when applied again, a conflict with
// another manager's field unless forced, and a dry run that stores nothing.
func TestApplyBuiltin(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Kinds: []Kind{Namespace}, Objects: []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}},
	}})
	nss := s.Dynamic.Resource(nsGVR)
	apply := func(labels map[string]any, force bool, dryRun ...string) (*unstructured.Unstructured, error) {
		body := applyPatch(t, map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "shop", "labels": labels}})
		return nss.Patch(ctx, "shop", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "mesh", Force: &force, DryRun: dryRun})
	}
	get := func() *corev1.Namespace {
		ns, err := s.Client.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	before := get()
	if before.ResourceVersion == "" || before.Generation != 1 || before.UID == "" {
		t.Fatalf("a stored object has a resource version, a generation and a UID: %+v", before.ObjectMeta)
	}

	got, err := apply(map[string]any{"istio-injection": "enabled"}, false)
	if err != nil || got.GetLabels()["istio-injection"] != "enabled" || got.GetResourceVersion() == before.ResourceVersion {
		t.Fatalf("apply a label: %v %v", got, err)
	}
	if ns := get(); ns.Labels["istio-injection"] != "enabled" || ns.Labels["team"] != "a" {
		t.Fatalf("the typed client sees %v", ns.Labels)
	}
	rv := get().ResourceVersion
	if got, err := apply(map[string]any{"istio-injection": "enabled"}, false); err != nil || got.GetResourceVersion() != rv {
		t.Fatalf("the same apply again moved the resource version %s: %v %v", rv, got, err)
	}

	if _, err := apply(map[string]any{"team": "b"}, false); !apierrors.IsConflict(err) {
		t.Fatalf("a label of kubectl-create's, changed: %v, want a conflict", err)
	}
	if got, err := apply(map[string]any{"istio-injection": "enabled", "team": "b"}, true, metav1.DryRunAll); err != nil || got.GetLabels()["team"] != "b" {
		t.Fatalf("forced dry run: %v %v", got, err)
	}
	if ns := get(); ns.Labels["team"] != "a" || ns.ResourceVersion != rv {
		t.Fatalf("a dry run stored %v (rv %s, was %s)", ns.Labels, ns.ResourceVersion, rv)
	}
	if _, err := apply(map[string]any{"istio-injection": "enabled", "team": "b"}, true); err != nil || get().Labels["team"] != "b" {
		t.Fatalf("forced: %v %v", get().Labels, err)
	}
}

// A custom resource is created by an apply, and its generation moves with its spec only.
func TestApplyCustom(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Kinds: []Kind{{GVK: paGVK, Namespaced: true}}})
	if _, err := s.Mapper.RESTMapping(paGVK.GroupKind(), "v1"); err != nil {
		t.Fatal(err)
	}
	pas := s.Dynamic.Resource(paGVR).Namespace("shop")
	apply := func(mode string, labels map[string]any) *unstructured.Unstructured {
		t.Helper()
		body := applyPatch(t, map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
			"metadata": map[string]any{"name": "default", "namespace": "shop", "labels": labels}, "spec": map[string]any{"mtls": map[string]any{"mode": mode}}})
		got, err := pas.Patch(ctx, "default", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "mesh"})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if _, err := pas.Get(ctx, "default", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("before: %v", err)
	}
	first := apply("STRICT", nil)
	second := apply("STRICT", map[string]any{"a": "b"})
	third := apply("PERMISSIVE", map[string]any{"a": "b"})
	if first.GetGeneration() != 1 || second.GetGeneration() != 1 || third.GetGeneration() != 2 ||
		first.GetResourceVersion() == second.GetResourceVersion() || second.GetResourceVersion() == third.GetResourceVersion() {
		t.Errorf("generations %d %d %d, resource versions %s %s %s", first.GetGeneration(), second.GetGeneration(), third.GetGeneration(),
			first.GetResourceVersion(), second.GetResourceVersion(), third.GetResourceVersion())
	}
	if mode, _, _ := unstructured.NestedString(third.Object, "spec", "mtls", "mode"); mode != "PERMISSIVE" {
		t.Errorf("stored mode %q", mode)
	}
}

// Field selectors filter lists on the fields they name; an unknown one is refused.
func TestFieldSelector(t *testing.T) {
	ctx := context.Background()
	ev := func(name, pod string) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod}}
	}
	s := New(Options{Objects: []runtime.Object{ev("e1", "a"), ev("e2", "b"), ev("e3", "a")}})
	l, err := s.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "a").String()})
	if err != nil || len(l.Items) != 2 || l.Items[0].Name != "e1" || l.Items[1].Name != "e3" {
		t.Fatalf("events of pod a: %v %v", l, err)
	}
	if _, err := s.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "reason=x"}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("an unknown field: %v", err)
	}
}

// A hook sees stored writes only, and may write itself.
func TestOnWrite(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Kinds: []Kind{Namespace}, Objects: []runtime.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}})
	var seen []string
	s.OnWrite("namespaces", func(obj runtime.Object) {
		ns := obj.(*corev1.Namespace)
		seen = append(seen, ns.Labels["l"])
		if err := s.Create("controller", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-" + ns.Labels["l"], Namespace: "shop"}}); err != nil {
			t.Error(err)
		}
	})
	patch := func(v string, dryRun ...string) {
		t.Helper()
		body := []byte(`{"metadata":{"labels":{"l":"` + v + `"}}}`)
		if _, err := s.Client.CoreV1().Namespaces().Patch(ctx, "shop", types.MergePatchType, body, metav1.PatchOptions{DryRun: dryRun}); err != nil {
			t.Fatal(err)
		}
	}
	patch("dry", metav1.DryRunAll)
	patch("x")
	patch("x") // unchanged: not a write
	if strings.Join(seen, ",") != "x" {
		t.Errorf("hook saw %q", seen)
	}
	if _, err := s.Client.CoreV1().ConfigMaps("shop").Get(ctx, "cm-x", metav1.GetOptions{}); err != nil {
		t.Errorf("the hook's write: %v", err)
	}
}
