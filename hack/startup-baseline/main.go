// Command startup-baseline is the floor that kubectl-mesh's start-up is measured against: a
// plugin that links only client-go's typed clientset, cli-runtime and cobra, as every cli-runtime
// kubectl plugin does, and prints a version. make bench-startup times both in one run so the
// comparison holds on a loaded machine.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

var _ kubernetes.Interface = (*kubernetes.Clientset)(nil)

func main() {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{Use: "baseline"}
	flags.AddFlags(root.PersistentFlags())
	root.AddCommand(&cobra.Command{Use: "version", Run: func(*cobra.Command, []string) { fmt.Println("baseline") }})
	if err := root.Execute(); err != nil {
		os.Exit(2)
	}
}
