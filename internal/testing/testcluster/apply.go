package testcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// Apply server-side-applies every object in the YAML documents, in order, like
// `kubectl apply --server-side -f`. A CustomResourceDefinition is waited for until it is
// Established, so later documents (and later calls) may use its kind: that is how
// tests load Istio's CRDs and then PeerAuthentications, or kwok's per-pod rules.
func (c *Cluster) Apply(ctx context.Context, docs ...string) error {
	return c.apply(ctx, docs...)
}

func (c *Cluster) apply(ctx context.Context, docs ...string) error {
	// Bounded even under context.Background(): a misspelt kind would otherwise be
	// waited for in discovery forever.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	for _, doc := range docs {
		dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return fmt.Errorf("decode YAML: %w", err)
			}
			if len(obj.Object) == 0 {
				continue // an empty document between two `---`
			}
			if err := c.applyOne(ctx, mapper, &obj); err != nil {
				return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	return nil
}

func (c *Cluster) applyOne(ctx context.Context, mapper *restmapper.DeferredDiscoveryRESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	var mapping *meta.RESTMapping
	// A kind whose CRD was applied a moment ago shows up in discovery shortly after.
	err := c.poll(ctx, "kind "+gvk.String()+" in discovery", 100*time.Millisecond, func(context.Context) (bool, error) {
		var err error
		mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			mapper.Reset()
			return false, err
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	ri := c.Dynamic.Resource(mapping.Resource)
	var target dynamic.ResourceInterface = ri
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		target = ri.Namespace(ns)
	}
	force := true
	if _, err := target.Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
		metav1.PatchOptions{FieldManager: "testcluster", Force: &force}); err != nil {
		return err
	}
	if gvk.GroupKind() == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) {
		return c.waitEstablished(ctx, mapping.Resource, obj.GetName())
	}
	return nil
}

// waitEstablished waits for a CRD's Established condition: until then creating its
// objects fails with "the server could not find the requested resource".
func (c *Cluster) waitEstablished(ctx context.Context, gvr schema.GroupVersionResource, name string) error {
	return c.poll(ctx, "CRD "+name+" Established", 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		crd, err := c.Dynamic.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}
