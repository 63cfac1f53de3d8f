// Package whyslow implements `kubectl mesh why-slow`.
package whyslow

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Diagnose a folder captured from a sidecar (no cluster needed)
  kubectl mesh why-slow --from ./capture

  # The same as JSON, for scripts; exit 1 when any error-level finding is reported
  kubectl mesh why-slow --from ./capture -o json --fail-on error`

// Options holds the flags and dependencies of `why-slow`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	From    string
	Output  string
	FailOn  string
	Verbose bool
	Color   bool
	Args    []string

	// Now is the clock, for certificate expiry of captures without capture times.
	Now func() time.Time

	failOn diagnose.Severity
}

// NewCmd returns the `why-slow` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags, Now: time.Now}
	cmd := &cobra.Command{
		Use:     "why-slow --from DIR",
		Short:   "Explain why a meshed pod is slow or failing, with evidence and fixes",
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVar(&o.From, "from", "", "Read the evidence from a captured folder instead of a live pod")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	cmd.Flags().StringVar(&o.FailOn, "fail-on", "", "Exit with status 1 when a finding of this severity or worse is reported: info, warning or error")
	cmd.Flags().BoolVar(&o.Verbose, "verbose", false, "Also list the rules skipped for missing evidence")
	return cmd
}

// Complete fills the options from the arguments and the environment.
func (o *Options) Complete(args []string) error {
	o.Args = args
	o.Color = cli.ColorEnabled(o.Out)
	if o.FailOn != "" {
		sev, err := diagnose.ParseSeverity(o.FailOn)
		if err != nil {
			return cli.UsageError("--fail-on: %v", err)
		}
		o.failOn = sev
	}
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := cli.ValidateOutput(o.Output); err != nil {
		return err
	}
	if o.From == "" {
		return cli.UsageError("live diagnosis of a pod is not available in this build: capture the sidecar's admin output into a folder and run `kubectl mesh why-slow --from DIR` (see the README for the folder's files)")
	}
	if len(o.Args) > 0 {
		return cli.UsageError("--from reads one captured pod: leave out %q", o.Args[0])
	}
	return nil
}

// Run diagnoses the evidence and prints the report.
func (o *Options) Run() error {
	snap, err := diagnose.LoadDir(o.From, o.Now())
	if err != nil {
		return cli.UsageError("%v", err)
	}
	report := diagnose.Diagnose(snap, diagnose.Rules())
	report.Target = target(snap, o.From)
	if done, err := cli.PrintStructured(o.Out, o.Output, report); done {
		if err != nil {
			return err
		}
	} else if err := diagnose.RenderText(o.Out, report, diagnose.TextOptions{Color: o.Color, Verbose: o.Verbose}); err != nil {
		return err
	}
	if o.failOn != "" && report.Worst().Rank() >= o.failOn.Rank() {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func target(s *diagnose.Snapshot, dir string) string {
	if s.Meta.Pod != "" {
		return fmt.Sprintf("pod %s/%s (captured in %s)", s.Meta.Namespace, s.Meta.Pod, dir)
	}
	return "captured folder " + dir
}
