// Package explain implements `kubectl mesh explain`.
package explain

import (
	"context"
	"io"
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

  # Envoy's local replies, a curl -v transcript, a gRPC error, the proxy's own log lines
  kubectl mesh explain 'no healthy upstream'
  kubectl mesh explain 'rpc error: code = Unavailable desc = upstream connect error or disconnect/reset before headers. reset reason: overflow'

  # A log or a transcript from standard input: every signal found in it is explained
  kubectl logs deploy/reviews -c istio-proxy --since=10m | kubectl mesh explain -
  curl -sv http://reviews:9080/ 2>&1 | kubectl mesh explain -

  # A sidecar access-log line
  kubectl mesh explain '[2026-01-01T00:00:00.000Z] "GET /api HTTP/1.1" 503 UF upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111} - "delayed connect error: 111" 0 91 2 - "-" "curl/8" "id" "reviews:9080" "10.0.0.7:9080" outbound|9080||reviews.default.svc.cluster.local - 10.96.0.5:9080 10.0.0.9:40000 - default'`

// maxStdin bounds what explain reads from standard input.
const maxStdin = 4 << 20

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
		Use:   "explain 'TEXT' | -",
		Short: "Explain pasted text: Envoy's error bodies, response flags and details, curl -v output, gRPC errors, access-log and proxy log lines",
		Long: "Explain finds what Envoy and Istio write wherever it stands in the text: the bodies of Envoy's local replies, the 503 reset body, " +
			"response flags (short or long) and response-code details, transport failure reasons, HTTP status lines and Envoy's headers, gRPC client errors, " +
			"access-log lines in Envoy's and Istio's formats (also inside JSON log wrappers, CRI and kubectl prefixes) and the proxy's and istio-agent's own log lines. " +
			"Words it does not know are skipped. Give the text as arguments, or - to read it from standard input (up to 4 MiB). " +
			"It exits 2 only when it found nothing it knows.",
		Example: example,
		Args:    cobra.MinimumNArgs(1),
		RunE:    cli.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	return cmd
}

// Complete takes the text from the arguments, or from standard input for -.
func (o *Options) Complete(args []string) error {
	o.Input = strings.TrimSpace(strings.Join(args, " "))
	o.Color = cli.ColorEnabled(o.Out)
	if o.Input != "-" {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(o.In, maxStdin+1))
	if err != nil {
		return err
	}
	if len(b) > maxStdin {
		return cli.UsageError("standard input is over %d MiB: give explain an excerpt", maxStdin>>20)
	}
	o.Input = string(b)
	return nil
}

// Validate checks -o; the engine says what an empty text lacks.
func (o *Options) Validate() error { return cli.ValidateOutput(o.Output) }

// Run explains the input.
func (o *Options) Run(context.Context) error {
	report, err := diagnose.Explain(o.Input, o.Now())
	if err != nil {
		return cli.UsageError("%v", err)
	}
	return cli.Print(o.Out, o.Output, report, func(w io.Writer) error {
		return diagnose.RenderText(w, report, diagnose.TextOptions{Color: o.Color})
	})
}
