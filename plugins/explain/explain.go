// Package explain implements `kubectl mesh explain`.
package explain

import (
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # The error body a client received
  kubectl mesh explain 'upstream connect error or disconnect/reset before headers. reset reason: connection termination'

  # A response flag, or several
  kubectl mesh explain UF,URX

  # A sidecar access-log line
  kubectl mesh explain '[2026-01-01T00:00:00.000Z] "GET /api HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} - "delayed connect error: 111" 0 91 2 - "-" "curl/8" "id" "reviews:9080" "10.0.0.7:9080" outbound|9080||reviews.default.svc.cluster.local - 10.96.0.5:9080 10.0.0.9:40000 - default'`

// Options holds the flags of `explain`.
type Options struct {
	genericiooptions.IOStreams
	Output string
	Input  string
	Color  bool
	Now    func() time.Time
}

// NewCmd returns the `explain` command.
func NewCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, Now: time.Now}
	cmd := &cobra.Command{
		Use:     "explain 'ERROR STRING | RESPONSE FLAGS | ACCESS-LOG LINE'",
		Short:   "Explain an Envoy error string, response flags or a sidecar access-log line",
		Example: example,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Input = strings.TrimSpace(strings.Join(args, " "))
			o.Color = cli.ColorEnabled(o.Out)
			if err := cli.ValidateOutput(o.Output); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	return cmd
}

// Run explains the input.
func (o *Options) Run() error {
	report, err := diagnose.Explain(o.Input, o.Now())
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if done, err := cli.PrintStructured(o.Out, o.Output, report); done {
		return err
	}
	return diagnose.RenderText(o.Out, report, diagnose.TextOptions{Color: o.Color})
}
