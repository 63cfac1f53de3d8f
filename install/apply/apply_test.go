package apply

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func configMap(name string, data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"data":     data,
	}}
}

// TestApply runs every path of Apply and ApplyFields against a real API server.
func TestApply(t *testing.T) {
	c := testcluster.Start(t, testcluster.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))
	a := &Applier{Dynamic: c.Dynamic, Mapper: mapper}
	cms := c.Client.CoreV1().ConfigMaps("default")

	step := func(name string, obj *unstructured.Unstructured, want Action) {
		t.Helper()
		got, err := a.Apply(ctx, obj)
		if err != nil || got.Action != want {
			t.Fatalf("%s: %v, %v; want %s", name, got, err, want)
		}
	}
	step("first apply", configMap("mesh-a", map[string]any{"k": "1"}), Created)
	step("same again", configMap("mesh-a", map[string]any{"k": "1"}), Unchanged)
	step("a change", configMap("mesh-a", map[string]any{"k": "2"}), Configured)
	cm, err := cms.Get(ctx, "mesh-a", metav1.GetOptions{})
	if err != nil || cm.Labels[ManagedByLabel] != ManagedBy || cm.Data["k"] != "2" {
		t.Fatalf("stored %+v (%v)", cm, err)
	}
	var manager string
	for _, mf := range cm.ManagedFields {
		if mf.Operation == metav1.ManagedFieldsOperationApply {
			manager = mf.Manager
		}
	}
	if manager != FieldManager {
		t.Errorf("applied by %q, want the field manager %q", manager, FieldManager)
	}

	// Dry runs store nothing.
	rv := cm.ResourceVersion
	a.DryRun = DryRunServer
	step("server dry run", configMap("mesh-a", map[string]any{"k": "3"}), WouldConfigure)
	step("server dry run, same", configMap("mesh-a", map[string]any{"k": "2"}), Unchanged)
	step("server dry run, new", configMap("mesh-new", map[string]any{"k": "1"}), WouldCreate)
	var out bytes.Buffer
	a.DryRun, a.Out = DryRunClient, &out
	step("client dry run", configMap("mesh-a", map[string]any{"k": "4"}), Printed)
	if !strings.Contains(out.String(), "k: \"4\"") || !strings.Contains(out.String(), ManagedByLabel+": "+ManagedBy) {
		t.Errorf("client dry run printed:\n%s", out.String())
	}
	a.DryRun = DryRunNone
	if cm, _ := cms.Get(ctx, "mesh-a", metav1.GetOptions{}); cm.ResourceVersion != rv || cm.Data["k"] != "2" {
		t.Errorf("a dry run changed the object: %s -> %s, %v", rv, cm.ResourceVersion, cm.Data)
	}
	if _, err := cms.Get(ctx, "mesh-new", metav1.GetOptions{}); err == nil {
		t.Error("a server dry run created an object")
	}

	// An object someone else made is neither overwritten nor adopted, unless forced.
	theirs := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "theirs", Namespace: "default"}, Data: map[string]string{"k": "mine"}}
	if _, err := cms.Create(ctx, theirs, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, configMap("theirs", map[string]any{"k": "ours"})); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("apply over another tool's object: %v, want ErrNotOurs", err)
	}
	if cm, _ := cms.Get(ctx, "theirs", metav1.GetOptions{}); cm.Data["k"] != "mine" {
		t.Fatal("the refused apply changed the object")
	}

	// Fields on someone else's object: only ours are claimed; theirs conflict.
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "default", "labels": map[string]any{"istio-injection": "enabled"}}}}
	if r, err := a.ApplyFields(ctx, ns); err != nil || r.Action != Configured {
		t.Fatalf("label the namespace: %v, %v", r, err)
	}
	if r, err := a.ApplyFields(ctx, ns); err != nil || r.Action != Unchanged {
		t.Fatalf("label it again: %v, %v", r, err)
	}
	got, _ := c.Client.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
	if got.Labels["istio-injection"] != "enabled" || got.Labels[ManagedByLabel] != "" {
		t.Errorf("namespace labels %v: want the injection label and no claim of ownership", got.Labels)
	}
	if _, err := c.Client.CoreV1().ConfigMaps("default").Patch(ctx, "theirs", types.ApplyPatchType,
		[]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"theirs"},"data":{"k":"mine"}}`),
		metav1.PatchOptions{FieldManager: "gitops"}); err != nil {
		t.Fatal(err)
	}
	var ce *ConflictError
	_, err = a.ApplyFields(ctx, configMap("theirs", map[string]any{"k": "ours"}))
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "gitops") {
		t.Fatalf("a field another manager owns: %v, want a ConflictError naming gitops", err)
	}
	a.ForceConflicts = true
	if r, err := a.ApplyFields(ctx, configMap("theirs", map[string]any{"k": "ours"})); err != nil || r.Action != Configured {
		t.Fatalf("forced: %v, %v", r, err)
	}
	if _, err := a.ApplyFields(ctx, configMap("nobody", map[string]any{"k": "1"})); err == nil {
		t.Error("ApplyFields created an object")
	}

	// A kind the cluster does not serve says which CRDs are missing.
	pa := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "default", "namespace": "default"}}}
	if _, err := a.Apply(ctx, pa); err == nil || !strings.Contains(err.Error(), "does not serve PeerAuthentication") {
		t.Errorf("missing CRD: %v", err)
	}
}

func TestParseDryRun(t *testing.T) {
	for in, want := range map[string]DryRun{"": DryRunNone, "none": DryRunNone, "true": DryRunClient, "client": DryRunClient, "server": DryRunServer} {
		if got, err := ParseDryRun(in); err != nil || got != want {
			t.Errorf("ParseDryRun(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseDryRun("yes"); err == nil {
		t.Error("--dry-run=yes accepted")
	}
}
