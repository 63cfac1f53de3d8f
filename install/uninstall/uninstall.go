// Package uninstall is the engine of `kubectl mesh uninstall`: it removes the Helm releases
// kubectl mesh install made and its mesh-wide Telemetry, and keeps Istio's CRDs while anything
// still needs them.
package uninstall

import (
	"context"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-mesh/kubectl-mesh/install"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/helm"
)

var (
	telemetryGVR  = schema.GroupVersionResource{Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"}
	deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// What happened to the Telemetry.
const (
	TelemetryDeleted      = "deleted"
	TelemetryNotInstalled = "not installed"
	TelemetryNotOurs      = "kept: not created by kubectl-mesh (it goes with Istio's CRDs)"
	TelemetryKept         = "kept: it is the mesh's, and Istio's CRDs stay"
	TelemetryDryRun       = "would be deleted with the base release, when that goes"
)

// Options say what to uninstall.
type Options struct {
	// Getter reaches the cluster for Helm; Dynamic reads and deletes objects.
	Getter  genericclioptions.RESTClientGetter
	Dynamic dynamic.Interface
	// Profile is the installed profile, with its revision.
	Profile *install.Profile
	// PurgeCRDs removes the base release (and Istio's CRDs) even while others' Istio objects
	// exist; they are deleted with it.
	PurgeCRDs bool
	DryRun    apply.DryRun
	Progress  io.Writer
	// Releases removes the profile's releases, asking guard about the base release: Helm's
	// engine when nil. Tests replace it.
	Releases func(ctx context.Context, p *install.Profile, guard helm.BaseGuard) ([]helm.Step, error)
}

// Result is what uninstall did.
type Result struct {
	// Namespace and Name are the Telemetry's.
	Namespace string      `json:"-"`
	Name      string      `json:"-"`
	Releases  []helm.Step `json:"releases"`
	Telemetry string      `json:"telemetry"`
}

// Run removes the releases kubectl-mesh installed, the gateway and istiod first. The base
// release, which holds Istio's CRDs, stays while a control plane runs or while Istio objects
// exist that kubectl-mesh did not create (unless PurgeCRDs); the mesh-wide Telemetry goes just
// before it, when it is kubectl-mesh's.
func Run(ctx context.Context, o Options) (*Result, error) {
	p := o.Profile
	tel := p.Telemetry()
	res := &Result{Namespace: p.Namespace, Name: tel.GetName(), Telemetry: TelemetryKept}
	releases := o.Releases
	if releases == nil {
		e := &helm.Engine{Getter: o.Getter, DryRun: o.DryRun, Progress: o.Progress}
		defer e.Close()
		releases = e.Uninstall
	}
	guard := helm.BaseGuard{
		Keep: func(ctx context.Context) (string, error) { return keepCRDs(ctx, o) },
		Before: func(ctx context.Context) error {
			action, err := deleteTelemetry(ctx, o.Dynamic, p.Namespace, tel.GetName())
			res.Telemetry = action
			return err
		},
	}
	steps, err := releases(ctx, p, guard)
	res.Releases = steps
	if err != nil {
		return res, err
	}
	if o.DryRun != apply.DryRunNone {
		res.Telemetry = TelemetryDryRun
	}
	return res, nil
}

// keepCRDs says why Istio's CRDs must stay, or "" when they may go.
func keepCRDs(ctx context.Context, o Options) (string, error) {
	l, err := o.Dynamic.Resource(deploymentGVR).Namespace("").List(ctx, metav1.ListOptions{LabelSelector: "app=istiod"})
	if err != nil {
		return "", fmt.Errorf("listing control planes: %w", err)
	}
	if len(l.Items) > 0 && o.DryRun == apply.DryRunNone {
		return fmt.Sprintf("istiod %s/%s still runs and needs Istio's CRDs: uninstall its revision first", l.Items[0].GetNamespace(), l.Items[0].GetName()), nil
	}
	if o.PurgeCRDs {
		return "", nil
	}
	others, err := helm.ForeignIstioObjects(ctx, o.Dynamic)
	if err != nil || len(others) == 0 {
		return "", err
	}
	return fmt.Sprintf("its CRDs hold %d Istio objects kubectl-mesh did not create (%s); deleting the CRDs would delete them: rerun with --purge-crds to remove them too",
		len(others), strings.Join(firstN(others, 3), ", ")), nil
}

// deleteTelemetry deletes the mesh-wide Telemetry when kubectl-mesh created it.
func deleteTelemetry(ctx context.Context, dyn dynamic.Interface, namespace, name string) (string, error) {
	cur, err := dyn.Resource(telemetryGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return TelemetryNotInstalled, nil
	case err != nil:
		return TelemetryKept, err
	case !apply.IsOurs(cur):
		return TelemetryNotOurs, nil
	}
	if err := dyn.Resource(telemetryGVR).Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return TelemetryKept, fmt.Errorf("deleting Telemetry %s/%s: %w", namespace, name, err)
	}
	return TelemetryDeleted, nil
}

func firstN(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(ss[:n:n], fmt.Sprintf("and %d more", len(ss)-n))
}
