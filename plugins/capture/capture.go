// Package capture implements `kubectl mesh capture`.
package capture

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Capture a meshed pod's evidence into a folder, sampling stats 10 s apart
  kubectl mesh capture pod/productpage-v1-6c5b8d6b9f-k7x2m -n default -o ./capture

  # The same into one archive, to attach to a ticket (private keys and tokens are redacted)
  kubectl mesh capture pod/productpage-v1-6c5b8d6b9f-k7x2m -o productpage.tar.gz
  kubectl mesh why-slow --from productpage.tar.gz

  # A shorter window, then diagnose the folder anywhere
  kubectl mesh capture productpage-v1-6c5b8d6b9f-k7x2m -o ./capture --window 5s
  kubectl mesh why-slow --from ./capture`

// Options holds the flags and dependencies of `capture`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	Dir        string
	Window     time.Duration
	DebugImage string
	Follow     bool

	// Set by Complete.
	Namespace  string
	Pod        string
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	RESTConfig *rest.Config
	// Now is the clock for the capture times.
	Now func() time.Time

	args []string
	kind string
}

// NewCmd returns the `capture` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags, Now: time.Now}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteTargets(flags, false),
		Use:               "capture pod/NAME -o DIR|FILE.tar.gz",
		Short:             "Capture a meshed pod's sidecar evidence into a folder for why-slow --from",
		Example:           example,
		RunE:              cli.RunE(o),
	}
	cmd.Flags().StringVarP(&o.Dir, "output", "o", "", "Folder to write the evidence to (created when missing), or an archive when the name ends in .tar.gz")
	cmd.Flags().DurationVar(&o.Window, "window", collect.DefaultWindow, "Time between the two stats samples")
	cmd.Flags().BoolVar(&o.Follow, "follow", true, "Follow the hop to the slowest upstream: sample that upstream's pods' inbound side for another window, so why-slow --from can split the latency as it does live")
	cmd.Flags().StringVar(&o.DebugImage, "debug-image", collect.DefaultDebugImage, "Image of the ephemeral container that reads node counters when istio-proxy has no tail (distroless proxies)")
	return cmd
}

// Complete takes the pod and builds the clients from the kubeconfig flags.
func (o *Options) Complete(args []string) error {
	o.args = args
	if len(args) == 1 {
		var hasKind bool
		if o.kind, o.Pod, hasKind = strings.Cut(args[0], "/"); !hasKind {
			o.kind, o.Pod = "pod", args[0]
		}
	}
	if o.Client != nil && o.RESTConfig != nil && o.Namespace != "" {
		return nil // set by a test
	}
	c, err := cli.Connect(o.ConfigFlags, 0, 0, "or use why-slow --from on a captured folder")
	if err != nil {
		return err
	}
	o.Namespace, o.RESTConfig, o.Client, o.Dynamic = c.Namespace, c.Config, c.Client, c.Dynamic
	return nil
}

// Validate checks the arguments and flags.
func (o *Options) Validate() error {
	if len(o.args) != 1 {
		return cli.UsageError("capture takes one pod: kubectl mesh capture pod/NAME -o DIR (got %d arguments)", len(o.args))
	}
	if o.kind != "pod" && o.kind != "pods" && o.kind != "po" {
		return cli.UsageError("capture reads one pod: pass pod/NAME or NAME, not %q", o.args[0])
	}
	if o.Pod == "" {
		return cli.UsageError("capture: %q names no pod: pass pod/NAME", o.args[0])
	}
	if o.Dir == "" {
		return cli.UsageError("capture needs a folder or archive to write to: add -o DIR or -o FILE.tar.gz")
	}
	if o.Window <= 0 {
		return cli.UsageError("--window must be positive, for example 10s (got %v)", o.Window)
	}
	return nil
}

// Run captures the pod, printing progress and warnings on stderr.
func (o *Options) Run(ctx context.Context) error {
	// The capture is diagnosed once, as why-slow would, to choose the hop worth following;
	// only the evidence is kept.
	_, res, err := collect.DiagnosePod(ctx, collect.CaptureOptions{
		Client: o.Client, Dynamic: o.Dynamic, RESTConfig: o.RESTConfig,
		Namespace: o.Namespace, Pod: o.Pod,
		Window: o.Window, DebugImage: o.DebugImage,
		Progress: o.ErrOut, Now: o.Now,
	}, o.Follow)
	if res == nil {
		return err
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Evidence that does not diagnose is still worth keeping: why-slow --from says why.
		fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
	}
	if err := o.write(&res.Evidence); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "wrote %d files to %s; diagnose with: kubectl mesh why-slow --from %s\n", len(res.Evidence.Names()), o.Dir, o.Dir)
	return nil
}

// write stores the evidence as a folder or, for a .tar.gz name, as an archive written to a
// temporary file first so an interrupted write never leaves half an archive under the name.
func (o *Options) write(e *evidence.Set) error {
	if !evidence.IsArchive(o.Dir) {
		return e.WriteDir(o.Dir)
	}
	f, err := os.CreateTemp(filepath.Dir(o.Dir), "."+filepath.Base(o.Dir)+".*")
	if err != nil {
		return fmt.Errorf("evidence archive: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := e.WriteTarGz(f, evidence.ArchiveFolderName(o.Dir), o.Now()); err != nil {
		f.Close()
		return fmt.Errorf("evidence archive %s: %w", o.Dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("evidence archive %s: %w", o.Dir, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("evidence archive %s: %w", o.Dir, err)
	}
	if err := os.Rename(f.Name(), o.Dir); err != nil {
		return fmt.Errorf("evidence archive %s: %w", o.Dir, err)
	}
	return nil
}
