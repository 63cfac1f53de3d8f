// Package status implements `kubectl mesh status`.
package status

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-mesh/kubectl-mesh/install/check"
	"github.com/kubectl-mesh/kubectl-mesh/install/status"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Is the control plane healthy, and do the sidecars get their configuration?
  kubectl mesh status

  # The same checks as JSON, for scripts (exit 1 when one fails)
  kubectl mesh status -o json`

// Options holds the flags and dependencies of `status`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags
	Output      string
	Color       bool

	Client  kubernetes.Interface
	Dynamic dynamic.Interface
}

// NewCmd returns the `status` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Check the mesh's control plane: istiod, the injector's webhooks, CRDs, injected namespaces and the proxies",
		Long: `status checks each istiod (ready replicas, version, revision), the sidecar injector's webhooks
(configured, with the CA bundle istiod fills in), Istio's CRDs and their served versions, the
revision each injected namespace asks for and whether a ready istiod serves it, and the sidecars
by proxy version and revision, with how many are ready (connected: a sidecar is ready once istiod
has configured it). Exit status 1 when a check fails.`,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.UsageError("status takes no arguments (got %q)", args[0])
			}
			if err := cli.ValidateOutput(o.Output); err != nil {
				return err
			}
			if o.Client == nil {
				c, err := cli.Connect(o.ConfigFlags, 0, 0, "")
				if err != nil {
					return err
				}
				o.Client, o.Dynamic = c.Client, c.Dynamic
			}
			o.Color = cli.ColorEnabled(o.Out)
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	return cmd
}

// Run prints the checks.
func (o *Options) Run(ctx context.Context) error {
	checks := (&status.Status{Client: o.Client, Dynamic: o.Dynamic}).Run(ctx)
	if done, err := cli.PrintStructured(o.Out, o.Output, checks); done {
		if err != nil {
			return err
		}
	} else if err := check.Render(o.Out, "", checks, o.Color); err != nil {
		return err
	}
	if check.AnyFailed(checks) {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}
