// Package fakeapi puts client-go's typed and dynamic fakes in front of one object store that
// behaves like an API server where kubectl-mesh's engines depend on it: server-side apply with
// field ownership and conflicts, dry runs that store nothing, resource versions that move only
// when an object changes (so an apply that changes nothing says "unchanged"), generations that
// move with the spec, and field selectors. Engines read with the typed client and apply with
// the dynamic one, so the two must see the same objects.
//
// Why not the fakes alone (client-go v0.37): dynamic/fake's NewSimpleDynamicClient* keep
// objects in testing.NewObjectTracker, whose Apply refuses an object that does not exist yet,
// merges like a strategic merge patch with no field ownership, ignores DryRun and never writes
// a resource version into an object. kubernetes/fake's NewClientset does track fields
// (testing.NewFieldManagedObjectTracker) but ignores DryRun too, stamps no resource version,
// serves no custom resource and is a store of its own. So every write goes through reactors
// here: it runs on a field-managed tracker holding a copy of the object alone, and its result is
// stored (or, for a dry run, only returned).
package fakeapi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/applyconfigurations"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"
)

// Kind is a kind the RESTMapper maps: the kinds an engine applies.
type Kind struct {
	GVK        schema.GroupVersionKind
	Namespaced bool
	// Resource is the kind's plural resource name where guessing it from the kind is wrong, as
	// meta.UnsafeGuessKindToResource makes Gateway "gatewaies".
	Resource string
}

// Options say what the server serves.
type Options struct {
	// Kinds are mapped by Server.Mapper. Kinds client-go's scheme does not know are custom
	// resources: stored unstructured, their fields tracked without a schema.
	Kinds []Kind
	// Objects are stored before the test, created by SeedManager ("kubectl-create" when empty).
	// The server fills in no defaults: an object stored with no field set at all has no
	// owner, and the field manager then credits the next change to "before-first-apply", so
	// seed objects as the API server would store them (a namespace with its finalizer).
	Objects     []runtime.Object
	SeedManager string
	// Now stamps the creation time of objects created without one (time.Now when nil).
	Now func() time.Time
}

// Server is the store and the clients in front of it.
type Server struct {
	Client  *fake.Clientset
	Dynamic *dynamicfake.FakeDynamicClient
	Mapper  meta.RESTMapper

	scheme  *runtime.Scheme
	codecs  serializer.CodecFactory
	custom  map[schema.GroupVersionKind]bool
	plural  map[schema.GroupVersionKind]schema.GroupVersionResource
	builtin managedfields.TypeConverter
	deduced managedfields.TypeConverter
	store   k8stesting.ObjectTracker
	now     func() time.Time

	mu    sync.Mutex // serialises writes: the typed and dynamic fakes each lock only themselves
	rv    int64
	hooks map[string][]func(runtime.Object)
}

// Builtin maps the kinds of client-go's scheme the engines apply.
var (
	Namespace   = Kind{GVK: schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}}
	Deployment  = Kind{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Namespaced: true}
	StatefulSet = Kind{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, Namespaced: true}
	DaemonSet   = Kind{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}, Namespaced: true}
)

// New starts a server. It panics on objects it cannot store, as the fakes' constructors do.
func New(o Options) *Server {
	s := &Server{scheme: runtime.NewScheme(), custom: map[schema.GroupVersionKind]bool{}, plural: map[schema.GroupVersionKind]schema.GroupVersionResource{},
		now: o.Now, hooks: map[string][]func(runtime.Object){}}
	if s.now == nil {
		s.now = time.Now
	}
	if err := clientgoscheme.AddToScheme(s.scheme); err != nil {
		panic(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	listKinds := map[schema.GroupVersionResource]string{}
	for _, k := range o.Kinds {
		scope := meta.RESTScopeRoot
		if k.Namespaced {
			scope = meta.RESTScopeNamespace
		}
		plural, singular := meta.UnsafeGuessKindToResource(k.GVK)
		if k.Resource != "" {
			plural = k.GVK.GroupVersion().WithResource(k.Resource)
		}
		mapper.AddSpecific(k.GVK, plural, singular, scope)
		s.plural[k.GVK] = plural
		if !s.scheme.Recognizes(k.GVK) {
			s.custom[k.GVK] = true
			s.scheme.AddKnownTypeWithName(k.GVK, &unstructured.Unstructured{})
			s.scheme.AddKnownTypeWithName(k.GVK.GroupVersion().WithKind(k.GVK.Kind+"List"), &unstructured.UnstructuredList{})
			listKinds[plural] = k.GVK.Kind + "List"
		}
	}
	s.Mapper = mapper
	s.codecs = serializer.NewCodecFactory(s.scheme)
	s.builtin = applyconfigurations.NewTypeConverter(clientgoscheme.Scheme)
	s.deduced = managedfields.NewDeducedTypeConverter()
	s.store = k8stesting.NewObjectTracker(s.scheme, s.codecs.UniversalDecoder())

	// The fakes' own trackers stay empty: every action is answered here, first in the chain.
	s.Client = fake.NewClientset()
	s.Dynamic = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(s.scheme, listKinds)
	for _, f := range []*k8stesting.Fake{&s.Client.Fake, &s.Dynamic.Fake} {
		f.PrependReactor("*", "*", s.react)
		f.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
			w, err := s.store.Watch(a.GetResource(), a.GetNamespace())
			return true, w, err
		})
	}
	manager := o.SeedManager
	if manager == "" {
		manager = "kubectl-create"
	}
	for _, obj := range o.Objects {
		if err := s.Create(manager, obj); err != nil {
			panic(err)
		}
	}
	return s
}

// Create stores obj as manager would create it, bypassing the clients (whose locks a hook
// runs under), and runs the hooks.
func (s *Server) Create(manager string, obj runtime.Object) error {
	gvr, ns, err := s.resourceOf(obj)
	if err != nil {
		return err
	}
	_, err = s.write(k8stesting.NewCreateActionWithOptions(gvr, ns, obj, metav1.CreateOptions{FieldManager: manager}))
	return err
}

// Update replaces obj as manager would, bypassing the clients, and runs the hooks.
func (s *Server) Update(manager string, obj runtime.Object) error {
	gvr, ns, err := s.resourceOf(obj)
	if err != nil {
		return err
	}
	_, err = s.write(k8stesting.NewUpdateActionWithOptions(gvr, ns, obj, metav1.UpdateOptions{FieldManager: manager}))
	return err
}

// Delete removes an object, bypassing the clients.
func (s *Server) Delete(obj runtime.Object) error {
	gvr, ns, err := s.resourceOf(obj)
	if err != nil {
		return err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	return s.store.Delete(gvr, ns, m.GetName())
}

// OnWrite runs fn after every stored write (not a dry run) of the resource ("deployments"),
// as a controller reacts to a change; fn gets the object as stored. fn changes the cluster
// with the Server's Create, Update and Delete: the client that made the write is locked.
func (s *Server) OnWrite(resource string, fn func(obj runtime.Object)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks[resource] = append(s.hooks[resource], fn)
}

func (s *Server) resourceOf(obj runtime.Object) (schema.GroupVersionResource, string, error) {
	gvks, _, err := s.scheme.ObjectKinds(obj)
	if err != nil {
		return schema.GroupVersionResource{}, "", err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return schema.GroupVersionResource{}, "", err
	}
	gvr, ok := s.plural[gvks[0]]
	if !ok {
		gvr, _ = meta.UnsafeGuessKindToResource(gvks[0])
	}
	return gvr, m.GetNamespace(), nil
}

func (s *Server) react(action k8stesting.Action) (bool, runtime.Object, error) {
	switch a := action.(type) {
	case k8stesting.CreateActionImpl, k8stesting.UpdateActionImpl, k8stesting.PatchActionImpl:
		obj, err := s.write(action)
		return true, obj, err
	case k8stesting.ListActionImpl:
		_, obj, err := k8stesting.ObjectReaction(s.store)(action)
		if err != nil {
			return true, nil, err
		}
		obj, err = selectFields(obj, a.GetListRestrictions().Fields)
		return true, obj, err
	default:
		return k8stesting.ObjectReaction(s.store)(action)
	}
}

// write runs a create, update or patch (apply included) on a field-managed tracker that holds
// the object alone, then stores the result as an API server would: not at all for a dry run,
// not again when nothing changed, with the next resource version otherwise.
func (s *Server) write(action k8stesting.Action) (runtime.Object, error) {
	s.mu.Lock()
	gvr, ns := action.GetResource(), action.GetNamespace()
	name, dryRun, err := nameAndDryRun(action)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	gvk, err := s.kindFor(gvr)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	tc := s.builtin
	if s.custom[gvk] {
		tc = s.deduced
	}
	scratch := k8stesting.NewFieldManagedObjectTracker(s.scheme, s.codecs.UniversalDecoder(), tc)
	old, err := s.store.Get(gvr, ns, name)
	switch {
	case apierrors.IsNotFound(err):
		old = nil
	case err != nil:
		s.mu.Unlock()
		return nil, err
	default:
		if err := scratch.Add(old); err != nil {
			s.mu.Unlock()
			return nil, err
		}
	}
	// The scratch tracker maps resources to kinds by guessing (meta.UnsafeGuessKindToResource):
	// a kind whose plural it guesses wrong is written there under the guess.
	if guessed, _ := meta.UnsafeGuessKindToResource(gvk); guessed != gvr {
		action = withResource(action, guessed)
	}
	_, obj, err := k8stesting.ObjectReaction(scratch)(action)
	if err != nil || obj == nil {
		s.mu.Unlock()
		return nil, err
	}
	if dryRun || (old != nil && s.same(old, obj)) {
		s.mu.Unlock()
		if dryRun {
			return obj, nil
		}
		return old, nil
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.rv++
	m.SetResourceVersion(strconv.FormatInt(s.rv, 10))
	if old == nil {
		if m.GetUID() == "" {
			m.SetUID(types.UID(fmt.Sprintf("uid-%d", s.rv)))
		}
		if ts := m.GetCreationTimestamp(); ts.IsZero() {
			m.SetCreationTimestamp(metav1.NewTime(s.now()))
		}
		m.SetGeneration(1)
		err = s.store.Create(gvr, obj, ns)
	} else {
		om, _ := meta.Accessor(old)
		m.SetGeneration(om.GetGeneration())
		if !equalField(old, obj, "spec") {
			m.SetGeneration(om.GetGeneration() + 1)
		}
		err = s.store.Update(gvr, obj, ns)
	}
	hooks := slices.Clone(s.hooks[gvr.Resource])
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		h(obj.DeepCopyObject())
	}
	return obj, nil
}

func (s *Server) kindFor(gvr schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	for gvk, r := range s.plural {
		if r == gvr {
			return gvk, nil
		}
	}
	for gvk := range s.scheme.AllKnownTypes() {
		if strings.HasSuffix(gvk.Kind, "List") || gvk.Version == runtime.APIVersionInternal {
			continue
		}
		if r, _ := meta.UnsafeGuessKindToResource(gvk); r == gvr {
			return gvk, nil
		}
	}
	return schema.GroupVersionKind{}, fmt.Errorf("the server does not serve %v", gvr)
}

func nameAndDryRun(action k8stesting.Action) (string, bool, error) {
	nameOf := func(obj runtime.Object) (string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return "", err
		}
		return m.GetName(), nil
	}
	switch a := action.(type) {
	case k8stesting.CreateActionImpl:
		n, err := nameOf(a.GetObject())
		return n, len(a.CreateOptions.DryRun) > 0, err
	case k8stesting.UpdateActionImpl:
		n, err := nameOf(a.GetObject())
		return n, len(a.UpdateOptions.DryRun) > 0, err
	case k8stesting.PatchActionImpl:
		return a.GetName(), len(a.PatchOptions.DryRun) > 0, nil
	}
	return "", false, fmt.Errorf("not a write: %v", action)
}

// same compares two versions of an object as the API server decides a write changed nothing.
func (s *Server) same(a, b runtime.Object) bool {
	a, b = a.DeepCopyObject(), b.DeepCopyObject()
	for _, o := range []runtime.Object{a, b} {
		m, _ := meta.Accessor(o)
		m.SetResourceVersion("")
		o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	}
	return apiequality.Semantic.DeepEqual(a, b)
}

func equalField(a, b runtime.Object, field string) bool {
	ua, err1 := runtime.DefaultUnstructuredConverter.ToUnstructured(a)
	ub, err2 := runtime.DefaultUnstructuredConverter.ToUnstructured(b)
	if err1 != nil || err2 != nil {
		return false
	}
	return apiequality.Semantic.DeepEqual(ua[field], ub[field])
}

// selectFields filters a list by a field selector, on the fields the engines select by; any
// other field is refused, as the API server refuses a field it does not index.
func selectFields(list runtime.Object, sel fields.Selector) (runtime.Object, error) {
	if sel == nil || sel.Empty() {
		return list, nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	var kept []runtime.Object
	for _, item := range items {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(item)
		if err != nil {
			return nil, err
		}
		set := fields.Set{}
		for _, r := range sel.Requirements() {
			path := strings.Split(r.Field, ".")
			switch path[0] {
			case "metadata", "involvedObject", "spec", "status":
			default:
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", r.Field))
			}
			v, _, _ := unstructured.NestedFieldNoCopy(u, path...)
			set[r.Field] = fmt.Sprint(v)
		}
		if sel.Matches(set) {
			kept = append(kept, item)
		}
	}
	if err := meta.SetList(list, kept); err != nil {
		return nil, err
	}
	return list, nil
}

// withResource is a write action on another resource.
func withResource(a k8stesting.Action, r schema.GroupVersionResource) k8stesting.Action {
	switch a := a.DeepCopy().(type) {
	case k8stesting.CreateActionImpl:
		a.Resource = r
		return a
	case k8stesting.UpdateActionImpl:
		a.Resource = r
		return a
	case k8stesting.PatchActionImpl:
		a.Resource = r
		return a
	default:
		return a
	}
}
