package install

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRootCmd returns the command tree of the kubectl-mesh-install binary: install and uninstall
// under "kubectl mesh", with the kubeconfig flags.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:           "kubectl-mesh",
		Short:         "Install and uninstall Istio for production (kubectl mesh install, kubectl mesh uninstall)",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl mesh"},
	}
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(NewCmd(flags, streams), NewUninstallCmd(flags, streams))
	return root
}

// DispatchArgs are the arguments as the command tree takes them: kubectl-mesh runs this binary
// with the verb first ("install ..."); kubectl runs it for `kubectl mesh install ...` without it.
func DispatchArgs(args []string) []string {
	if len(args) > 0 {
		switch args[0] {
		case "install", "uninstall", "help", "completion", "__complete", "__completeNoDesc":
			return args
		}
	}
	return append([]string{"install"}, args...)
}
