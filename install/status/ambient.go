package status

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"istio.io/api/label"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/waypoint"
)

// CategoryAmbient gathers the ambient data plane's checks: ztunnel, the istio-cni node agent,
// the namespaces in ambient mode and their waypoints.
const CategoryAmbient = "ambient"

// The labels Istio's ztunnel and cni charts give their DaemonSets, and the class of waypoints.
const (
	ztunnelSelector = "app.kubernetes.io/name=ztunnel"
	cniSelector     = "k8s-app=istio-cni-node"
)

// ambient checks the ambient data plane when the cluster has one or asks for one: a
// namespace in ambient mode, or a ztunnel. A sidecar-only mesh gets no line.
func (s *Status) ambient(ctx context.Context) []check.Check {
	nsl, err := s.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: label.IoIstioDataplaneMode.Name + "=ambient"})
	if err != nil {
		return warn(CategoryAmbient, "namespaces in ambient mode", err)
	}
	var ambientNS []string
	for _, ns := range nsl.Items {
		ambientNS = append(ambientNS, ns.Name)
	}
	zt, err := s.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: ztunnelSelector})
	if err != nil {
		return warn(CategoryAmbient, "ztunnel DaemonSets", err)
	}
	if len(ambientNS) == 0 && len(zt.Items) == 0 {
		return nil
	}
	var out []check.Check
	out = append(out, daemonSets("ztunnel", zt.Items, ambientNS,
		"install it: kubectl mesh install --profile ambient (istiod in ambient mode, istio-cni, ztunnel)")...)
	cni, err := s.Client.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{LabelSelector: cniSelector})
	if err != nil {
		out = append(out, warn(CategoryAmbient, "istio-cni DaemonSets", err)...)
	} else {
		out = append(out, daemonSets("the istio-cni node agent", cni.Items, ambientNS,
			"ambient mode needs istio-cni to redirect pods to ztunnel: kubectl mesh install --profile ambient")...)
	}
	if len(ambientNS) > 0 {
		out = append(out, check.Check{Category: CategoryAmbient, Status: check.OK,
			Message: fmt.Sprintf("%d namespaces in ambient mode: %s", len(ambientNS), strings.Join(firstN(ambientNS, 5), ", "))})
	}
	return append(out, s.waypoints(ctx)...)
}

// daemonSets reports a data-plane DaemonSet: ready on every node it should run on.
func daemonSets(what string, items []appsv1.DaemonSet, ambientNS []string, fix string) []check.Check {
	if len(items) == 0 {
		return []check.Check{{Category: CategoryAmbient, Status: check.Failed,
			Message: fmt.Sprintf("%s does not run, yet %d namespaces are in ambient mode: their pods' traffic is not carried", what, len(ambientNS)), Fix: fix}}
	}
	var out []check.Check
	for _, d := range items {
		st := d.Status
		c := check.Check{Category: CategoryAmbient, Status: check.OK,
			Message: fmt.Sprintf("%s %s/%s: ready on %d of %d nodes", what, d.Namespace, d.Name, st.NumberReady, st.DesiredNumberScheduled)}
		switch {
		case st.DesiredNumberScheduled > 0 && st.NumberReady == 0:
			c.Status = check.Failed
		case st.NumberReady < st.DesiredNumberScheduled:
			c.Status = check.Warning
		}
		if c.Status != check.OK {
			c.Fix = fmt.Sprintf("ambient pods on the nodes without a ready one fail or are not enrolled: kubectl get pods -n %s -o wide -l %s", d.Namespace, podLabel(d))
		}
		out = append(out, c)
	}
	return out
}

func podLabel(d appsv1.DaemonSet) string {
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		return "app=" + d.Name
	}
	keys := slices.Sorted(maps.Keys(d.Spec.Selector.MatchLabels))
	return keys[0] + "=" + d.Spec.Selector.MatchLabels[keys[0]]
}

// waypoints reports each waypoint (a Gateway of class istio-waypoint): programmed or not.
func (s *Status) waypoints(ctx context.Context) []check.Check {
	if s.Dynamic == nil {
		return nil
	}
	l, err := s.Dynamic.Resource(waypoint.GVR).Namespace("").List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil // no Gateway API: no waypoint
	}
	if err != nil {
		return warn(CategoryAmbient, "waypoints (Gateways)", err)
	}
	var out []check.Check
	for _, gw := range l.Items {
		if class, _, _ := unstructured.NestedString(gw.Object, "spec", "gatewayClassName"); class != waypoint.Class {
			continue
		}
		c := check.Check{Category: CategoryAmbient, Status: check.OK, Message: fmt.Sprintf("waypoint %s/%s: programmed", gw.GetNamespace(), gw.GetName())}
		if ok, why := waypoint.Programmed(&gw); !ok {
			if why == "" {
				why = "istiod has not reported on it yet (no Programmed condition)"
			}
			c.Status = check.Failed
			c.Message = fmt.Sprintf("waypoint %s/%s is not programmed: %s", gw.GetNamespace(), gw.GetName(), why)
			c.Fix = fmt.Sprintf("traffic bound to it fails until it is: kubectl describe gateway -n %s %s, and its Deployment's pods", gw.GetNamespace(), gw.GetName())
		}
		out = append(out, c)
	}
	return out
}

func firstN(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(ss[:n:n], fmt.Sprintf("and %d more", len(ss)-n))
}
