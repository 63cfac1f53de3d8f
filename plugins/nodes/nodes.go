// Package nodes implements `kubectl mesh nodes`: each node's sysctls against the tuning meshed
// traffic needs, its CPU steal and disk latency, read by a short-lived probe pod per node, and
// with --apply --yes a privileged DaemonSet that sets the sysctls.
package nodes

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Every node's sysctls, CPU steal and disk latency (a probe pod per node, deleted after)
  kubectl mesh nodes

  # Two nodes, as JSON
  kubectl mesh nodes ip-10-0-1-12 ip-10-0-1-13 -o json

  # Print the DaemonSet that would set the recommended sysctls, then apply it
  kubectl mesh nodes --apply --dry-run
  kubectl mesh nodes --apply --yes`

// Options holds the flags and dependencies of `nodes`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Nodes       []string
	Image       string
	Window      time.Duration
	Apply       bool
	Yes         bool
	Concurrency int
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
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", collect.DefaultDebugImage, "Image of the probe pods and the tuning DaemonSet (it needs tail and sysctl, as busybox has)")
	f.DurationVar(&o.Window, "window", nodes.DefaultWindow, "Time between the probe's two samples")
	f.IntVar(&o.Concurrency, "concurrency", 4, "Nodes probed at once")
	f.BoolVar(&o.Apply, "apply", false, "Set the recommended sysctls on every node with a privileged DaemonSet (needs --yes)")
	f.BoolVar(&o.Yes, "yes", false, "Confirm --apply")
	o.AddFlags(f, cli.WriteUsage{
		DryRun: "With --apply: client prints the DaemonSet, server validates it; nothing is changed",
		Output: "Output format: json or yaml (default: a table)",
	})
	return cmd
}

// Complete takes the nodes and builds the clients; a client dry run of --apply needs none.
func (o *Options) Complete(args []string) error {
	o.Nodes = args
	return o.WriteFlags.Complete(o.ConfigFlags, o.Apply, "")
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := o.WriteFlags.Validate(); err != nil {
		return err
	}
	if o.Apply && !o.Yes && o.DryRun == apply.DryRunNone {
		return cli.UsageError("--apply runs a privileged DaemonSet on every node that changes kernel settings: look at it with --apply --dry-run, then rerun with --apply --yes")
	}
	if o.Window <= 0 {
		return cli.UsageError("--window must be positive (got %v)", o.Window)
	}
	return nil
}

// Run probes the nodes, or applies the tuning DaemonSet.
func (o *Options) Run(ctx context.Context) error {
	if o.Apply {
		return o.runApply(ctx)
	}
	reports, err := nodes.Probe(ctx, nodes.ProbeOptions{
		Client: o.Client, RESTConfig: o.RESTConfig, Namespace: o.Namespace, Image: o.Image,
		Nodes: o.Nodes, Window: o.Window, Concurrency: o.Concurrency, Progress: o.ErrOut,
	})
	if err != nil {
		return err
	}
	if err := cli.Print(o.Out, o.Output, reports, func(w io.Writer) error { return RenderText(w, reports) }); err != nil {
		return err
	}
	if len(nodes.Shortfalls(reports)) > 0 {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func (o *Options) runApply(ctx context.Context) error {
	r, err := nodes.Tune(ctx, nodes.TuneOptions{Dynamic: o.Dynamic, Mapper: o.Mapper, Namespace: o.Namespace, Image: o.Image, DryRun: o.DryRun, Manifests: o.Out})
	if err != nil || o.DryRun == apply.DryRunClient {
		return err
	}
	return cli.Print(o.Out, o.Output, r, func(w io.Writer) error {
		fmt.Fprintln(w, r.String())
		if r.Action == apply.Created || r.Action == apply.Configured {
			fmt.Fprintf(w, "Every node gets the sysctls as the DaemonSet's pod starts there; check with kubectl mesh nodes. Remove it with kubectl delete daemonset -n %s %s (the settings stay until the node reboots).\n", o.Namespace, nodes.TuningDaemonSetName)
		}
		return nil
	})
}

// RenderText prints one row per node, then what falls short and how to fix it.
func RenderText(w io.Writer, reports []nodes.Report) error {
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
		var worst *nodes.DiskReading
		for i := range r.Disks {
			if r.Disks[i].IOs > 0 && (worst == nil || r.Disks[i].AwaitMs > worst.AwaitMs) {
				worst = &r.Disks[i]
			}
		}
		if worst != nil {
			disk = fmt.Sprintf("%s %.1f ms", worst.Name, worst.AwaitMs)
		}
		sysctls := fmt.Sprintf("%d of %d as recommended", len(r.Sysctls)-r.SysctlsBelow(), len(r.Sysctls))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Node, pct(r.StealPct), pct(r.IOWaitPct), disk, sysctls)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := nodes.Shortfalls(reports)
	if len(lines) == 0 {
		_, err := fmt.Fprintln(w, "\nEvery node is tuned as recommended for meshed traffic.")
		return err
	}
	fmt.Fprintln(w, "\nFalls short:")
	for _, l := range lines {
		fmt.Fprintln(w, "  - "+l)
	}
	sysctls, other := false, false
	for _, r := range reports {
		sysctls = sysctls || r.SysctlsBelow() > 0
		other = other || r.Error == "" && len(r.Shortfalls()) > r.SysctlsBelow()
	}
	if sysctls {
		fmt.Fprintln(w, "Set the sysctls on every node with: kubectl mesh nodes --apply --dry-run (to review), then --apply --yes; or in the nodes' image or launch template.")
	}
	if other {
		fmt.Fprintln(w, "CPU steal and slow disks are the nodes' own: move the meshed workloads to other nodes or instance types (dedicated or larger instances, faster volumes).")
	}
	return nil
}
