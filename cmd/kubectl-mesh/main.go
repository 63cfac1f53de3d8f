// Command kubectl-mesh is the kubectl mesh plugin.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/plugins/root"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if err := root.NewCmd(streams).Execute(); err != nil {
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(cli.Code(err))
	}
}
