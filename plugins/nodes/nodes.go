// Package nodes implements `kubectl mesh nodes`: each node's sysctls against the tuning meshed
// traffic needs, its CPU steal and disk latency, read by a short-lived probe pod per node, and
// with --apply --yes a privileged DaemonSet that sets the sysctls.
package nodes

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

const example = `  # Every node's sysctls, CPU steal and disk latency (a probe pod per node, deleted after)
  kubectl mesh nodes

  # Two nodes, as JSON
  kubectl mesh nodes ip-10-0-1-12 ip-10-0-1-13 -o json

  # Print the DaemonSet that would set the recommended sysctls, then apply it
  kubectl mesh nodes --apply --dry-run
  kubectl mesh nodes --apply --yes`

const (
	tuningDSName  = "kubectl-mesh-node-tuning"
	tuningDSImage = collect.DefaultDebugImage
)

// Options holds the flags and dependencies of `nodes`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	Nodes       []string
	Output      string
	Image       string
	Window      time.Duration
	Apply       bool
	Yes         bool
	DryRunFlag  string
	Concurrency int

	dryRun     apply.DryRun
	Namespace  string
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.RESTMapper
	RESTConfig *rest.Config
}

// NewCmd returns the `nodes` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteNodes(flags),
		Use:               "nodes [NODE...] [--apply --yes]",
		Short:             "Check nodes' sysctls, CPU steal and disk latency for meshed traffic; set the sysctls with --apply",
		Long: `nodes starts a probe pod on each node (on the node's network so its sysctls are the node's, without
the host's processes, read-only, unprivileged), reads the node's counters twice --window apart, and
deletes the pod. It compares the sysctls with the tuning meshed traffic needs (file-max, conntrack
max, TIME_WAIT reuse, the ephemeral port range, keep-alive) and reports CPU steal and disk latency.
Exit status 1 when a node falls short.

--apply sets the sysctls on every node with a privileged DaemonSet (kubectl-mesh-node-tuning); it
needs --yes, and --dry-run prints it.`,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Nodes = args
			if err := o.Validate(); err != nil {
				return err
			}
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: a table)")
	f.StringVar(&o.Image, "image", collect.DefaultDebugImage, "Image of the probe pods and the tuning DaemonSet (it needs tail and sysctl, as busybox has)")
	f.DurationVar(&o.Window, "window", collect.DefaultNodeProbeWindow, "Time between the probe's two samples")
	f.IntVar(&o.Concurrency, "concurrency", 4, "Nodes probed at once")
	f.BoolVar(&o.Apply, "apply", false, "Set the recommended sysctls on every node with a privileged DaemonSet (needs --yes)")
	f.BoolVar(&o.Yes, "yes", false, "Confirm --apply")
	cli.AddDryRunFlag(f, &o.DryRunFlag, "With --apply: client prints the DaemonSet, server validates it; nothing is changed")
	return cmd
}

// Validate checks the flags before anything reads a kubeconfig.
func (o *Options) Validate() error {
	if err := cli.ValidateOutput(o.Output); err != nil {
		return err
	}
	d, err := cli.ParseDryRun(o.DryRunFlag)
	if err != nil {
		return err
	}
	o.dryRun = d
	if o.Apply && !o.Yes && d == apply.DryRunNone {
		return cli.UsageError("--apply runs a privileged DaemonSet on every node that changes kernel settings: look at it with --apply --dry-run, then rerun with --apply --yes")
	}
	if o.Window <= 0 {
		return cli.UsageError("--window must be positive (got %v)", o.Window)
	}
	return nil
}

// Complete builds the clients, unless a test set them or a client dry run needs none.
func (o *Options) Complete() error {
	if o.Client != nil || o.Apply && o.dryRun == apply.DryRunClient {
		if o.Namespace == "" {
			o.Namespace = "default"
			if ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace(); err == nil && ns != "" {
				o.Namespace = ns
			}
		}
		return nil
	}
	c, mapper, err := cli.ConnectWriter(o.ConfigFlags)
	if err != nil {
		return err
	}
	o.Namespace, o.Client, o.Dynamic, o.RESTConfig, o.Mapper = c.Namespace, c.Client, c.Dynamic, c.Config, mapper
	return nil
}

// Run probes the nodes, or applies the tuning DaemonSet.
func (o *Options) Run(ctx context.Context) error {
	if o.Apply {
		return o.runApply(ctx)
	}
	reports, err := collect.ProbeNodes(ctx, collect.NodeProbeOptions{
		Client: o.Client, RESTConfig: o.RESTConfig, Namespace: o.Namespace, Image: o.Image,
		Nodes: o.Nodes, Window: o.Window, Concurrency: o.Concurrency, Progress: o.ErrOut,
	})
	if err != nil {
		return err
	}
	if done, err := cli.PrintStructured(o.Out, o.Output, reports); done {
		if err != nil {
			return err
		}
	} else if err := RenderText(o.Out, reports); err != nil {
		return err
	}
	if short, _ := Shortfalls(reports); short {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

// Shortfalls reports whether a node falls short of the tuning or the thresholds, and the lines
// that say how.
func Shortfalls(reports []collect.NodeReport) (bool, []string) {
	var lines []string
	for _, r := range reports {
		for _, p := range r.Shortfalls() {
			lines = append(lines, r.Node+": "+p)
		}
	}
	return len(lines) > 0, lines
}

// RenderText prints one row per node, then what falls short and how to fix it.
func RenderText(w io.Writer, reports []collect.NodeReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTEAL\tIOWAIT\tSLOWEST DISK\tSYSCTLS")
	for _, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tnot probed: %s\n", r.Node, r.Error)
			continue
		}
		pct := func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", *p)
		}
		disk := "-"
		var worst *collect.DiskReading
		for i := range r.Disks {
			if r.Disks[i].IOs > 0 && (worst == nil || r.Disks[i].AwaitMs > worst.AwaitMs) {
				worst = &r.Disks[i]
			}
		}
		if worst != nil {
			disk = fmt.Sprintf("%s %.1f ms", worst.Name, worst.AwaitMs)
		}
		bad := 0
		for _, s := range r.Sysctls {
			if !s.OK {
				bad++
			}
		}
		sysctls := fmt.Sprintf("%d of %d as recommended", len(r.Sysctls)-bad, len(r.Sysctls))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, pct(r.StealPct), pct(r.IOWaitPct), disk, sysctls)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	short, lines := Shortfalls(reports)
	if !short {
		_, err := fmt.Fprintln(w, "\nEvery node is tuned as recommended for meshed traffic.")
		return err
	}
	fmt.Fprintln(w, "\nFalls short:")
	for _, l := range lines {
		fmt.Fprintln(w, "  - "+l)
	}
	sysctls, other := false, false
	for _, r := range reports {
		for _, s := range r.Sysctls {
			sysctls = sysctls || !s.OK
		}
		other = other || r.Error == "" && len(r.Shortfalls()) > countBelow(r)
	}
	if sysctls {
		fmt.Fprintln(w, "Set the sysctls on every node with: kubectl mesh nodes --apply --dry-run (to review), then --apply --yes; or in the nodes' image or launch template.")
	}
	if other {
		fmt.Fprintln(w, "CPU steal and slow disks are the nodes' own: move the meshed workloads to other nodes or instance types (dedicated or larger instances, faster volumes).")
	}
	return nil
}

func countBelow(r collect.NodeReport) int {
	n := 0
	for _, s := range r.Sysctls {
		if !s.OK {
			n++
		}
	}
	return n
}

// TuningDaemonSet sets the recommended sysctls on every node: privileged and on the node's
// network, so the settings are the node's; it sets them once and sleeps.
func TuningDaemonSet(namespace, image string) *unstructured.Unstructured {
	var cmd []string
	for _, t := range nodeinfo.SeedTuning {
		cmd = append(cmd, fmt.Sprintf("sysctl -w %s=%q", t.Name, t.Value))
	}
	script := strings.Join(cmd, " && ") + " && while true; do sleep 3600; done"
	labels := map[string]any{"app.kubernetes.io/name": tuningDSName}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": tuningDSName, "namespace": namespace},
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

func (o *Options) runApply(ctx context.Context) error {
	ds := TuningDaemonSet(o.Namespace, o.Image)
	a := &apply.Applier{Dynamic: o.Dynamic, Mapper: o.Mapper, Out: o.Out, Options: apply.Options{DryRun: o.dryRun}}
	r, err := a.Apply(ctx, ds)
	if err != nil {
		return err
	}
	if o.dryRun == apply.DryRunClient {
		return nil
	}
	if done, err := cli.PrintStructured(o.Out, o.Output, r); done {
		return err
	}
	fmt.Fprintln(o.Out, r.String())
	if r.Action == apply.Created || r.Action == apply.Configured {
		fmt.Fprintf(o.Out, "Every node gets the sysctls as the DaemonSet's pod starts there; check with kubectl mesh nodes. Remove it with kubectl delete daemonset -n %s %s (the settings stay until the node reboots).\n", o.Namespace, tuningDSName)
	}
	return nil
}
