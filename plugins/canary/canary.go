// Package canary implements `kubectl mesh canary`.
package canary

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/canary"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Send 5% of reviews' requests to the pods labelled version=v2, the rest to v1
  kubectl mesh canary reviews -n bookinfo --canary v2 --stable v1 --weight 5

  # Everything to the canary, or back to the stable version
  kubectl mesh canary reviews -n bookinfo --canary v2 --promote
  kubectl mesh canary reviews -n bookinfo --canary v2 --rollback

  # Progressive: 10% more every minute while the canary's error rate stays under 1% and its p99
  # under 500 ms; back to v1 by itself when not
  kubectl mesh canary reviews -n bookinfo --canary v2 --weight 10 --step 10 --interval 1m --max-error-rate 1% --max-p99 500ms`

// Options holds the flags and dependencies of `canary`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	cli.WriteFlags

	Service, Canary, Stable string
	Weight, Step            int
	Interval                time.Duration
	MaxErrorRate            string
	MaxP99                  time.Duration
	Promote, Rollback       bool

	args         []string
	maxErrorRate float64
	rateErr      error
}

// NewCmd returns the `canary` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteServices(flags),
		Use:               "canary SERVICE --canary VERSION [--stable VERSION] --weight N",
		Short:             "Split a Service's traffic between a stable and a canary version, with outlier detection; promote, roll back, or roll out step by step",
		Long: `canary applies a DestinationRule named after the Service with a subset per version (the pods'
version label), a connection pool and outlier detection (5 consecutive 5xx eject a pod for 30 s,
checked every 10 s), then a VirtualService with the weights: the DestinationRule first, so no
route names a subset that does not exist yet. A version without a ready pod is refused.

With --step it rolls out progressively: every --interval it samples the canary's sidecars and
raises the weight by --step while the canary's error rate and p99 stay within --max-error-rate
and --max-p99, and rolls back to the stable version by itself (exit 1) when they do not.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.Canary, "canary", "", "The canary's version (the value of its pods' version label)")
	f.StringVar(&o.Stable, "stable", "", "The stable version (found among the Service's pods when there is one other)")
	f.IntVar(&o.Weight, "weight", 5, "Percent of requests to the canary")
	f.BoolVar(&o.Promote, "promote", false, "Send every request to the canary")
	f.BoolVar(&o.Rollback, "rollback", false, "Send every request to the stable version")
	f.IntVar(&o.Step, "step", 0, "Progressive mode: percent more for the canary every --interval while it is healthy")
	f.DurationVar(&o.Interval, "interval", time.Minute, "Progressive mode: time at each weight, over which the canary's sidecars are sampled")
	f.StringVar(&o.MaxErrorRate, "max-error-rate", "1%", "Progressive mode: the canary's 5xx share above which it is rolled back")
	f.DurationVar(&o.MaxP99, "max-p99", 0, "Progressive mode: the canary's p99 above which it is rolled back (0: not checked)")
	o.AddFlags(f, cli.WriteUsage{
		DryRun:         "client prints the objects, server validates them; nothing is changed",
		ForceConflicts: "Apply even where another tool's DestinationRule or VirtualService routes the Service",
	})
	return cmd
}

// Complete takes the Service, reads --max-error-rate and builds the clients (a client dry run
// too: which versions exist is read from the cluster).
func (o *Options) Complete(args []string) error {
	o.args = args
	if len(args) == 1 {
		o.Service = strings.TrimPrefix(strings.TrimPrefix(args[0], "svc/"), "service/")
	}
	rate, err := strconv.ParseFloat(strings.TrimSuffix(o.MaxErrorRate, "%"), 64)
	o.maxErrorRate, o.rateErr = rate/100, err
	return o.WriteFlags.Complete(o.ConfigFlags, false, "")
}

// Validate checks the arguments and flags.
func (o *Options) Validate() error {
	if len(o.args) != 1 {
		return cli.UsageError("canary takes one Service: kubectl mesh canary SERVICE --canary VERSION")
	}
	if o.Canary == "" {
		return cli.UsageError("--canary names the canary's version (its pods' version label), e.g. --canary v2")
	}
	if o.Stable == o.Canary {
		return cli.UsageError("--stable and --canary are both %q", o.Canary)
	}
	if o.Promote && o.Rollback {
		return cli.UsageError("--promote and --rollback are opposites: pass one")
	}
	if o.Weight < 0 || o.Weight > 100 || o.Step < 0 || o.Step > 100 {
		return cli.UsageError("--weight and --step are percentages from 0 to 100")
	}
	if o.Step > 0 && o.Interval <= 0 {
		return cli.UsageError("--interval must be positive with --step")
	}
	if o.rateErr != nil || math.IsNaN(o.maxErrorRate) || o.maxErrorRate < 0 || o.maxErrorRate > 1 {
		return cli.UsageError("--max-error-rate is a percentage such as 1%% (got %q)", o.MaxErrorRate)
	}
	return o.WriteFlags.Validate()
}

// Run splits the traffic and prints what was applied.
func (o *Options) Run(ctx context.Context) error {
	res, err := canary.Run(ctx, canary.Options{
		Client: o.Client, Dynamic: o.Dynamic, Mapper: o.Mapper, RESTConfig: o.RESTConfig,
		Namespace: o.Namespace, Service: o.Service, Canary: o.Canary, Stable: o.Stable,
		Weight: o.Weight, Promote: o.Promote, Rollback: o.Rollback,
		Step: o.Step, Interval: o.Interval, MaxErrorRate: o.maxErrorRate, MaxP99: o.MaxP99,
		DryRun: o.DryRun, Force: o.ForceConflicts, Progress: o.ErrOut,
	})
	if err != nil || o.DryRun == apply.DryRunClient {
		return err
	}
	if err := cli.Print(o.Out, o.Output, res, func(w io.Writer) error { return RenderText(w, res) }); err != nil {
		return err
	}
	if res.RolledBack != "" {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

// RenderText prints what was applied and, for a progressive rollout, each step.
func RenderText(w io.Writer, r *canary.Result) error {
	for _, a := range r.Applied {
		fmt.Fprintln(w, a.String())
	}
	for _, s := range r.Steps {
		p99 := "-"
		if s.P99Millis > 0 {
			p99 = fmt.Sprintf("%.0f ms", s.P99Millis)
		}
		fmt.Fprintf(w, "at %3d%%: %.0f requests, %.2f%% errors, p99 %s: %s\n", s.Weight, s.Requests, 100*s.ErrorRate, p99, s.Verdict)
	}
	switch {
	case r.RolledBack != "":
		_, err := fmt.Fprintf(w, "Rolled back: every request of %s goes to %s again (%s).\n", r.Service, r.Stable, r.RolledBack)
		return err
	default:
		_, err := fmt.Fprintf(w, "%s: %d%% of requests to %s, %d%% to %s.\n", r.Service, r.Weight, r.Canary, 100-r.Weight, r.Stable)
		return err
	}
}
