// Package version implements `kubectl mesh version`.
package version

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

// Set at build time with -ldflags "-X ...version.Version=v1.2.3 -X ...version.Commit=abc".
var (
	Version = "dev"
	Commit  = "unknown"
)

// Info is what `version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Options holds the flags of `version`.
type Options struct {
	genericiooptions.IOStreams
	Output string
}

// NewCmd returns the `version` command.
func NewCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl mesh",
		Example: `  kubectl mesh version
  kubectl mesh version -o json`,
		RunE: cli.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml")
	return cmd
}

// Complete takes no arguments.
func (o *Options) Complete(args []string) error { return cli.NoArgs("version", args) }

// Validate checks -o.
func (o *Options) Validate() error { return cli.ValidateOutput(o.Output) }

// Run prints the version.
func (o *Options) Run(context.Context) error {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if done, err := cli.PrintStructured(o.Out, o.Output, info); done {
		return err
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-mesh %s (commit %s, %s, %s)\n", info.Version, info.Commit, info.GoVersion, info.Platform)
	return err
}
