// Package root assembles the `kubectl mesh` command tree.
package root

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/canary"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/capture"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/clusters"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/explain"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/inject"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/mtls"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/nodes"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/rbac"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/status"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/version"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/waypoint"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/whyslow"
)

// NewCmd returns the root command. kubectl runs the binary kubectl-mesh as `kubectl mesh`, so
// usage text reads that way.
func NewCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		// kubectl runs the binary kubectl-mesh as `kubectl mesh`: the name is the binary's (the
		// completion scripts complete it), the help says kubectl mesh (the annotation below).
		Use:   "kubectl-mesh",
		Short: "Install an Istio mesh for production and explain why a meshed pod is slow or failing",
		Long: `kubectl mesh explains why a meshed pod is slow or failing. It reads the Envoy sidecar's
admin API (stats, configuration, upstream hosts, certificates) and the objects around the pod,
and prints a ranked list of findings: what is wrong, the numbers that show it, and a fix.

It also installs Istio for production (install, status), injects namespaces (inject), sets mTLS
with a guard against cutting off plaintext clients (mtls), splits traffic for canaries (canary)
and checks nodes' tuning (nodes).`,
		Example: `  # Why is this pod slow or failing? Or: which meshed pods of a namespace are, worst first
  kubectl mesh why-slow pod/NAME -n NAMESPACE
  kubectl mesh why-slow -n NAMESPACE

  # Diagnose a captured folder (no cluster needed)
  kubectl mesh why-slow --from ./capture

  # Capture a live pod's sidecar evidence into a folder
  kubectl mesh capture pod/NAME -n NAMESPACE -o ./capture

  # Explain an error string or an access-log line
  kubectl mesh explain 'upstream connect error or disconnect/reset before headers. reset reason: connection termination'

  # List upstreams with their timeouts, retries, circuit breakers and TLS mode
  kubectl mesh clusters --from ./capture

  # Install Istio's production profile, inject a namespace, require mTLS in it
  kubectl mesh install --check && kubectl mesh install
  kubectl mesh inject bookinfo
  kubectl mesh mtls bookinfo --mode strict`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Plugins are run by kubectl with the user's flags; "kubectl mesh" is two words.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mesh"},
	}
	flags.AddFlags(cmd.PersistentFlags())
	_ = cmd.RegisterFlagCompletionFunc("namespace", cli.CompleteNamespaces(flags))
	cmd.AddCommand(
		siblingCmd("install", "Install Istio for production: preflight checks, a tuned profile, Helm charts waited for in order", streams),
		siblingCmd("uninstall", "Remove what kubectl mesh install installed, and nothing else", streams),
	)
	cmd.AddCommand(
		whyslow.NewCmd(flags, streams),
		capture.NewCmd(flags, streams),
		explain.NewCmd(streams),
		clusters.NewCmd(streams),
		status.NewCmd(flags, streams),
		inject.NewCmd(flags, streams),
		canary.NewCmd(flags, streams),
		mtls.NewCmd(flags, streams),
		nodes.NewCmd(flags, streams),
		waypoint.NewCmd(flags, streams),
		rbac.NewCmd(flags, streams),
		version.NewCmd(streams),
	)
	return cmd
}

// siblingCmd runs a command of kubectl-mesh-install, which links Helm's SDK; its flags and
// --help are that binary's.
func siblingCmd(verb, short string, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:                verb,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.RunSibling(cmd.Context(), cli.InstallBinary, append([]string{verb}, args...), streams)
		},
	}
}
