// Package waypoint implements `kubectl mesh waypoint`.
package waypoint

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/waypoint"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # A waypoint for bookinfo's services, and the namespace labelled to use it
  kubectl mesh waypoint bookinfo

  # For the workloads' traffic too, under another name, without labelling the namespace
  kubectl mesh waypoint bookinfo --for all --name reviews-waypoint --enroll=false

  # Print the Gateway
  kubectl mesh waypoint bookinfo --dry-run`

// Options holds the flags and dependencies of `waypoint`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Target  string
	Name    string
	For     string
	Enroll  bool
	Timeout time.Duration
}

// NewCmd returns the `waypoint` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteNamespaces(flags),
		Use:               "waypoint NAMESPACE [--for service|workload|all] [--name NAME]",
		Short:             "Give an ambient namespace a waypoint (L7 policy and routing), wait until istiod programs it, and label the namespace to use it",
		Long: `waypoint applies a Gateway of class istio-waypoint in the namespace (what istioctl waypoint apply
writes: one HBONE listener on port 15008), from which istiod makes an Envoy Deployment; it waits
until istiod reports the Gateway programmed, then labels the namespace istio.io/use-waypoint=NAME
so its services' (or workloads') traffic goes through it. Running it twice changes nothing.
Exit status 1 when the waypoint is not programmed in --timeout.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", waypoint.DefaultName, "Name of the waypoint")
	f.StringVar(&o.For, "for", waypoint.ForService, "Traffic the waypoint serves: service, workload or all")
	f.BoolVar(&o.Enroll, "enroll", true, "Label the namespace istio.io/use-waypoint=NAME so its traffic uses the waypoint")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "How long to wait for istiod to program the waypoint")
	o.AddFlags(f, cli.WriteUsage{
		DryRun:         "client prints the Gateway and the label, server validates them; nothing is changed",
		ForceConflicts: "Take over a Gateway (or its fields) another tool made",
	})
	return cmd
}

// Complete takes the namespace and builds the clients; a client dry run needs none.
func (o *Options) Complete(args []string) error {
	if len(args) != 1 {
		return cli.UsageError("waypoint takes one namespace: kubectl mesh waypoint NAMESPACE (got %d arguments)", len(args))
	}
	o.Target = args[0]
	return o.WriteFlags.Complete(o.ConfigFlags, true, "")
}

// Validate checks the flags.
func (o *Options) Validate() error {
	switch o.For {
	case waypoint.ForService, waypoint.ForWorkload, waypoint.ForAll:
	default:
		return cli.UsageError("--for is service, workload or all (got %q)", o.For)
	}
	if o.Name == "" {
		return cli.UsageError("--name is empty")
	}
	return o.WriteFlags.Validate()
}

// Run applies the waypoint and prints the result.
func (o *Options) Run(ctx context.Context) error {
	res, err := waypoint.Run(ctx, waypoint.Options{
		Dynamic: o.Dynamic, Mapper: o.Mapper, Namespace: o.Target, Name: o.Name, For: o.For, Enroll: o.Enroll,
		Timeout: o.Timeout, DryRun: o.DryRun, ForceConflicts: o.ForceConflicts, Progress: o.ErrOut, Manifests: o.Out,
	})
	if err != nil || o.DryRun == apply.DryRunClient {
		return err
	}
	if err := cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return renderText(w, res, o.DryRun) }); err != nil {
		return err
	}
	if !res.Programmed && o.DryRun == apply.DryRunNone {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func renderText(w io.Writer, r *waypoint.Result, dryRun apply.DryRun) error {
	fmt.Fprintln(w, r.Gateway.String())
	if r.Enrolled != nil {
		fmt.Fprintln(w, r.Enrolled.String())
	}
	switch {
	case dryRun != apply.DryRunNone:
	case r.Programmed:
		fmt.Fprintln(w, "istiod has programmed the waypoint: traffic labelled to use it goes through it.")
	default:
		fmt.Fprintf(w, "The waypoint is not programmed: %s. Traffic bound to it fails until it is: kubectl describe gateway -n %s %s\n", r.Why, r.Gateway.Namespace, r.Gateway.Name)
	}
	return nil
}
