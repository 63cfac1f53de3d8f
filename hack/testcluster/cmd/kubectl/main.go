// Command kubectl is upstream's cmd/kubectl at the control plane's version, so tests and
// the sandbox can run `kubectl mesh ...` through a real kubectl plugin lookup.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err) // prints the error the way kubectl does and exits non-zero
	}
}
