// Package clusters implements `kubectl mesh clusters`.
package clusters

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Every upstream of a captured sidecar with its timeouts, retries, limits and TLS mode
  kubectl mesh clusters --from ./capture

  # From a config dump saved with: kubectl exec POD -c istio-proxy -- pilot-agent request GET config_dump
  kubectl mesh clusters --file config_dump.json -o json`

// Options holds the flags of `clusters`.
type Options struct {
	genericiooptions.IOStreams
	From   string
	File   string
	Output string
}

// NewCmd returns the `clusters` command.
func NewCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "clusters --from DIR | --file config_dump.json",
		Short:   "List every upstream with its effective timeouts, retries, circuit breakers, outlier detection and TLS mode",
		Example: example,
		RunE:    cli.RunE(o),
	}
	cmd.Flags().StringVar(&o.From, "from", "", "A captured evidence folder or .tar.gz archive (reads its config_dump.json)")
	cmd.Flags().StringVar(&o.File, "file", "", "A config dump file")
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: table; * marks Envoy defaults)")
	return cmd
}

// Complete takes no arguments: the input is a flag.
func (o *Options) Complete(args []string) error { return cli.NoArgs("clusters", args) }

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := cli.ValidateOutput(o.Output); err != nil {
		return err
	}
	if (o.From == "") == (o.File == "") {
		return cli.UsageError("give exactly one of --from DIR or --file config_dump.json")
	}
	return nil
}

// configDump reads the config dump of --file, or of the capture --from names (a folder or a
// .tar.gz archive), under the evidence package's rules for input from strangers.
func (o *Options) configDump() (string, []byte, error) {
	if o.File != "" {
		b, err := evidence.ReadFile(o.File)
		return o.File, b, err
	}
	set, err := evidence.Open(o.From)
	if err != nil {
		return "", nil, err
	}
	for _, w := range set.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", diagnose.TermSafe(w))
	}
	b := set.File(evidence.ConfigDump)
	if b == nil {
		return "", nil, fmt.Errorf("%q holds no %s", o.From, evidence.ConfigDump)
	}
	return o.From + " " + evidence.ConfigDump, b, nil
}

// Run reads the config dump and prints the settings.
func (o *Options) Run(context.Context) error {
	path, data, err := o.configDump()
	if err != nil {
		return cli.UsageError("%v", err)
	}
	cfg, err := envoyadmin.ParseConfigDump(data)
	if err != nil {
		return cli.UsageError("%s: %v", path, err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s: %s\n", diagnose.TermSafe(path), diagnose.TermSafe(w))
	}
	settings := diagnose.Settings(cfg)
	if done, err := cli.PrintStructured(o.Out, o.Output, settings); done {
		return err
	}
	return diagnose.RenderSettingsText(o.Out, settings)
}
