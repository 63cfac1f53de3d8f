// Package status implements `kubectl mesh status`.
package status

import (
	"context"
	"io"

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
		RunE:    cli.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	return cmd
}

// Complete builds the clients unless a test set them.
func (o *Options) Complete(args []string) error {
	if err := cli.NoArgs("status", args); err != nil {
		return err
	}
	o.Color = cli.ColorEnabled(o.Out)
	if o.Client != nil {
		return nil
	}
	c, err := cli.Connect(o.ConfigFlags, 0, 0, "")
	if err != nil {
		return err
	}
	o.Client, o.Dynamic = c.Client, c.Dynamic
	return nil
}

// Validate checks -o.
func (o *Options) Validate() error { return cli.ValidateOutput(o.Output) }

// Run prints the checks.
func (o *Options) Run(ctx context.Context) error {
	checks := (&status.Status{Client: o.Client, Dynamic: o.Dynamic}).Run(ctx)
	if err := cli.Print(o.Out, o.Output, checks, func(w io.Writer) error { return check.Render(w, "", checks, o.Color) }); err != nil {
		return err
	}
	if check.AnyFailed(checks) {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}
