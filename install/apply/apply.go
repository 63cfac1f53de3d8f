// Package apply writes objects to a cluster the way every kubectl-mesh command that changes one
// must: server-side apply with the field manager kubectl-mesh, objects the tool creates marked
// with app.kubernetes.io/managed-by=kubectl-mesh, never overwriting an object someone else made
// and never taking a field someone else owns unless asked, with a client dry run (the manifests,
// no cluster needed) and a server dry run (validated and defaulted by the API server, nothing
// stored). A second apply of the same objects changes nothing, and says so.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

const (
	// FieldManager owns the fields kubectl-mesh applies.
	FieldManager = "kubectl-mesh"
	// ManagedByLabel and ManagedBy mark the objects kubectl-mesh created, which it may change
	// and delete; it never deletes or overwrites an object without them.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "kubectl-mesh"
)

// DryRun is a --dry-run mode.
type DryRun string

// The --dry-run modes, as kubectl names them.
const (
	DryRunNone   DryRun = ""
	DryRunClient DryRun = "client" // print the objects; nothing is sent to the cluster
	DryRunServer DryRun = "server" // the API server validates the apply and stores nothing
)

// ParseDryRun reads a --dry-run value: "none"/"" (apply), "client", "server"; "true" (a bare
// --dry-run) means client.
func ParseDryRun(s string) (DryRun, error) {
	switch s {
	case "", "none", "false":
		return DryRunNone, nil
	case "client", "true":
		return DryRunClient, nil
	case "server":
		return DryRunServer, nil
	}
	return "", fmt.Errorf("--dry-run is client or server (got %q)", s)
}

// Action says what an apply did, or would do.
type Action string

// Actions of Result.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	// Printed is a client dry run's: the object was written to the output, not sent.
	Printed Action = "printed (client dry run)"
	// WouldCreate and WouldConfigure are a server dry run's.
	WouldCreate    Action = "would be created (server dry run)"
	WouldConfigure Action = "would be configured (server dry run)"
)

// Result is what one apply did.
type Result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    Action `json:"action"`
}

func (r Result) String() string {
	if r.Namespace != "" {
		return fmt.Sprintf("%s %s/%s %s", r.Kind, r.Namespace, r.Name, r.Action)
	}
	return fmt.Sprintf("%s %s %s", r.Kind, r.Name, r.Action)
}

// Changed reports whether the apply changed (or would change) the cluster.
func (r Result) Changed() bool { return r.Action != Unchanged }

// Options say how to apply.
type Options struct {
	DryRun DryRun
	// ForceConflicts takes over fields another manager owns, and objects another tool made,
	// as kubectl apply --server-side --force-conflicts does.
	ForceConflicts bool
}

// Applier applies objects with one set of clients.
type Applier struct {
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Out receives the manifests of a client dry run.
	Out io.Writer
	Options
}

// ErrNotOurs is returned for an object that exists and was not created by kubectl-mesh.
var ErrNotOurs = errors.New("not created by kubectl-mesh")

// ConflictError is a field another manager owns, which the apply would have changed.
type ConflictError struct {
	Object string
	// Fields are "field (owned by manager)" for each conflict the API server named.
	Fields []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: fields owned by another manager would change: %s; change them with the tool that owns them, or rerun with --force-conflicts to take them over",
		e.Object, strings.Join(e.Fields, ", "))
}

// Apply creates or updates an object the tool owns: it is labelled managed-by kubectl-mesh, and
// an existing object without that label is refused (ErrNotOurs) unless ForceConflicts.
func (a *Applier) Apply(ctx context.Context, obj *unstructured.Unstructured) (Result, error) {
	obj = obj.DeepCopy()
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedByLabel] = ManagedBy
	obj.SetLabels(labels)
	return a.apply(ctx, obj, true)
}

// ApplyFields applies a few fields to an object someone else owns (a label on a user's
// namespace): no managed-by label, and the object must exist. Only the fields in obj are
// claimed by kubectl-mesh; a field another manager owns is a ConflictError unless
// ForceConflicts.
func (a *Applier) ApplyFields(ctx context.Context, obj *unstructured.Unstructured) (Result, error) {
	return a.apply(ctx, obj.DeepCopy(), false)
}

func (a *Applier) apply(ctx context.Context, obj *unstructured.Unstructured, owned bool) (Result, error) {
	gvk := obj.GroupVersionKind()
	res := Result{Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	if a.DryRun == DryRunClient {
		b, err := yaml.Marshal(obj.Object)
		if err != nil {
			return res, err
		}
		if a.Out != nil {
			fmt.Fprintf(a.Out, "---\n%s", b)
		}
		res.Action = Printed
		return res, nil
	}
	ri, err := a.resource(obj)
	if err != nil {
		return res, err
	}
	what := describe(obj)
	existing, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if !owned {
			return res, fmt.Errorf("%s does not exist", what)
		}
		existing = nil
	case err != nil:
		return res, fmt.Errorf("reading %s: %w", what, err)
	case owned && existing.GetLabels()[ManagedByLabel] != ManagedBy && !a.ForceConflicts:
		return res, fmt.Errorf("%s exists and was %w (no %s=%s label): kubectl-mesh does not overwrite it; merge the change into it yourself, delete it, or rerun with --force-conflicts",
			what, ErrNotOurs, ManagedByLabel, ManagedBy)
	}
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return res, err
	}
	po := metav1.PatchOptions{FieldManager: FieldManager, Force: &a.ForceConflicts}
	if a.DryRun == DryRunServer {
		po.DryRun = []string{metav1.DryRunAll}
	}
	got, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, po)
	if err != nil {
		if apierrors.IsConflict(err) {
			return res, conflict(what, err)
		}
		return res, fmt.Errorf("applying %s: %w", what, err)
	}
	switch {
	case a.DryRun == DryRunServer && existing == nil:
		res.Action = WouldCreate
	case a.DryRun == DryRunServer:
		res.Action = WouldConfigure
		if sameContent(existing, got) {
			res.Action = Unchanged
		}
	case existing == nil:
		res.Action = Created
	case got.GetResourceVersion() == existing.GetResourceVersion():
		res.Action = Unchanged // an apply that changes nothing writes nothing
	default:
		res.Action = Configured
	}
	return res, nil
}

// resource finds the API resource of obj, with a message that says what is missing when the
// cluster does not serve its kind (Istio's CRDs not installed, say).
func (a *Applier) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the cluster does not serve %s (%s): install its CRDs first (for Istio's: kubectl mesh install)", gvk.Kind, gvk.GroupVersion())
		}
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.Dynamic.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
	}
	return a.Dynamic.Resource(m.Resource), nil
}

// sameContent compares two versions of an object without the fields the server keeps moving.
func sameContent(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		unstructured.RemoveNestedField(c.Object, "metadata", "managedFields")
		unstructured.RemoveNestedField(c.Object, "metadata", "resourceVersion")
		unstructured.RemoveNestedField(c.Object, "metadata", "generation")
		unstructured.RemoveNestedField(c.Object, "status")
		return c.Object
	}
	x, _ := json.Marshal(strip(a))
	y, _ := json.Marshal(strip(b))
	return string(x) == string(y)
}

// conflict turns the API server's 409 into the fields and their managers.
func conflict(what string, err error) error {
	var status apierrors.APIStatus
	ce := &ConflictError{Object: what}
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, c := range status.Status().Details.Causes {
			ce.Fields = append(ce.Fields, strings.TrimSpace(c.Field+" "+strings.TrimPrefix(c.Message, "conflict with ")))
		}
	}
	if len(ce.Fields) == 0 {
		ce.Fields = []string{err.Error()}
	}
	sort.Strings(ce.Fields)
	return ce
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", obj.GetKind(), ns, obj.GetName())
	}
	return fmt.Sprintf("%s %s", obj.GetKind(), obj.GetName())
}

// IsOurs reports whether kubectl-mesh created the object.
func IsOurs(obj metav1.Object) bool { return obj.GetLabels()[ManagedByLabel] == ManagedBy }

// Manifest renders objects as a YAML stream, as kubectl get -o yaml prints a list of them.
func Manifest(objs ...*unstructured.Unstructured) (string, error) {
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String(), nil
}

// FromYAML reads one object.
func FromYAML(doc string) (*unstructured.Unstructured, error) {
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
