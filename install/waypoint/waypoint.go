// Package waypoint is the engine of `kubectl mesh waypoint`: it creates a namespace's waypoint
// (a Gateway of class istio-waypoint, which istiod turns into an Envoy Deployment that applies
// L7 policy and routing to ambient traffic), waits until istiod has programmed it, and labels
// the namespace so its services or workloads use it.
package waypoint

import (
	"context"
	"fmt"
	"io"
	"time"

	"istio.io/api/label"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
)

// What istioctl waypoint apply writes, and what istiod reads (istio/api labels.yaml at 1.30.3).
const (
	Class          = "istio-waypoint"
	DefaultName    = "waypoint"
	hbonePort      = 15008
	ForService     = "service"
	ForWorkload    = "workload"
	ForAll         = "all"
	conditionReady = "Programmed"
)

// GVR is the Gateway API's Gateway.
var GVR = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "gateways"}

// Options say which waypoint to make and how.
type Options struct {
	Dynamic dynamic.Interface
	Mapper  meta.RESTMapper
	// Namespace gets the waypoint; Name names it (DefaultName when empty).
	Namespace, Name string
	// For is the traffic it serves: ForService (the default), ForWorkload or ForAll.
	For string
	// Enroll labels the namespace istio.io/use-waypoint=NAME, so its traffic uses it.
	Enroll         bool
	Timeout        time.Duration
	Poll           time.Duration
	DryRun         apply.DryRun
	ForceConflicts bool
	// Progress receives a line per step; Manifests the objects of a client dry run.
	Progress, Manifests io.Writer
}

// Result is what waypoint did.
type Result struct {
	Gateway    apply.Result  `json:"gateway"`
	Enrolled   *apply.Result `json:"namespace,omitempty"`
	Programmed bool          `json:"programmed"`
	// Why says why it is not programmed: istiod's reason and message, or that it did not answer.
	Why string `json:"why,omitempty"`
}

// Gateway is the waypoint as istioctl waypoint apply writes it: one HBONE listener on 15008.
func Gateway(namespace, name, forTraffic string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": name, "namespace": namespace, "labels": map[string]any{label.IoIstioWaypointFor.Name: forTraffic}},
		"spec": map[string]any{
			"gatewayClassName": Class,
			"listeners":        []any{map[string]any{"name": "mesh", "port": int64(hbonePort), "protocol": "HBONE"}},
		},
	}}
}

// Run applies the waypoint, waits until istiod programs it, then enrolls the namespace. A
// second run changes nothing.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.For == "" {
		o.For = ForService
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Mapper != nil {
		if _, err := o.Mapper.RESTMapping(schema.GroupKind{Group: GVR.Group, Kind: "Gateway"}, GVR.Version); err != nil {
			return nil, fmt.Errorf("the cluster has no Gateway API (gateway.networking.k8s.io/v1 Gateway): install its CRDs first (kubectl apply -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.3.0/standard-install.yaml): %w", err)
		}
	}
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Manifests, Options: apply.Options{DryRun: o.DryRun, ForceConflicts: o.ForceConflicts}}
	res := &Result{}
	var err error
	if res.Gateway, err = a.Apply(ctx, Gateway(o.Namespace, o.Name, o.For)); err != nil {
		return nil, fmt.Errorf("waypoint %s/%s: %w", o.Namespace, o.Name, err)
	}
	if o.DryRun == apply.DryRunNone {
		res.Programmed, res.Why = waitProgrammed(ctx, o)
	}
	if o.Enroll {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": o.Namespace, "labels": map[string]any{label.IoIstioUseWaypoint.Name: o.Name}}}}
		r, err := a.ApplyFields(ctx, ns)
		if err != nil {
			return res, fmt.Errorf("labelling namespace %s %s=%s: %w", o.Namespace, label.IoIstioUseWaypoint.Name, o.Name, err)
		}
		res.Enrolled = &r
	}
	return res, nil
}

// waitProgrammed polls the Gateway's Programmed condition until it is true or the timeout.
func waitProgrammed(ctx context.Context, o Options) (bool, string) {
	deadline := time.Now().Add(o.Timeout)
	why := "istiod has not reported on it (no Programmed condition): is istiod running, in ambient mode (PILOT_ENABLE_AMBIENT)?"
	for {
		gw, err := o.Dynamic.Resource(GVR).Namespace(o.Namespace).Get(ctx, o.Name, metav1.GetOptions{})
		if err == nil {
			ok, reason := Programmed(gw)
			if ok {
				return true, ""
			}
			if reason != "" {
				why = reason
			}
		}
		if time.Now().After(deadline) {
			return false, why
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "waiting for istiod to program waypoint %s/%s\n", o.Namespace, o.Name)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err().Error()
		case <-time.After(o.Poll):
		}
	}
}

// Programmed reads a Gateway's Programmed condition as istiod writes it: true, or its reason
// and message ("" when istiod wrote none).
func Programmed(gw *unstructured.Unstructured) (bool, string) {
	var g struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(gw.Object, &g); err != nil {
		return false, ""
	}
	c := meta.FindStatusCondition(g.Status.Conditions, conditionReady)
	switch {
	case c == nil:
		return false, ""
	case c.Status == metav1.ConditionTrue:
		return true, ""
	}
	return false, c.Reason + ": " + c.Message
}
