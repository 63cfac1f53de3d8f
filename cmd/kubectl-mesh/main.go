// Command kubectl-mesh is the kubectl mesh plugin.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	_ "github.com/kubectl-mesh/kubectl-mesh/internal/startupgc" // no collection during init: see the package
	"github.com/kubectl-mesh/kubectl-mesh/plugins/root"
)

func main() {
	// client-go logs through klog; a plugin's errors are returned and printed once, as one
	// line, so its logs would only repeat them.
	klog.SetLogger(logr.Discard())
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	// Ctrl-C ends a capture or sweep through its context, so port-forwards and probes stop
	// cleanly and the error says what was interrupted.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if args := os.Args[1:]; len(args) > 1 && strings.HasPrefix(args[0], "__complete") && (args[1] == "install" || args[1] == "uninstall") {
		// Completing install's or uninstall's flags: they are kubectl-mesh-install's.
		err = cli.RunSibling(ctx, cli.InstallBinary, args, streams)
	} else {
		err = root.NewCmd(streams).ExecuteContext(ctx)
	}
	stop()
	if err != nil {
		if err.Error() != "" {
			// Errors may quote evidence from a stranger: printed with its controls escaped.
			fmt.Fprintln(os.Stderr, "error:", diagnose.TermSafe(err.Error()))
		}
		os.Exit(cli.Code(err))
	}
}
