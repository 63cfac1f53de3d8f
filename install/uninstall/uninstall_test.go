package uninstall

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
)

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	vsGVR  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
)

func obj(apiVersion, kind, ns, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

var ours = map[string]string{apply.ManagedByLabel: apply.ManagedBy}

// istioCRD is the CRD of VirtualServices as Istio's base chart installs it.
func istioCRD() *unstructured.Unstructured {
	u := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "virtualservices.networking.istio.io", nil)
	u.Object["spec"] = map[string]any{
		"group":    "networking.istio.io",
		"names":    map[string]any{"plural": "virtualservices", "kind": "VirtualService"},
		"versions": []any{map[string]any{"name": "v1", "storage": true}},
	}
	return u
}

// helmLike stands in for Helm's engine: it asks the guard about the base release as
// helm.Engine.Uninstall does, and records the releases it would remove.
func helmLike(dryRun apply.DryRun) func(context.Context, *install.Profile, helm.BaseGuard) ([]helm.Step, error) {
	return func(ctx context.Context, p *install.Profile, guard helm.BaseGuard) ([]helm.Step, error) {
		reason, err := guard.Keep(ctx)
		if err != nil {
			return nil, err
		}
		st := helm.Step{Chart: install.Chart{Name: install.ChartBase}}
		switch {
		case reason != "":
			st.Action, st.Note = "kept", reason
		case dryRun != apply.DryRunNone:
			st.Action = "would uninstall"
		default:
			if err := guard.Before(ctx); err != nil {
				return nil, err
			}
			st.Action = "uninstalled"
		}
		return []helm.Step{st}, nil
	}
}

func run(t *testing.T, o Options, objs ...runtime.Object) (*Result, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		deploymentGVR: "DeploymentList", telemetryGVR: "TelemetryList", crdGVR: "CustomResourceDefinitionList", vsGVR: "VirtualServiceList",
	}, objs...)
	p, err := install.NewProfile(install.ProfileDefault, "")
	if err != nil {
		t.Fatal(err)
	}
	o.Dynamic, o.Profile, o.Releases = dyn, p, helmLike(o.DryRun)
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res, dyn
}

func telemetryExists(t *testing.T, dyn *dynamicfake.FakeDynamicClient) bool {
	t.Helper()
	_, err := dyn.Resource(telemetryGVR).Namespace("istio-system").Get(context.Background(), "mesh-default", metav1.GetOptions{})
	return err == nil
}

func TestUninstallDecisions(t *testing.T) {
	telemetry := func(labels map[string]string) *unstructured.Unstructured {
		return obj("telemetry.istio.io/v1", "Telemetry", "istio-system", "mesh-default", labels)
	}
	t.Run("ours goes with the base release", func(t *testing.T) {
		res, dyn := run(t, Options{}, telemetry(ours), istioCRD())
		if res.Telemetry != TelemetryDeleted || res.Releases[0].Action != "uninstalled" || telemetryExists(t, dyn) {
			t.Errorf("telemetry %q, base %q, still there %v; want deleted with the base release", res.Telemetry, res.Releases[0].Action, telemetryExists(t, dyn))
		}
	})
	t.Run("another tool's Telemetry is not deleted", func(t *testing.T) {
		res, dyn := run(t, Options{}, telemetry(nil))
		if res.Telemetry != TelemetryNotOurs || !telemetryExists(t, dyn) {
			t.Errorf("telemetry %q, still there %v; want kept", res.Telemetry, telemetryExists(t, dyn))
		}
	})
	t.Run("no Telemetry", func(t *testing.T) {
		if res, _ := run(t, Options{}); res.Telemetry != TelemetryNotInstalled {
			t.Errorf("telemetry %q, want %q", res.Telemetry, TelemetryNotInstalled)
		}
	})
	t.Run("a running istiod keeps the CRDs", func(t *testing.T) {
		istiod := obj("apps/v1", "Deployment", "istio-system", "istiod-1-30", map[string]string{"app": "istiod"})
		res, dyn := run(t, Options{}, istiod, telemetry(ours))
		if res.Releases[0].Action != "kept" || !strings.Contains(res.Releases[0].Note, "istiod istio-system/istiod-1-30 still runs") {
			t.Errorf("base %q (%s); want kept for the running istiod", res.Releases[0].Action, res.Releases[0].Note)
		}
		if res.Telemetry != TelemetryKept || !telemetryExists(t, dyn) {
			t.Errorf("telemetry %q; want kept with the CRDs", res.Telemetry)
		}
	})
	t.Run("others' Istio objects keep the CRDs", func(t *testing.T) {
		theirs := obj("networking.istio.io/v1", "VirtualService", "shop", "reviews", nil)
		res, _ := run(t, Options{}, istioCRD(), theirs, obj("networking.istio.io/v1", "VirtualService", "shop", "ours", ours))
		note := res.Releases[0].Note
		if res.Releases[0].Action != "kept" || !strings.Contains(note, "1 Istio objects") || !strings.Contains(note, "VirtualService shop/reviews") || strings.Contains(note, "shop/ours") {
			t.Errorf("base %q (%s); want kept for VirtualService shop/reviews only", res.Releases[0].Action, note)
		}
	})
	t.Run("--purge-crds removes them anyway", func(t *testing.T) {
		theirs := obj("networking.istio.io/v1", "VirtualService", "shop", "reviews", nil)
		res, _ := run(t, Options{PurgeCRDs: true}, istioCRD(), theirs, telemetry(ours))
		if res.Releases[0].Action != "uninstalled" || res.Telemetry != TelemetryDeleted {
			t.Errorf("base %q, telemetry %q; want both removed", res.Releases[0].Action, res.Telemetry)
		}
	})
	t.Run("a dry run deletes nothing", func(t *testing.T) {
		res, dyn := run(t, Options{DryRun: apply.DryRunServer}, telemetry(ours))
		if res.Releases[0].Action != "would uninstall" || res.Telemetry != TelemetryDryRun || !telemetryExists(t, dyn) {
			t.Errorf("base %q, telemetry %q, still there %v; want nothing deleted", res.Releases[0].Action, res.Telemetry, telemetryExists(t, dyn))
		}
	})
}

func TestUninstallStopsWhenControlPlanesCannotBeListed(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{deploymentGVR: "DeploymentList"})
	dyn.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("deployments.apps is forbidden")
	})
	p, _ := install.NewProfile(install.ProfileDefault, "")
	_, err := Run(context.Background(), Options{Dynamic: dyn, Profile: p, Releases: helmLike(apply.DryRunNone)})
	if err == nil || !strings.Contains(err.Error(), "listing control planes") {
		t.Errorf("err = %v; want the list error, not the CRDs removed blind", err)
	}
}
