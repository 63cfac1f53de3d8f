package nodes

import (
	"context"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// TuningDaemonSetName names the DaemonSet that sets the recommended sysctls.
const TuningDaemonSetName = "kubectl-mesh-node-tuning"

// TuningDaemonSet sets the recommended sysctls on every node: privileged and on the node's
// network, so the settings are the node's; it sets them once and sleeps.
func TuningDaemonSet(namespace, image string) *unstructured.Unstructured {
	var cmd []string
	for _, t := range nodeinfo.SeedTuning {
		cmd = append(cmd, fmt.Sprintf("sysctl -w %s=%q", t.Name, t.Value))
	}
	script := strings.Join(cmd, " && ") + " && while true; do sleep 3600; done"
	labels := map[string]any{"app.kubernetes.io/name": TuningDaemonSetName}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": TuningDaemonSetName, "namespace": namespace},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{
					"hostNetwork":                   true,
					"tolerations":                   []any{map[string]any{"operator": "Exists"}},
					"terminationGracePeriodSeconds": int64(0),
					"automountServiceAccountToken":  false,
					"containers": []any{map[string]any{
						"name": "sysctl", "image": image,
						"command":         []any{"sh", "-c", script},
						"securityContext": map[string]any{"privileged": true},
						"resources":       map[string]any{"requests": map[string]any{"cpu": "1m", "memory": "8Mi"}, "limits": map[string]any{"memory": "32Mi"}},
					}},
				},
			},
		},
	}}
}

// TuneOptions say where to apply the tuning DaemonSet.
type TuneOptions struct {
	Dynamic   dynamic.Interface
	Mapper    meta.RESTMapper
	Namespace string
	Image     string
	DryRun    apply.DryRun
	// Manifests receives the DaemonSet of a client dry run.
	Manifests io.Writer
}

// Tune applies the tuning DaemonSet with server-side apply; a second run changes nothing.
func Tune(ctx context.Context, o TuneOptions) (apply.Result, error) {
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Manifests, Options: apply.Options{DryRun: o.DryRun}}
	return a.Apply(ctx, TuningDaemonSet(o.Namespace, o.Image))
}

// Shortfalls are the lines that say how the nodes fall short of the tuning or the thresholds.
func Shortfalls(reports []Report) []string {
	var lines []string
	for _, r := range reports {
		for _, p := range r.Shortfalls() {
			lines = append(lines, r.Node+": "+p)
		}
	}
	return lines
}

// SysctlsBelow counts a node's sysctls below the recommended values.
func (r Report) SysctlsBelow() int {
	n := 0
	for _, s := range r.Sysctls {
		if !s.OK {
			n++
		}
	}
	return n
}
