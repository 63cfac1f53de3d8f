// Command kubectl-mesh-install holds `kubectl mesh install` and `kubectl mesh uninstall`, which
// link Helm's SDK. kubectl-mesh runs it for those two commands, so the others start without
// Helm's cost; kubectl also finds it on PATH for `kubectl mesh install` directly.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"helm.sh/helm/v4/pkg/kube"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	installcmd "github.com/kubectl-mesh/kubectl-mesh/plugins/install"
)

func main() {
	klog.SetLogger(logr.Discard())
	// Helm applies the charts' objects server-side under this field manager, as every other
	// write of kubectl-mesh does.
	kube.ManagedFieldsManager = apply.FieldManager
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := installcmd.NewRootCmd(streams)
	root.SetArgs(installcmd.DispatchArgs(os.Args[1:]))
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(cli.Code(err))
	}
}
