// Package whyslow implements `kubectl mesh why-slow`.
package whyslow

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
)

const example = `  # Why is this pod slow? Samples its sidecar for 10 s and ranks what is wrong
  kubectl mesh why-slow pod/reviews-v2-5b667bcbf8-xkq7w -n bookinfo

  # Every pod of a Deployment, or every meshed pod of a namespace, worst first
  kubectl mesh why-slow deploy/reviews-v2 -n bookinfo
  kubectl mesh why-slow -n bookinfo --window 5s --concurrency 16

  # All namespaces, only pods labelled app=reviews, as JSON for scripts
  kubectl mesh why-slow -A -l app=reviews -o json

  # Diagnose a folder or archive captured with kubectl mesh capture (no cluster needed)
  kubectl mesh why-slow --from ./capture

  # Exit 1 when any error-level finding is reported (for CI and alerts)
  kubectl mesh why-slow pod/web-0 --fail-on error`

// Rate limits of the API client: enough for a sweep of hundreds of pods to finish in tens of
// seconds, low enough not to crowd the API server (client-go's default is 5 and 10).
const (
	defaultQPS   = 50
	defaultBurst = 100
)

// Options holds the flags and dependencies of `why-slow`.
type Options struct {
	genericiooptions.IOStreams
	ConfigFlags *genericclioptions.ConfigFlags

	From          string
	Output        string
	FailOn        string
	Verbose       bool
	Color         bool
	Args          []string
	Window        time.Duration
	Concurrency   int
	Selector      string
	AllNamespaces bool
	Top           int
	QPS           float32
	Burst         int
	DebugAgent    bool
	DebugImage    string
	Follow        bool

	// Now is the clock, for certificate expiry of captures without capture times.
	Now func() time.Time
	// Getter, Client and RESTConfig reach the cluster; Complete builds them from ConfigFlags
	// unless a test set them.
	Getter     genericclioptions.RESTClientGetter
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	RESTConfig *rest.Config
	Namespace  string

	failOn diagnose.Severity
}

// NewCmd returns the `why-slow` command.
func NewCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, ConfigFlags: flags, Now: time.Now}
	cmd := &cobra.Command{
		ValidArgsFunction: cli.CompleteTargets(flags, true),
		Use:               "why-slow [pod/NAME | NAME | deploy/NAME | TYPE/NAME] [-n NS | -A] [-l SELECTOR] | --from DIR",
		Short:             "Explain why a meshed pod is slow or failing, with evidence and fixes",
		Long: `why-slow reads a meshed pod's Envoy sidecar through the API server (two stats samples
--window apart, config, upstream hosts, certificates, the proxy log), the objects around the pod
and its node, and prints a ranked list of findings: what is wrong, the numbers that show it and
where they came from, and a fix. Without a pod it sweeps every meshed pod of the namespace (or
of all namespaces with -A) and prints the worst first.`,
		Example: example,
		RunE:    cli.RunE(o),
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "Read the evidence from a captured folder or .tar.gz archive instead of a live pod")
	f.StringVarP(&o.Output, "output", "o", "", "Output format: json or yaml (default: text)")
	f.StringVar(&o.FailOn, "fail-on", "", "Exit with status 1 when a finding of this severity or worse is reported: info, warning or error")
	f.BoolVar(&o.Verbose, "verbose", false, "Also list the rules skipped for missing evidence")
	f.DurationVar(&o.Window, "window", collect.DefaultWindow, "Time between the two samples of each pod's stats and node counters")
	f.IntVar(&o.Concurrency, "concurrency", collect.DefaultConcurrency, "Pods read at once in a sweep (pods waiting out their window do not count)")
	f.StringVarP(&o.Selector, "selector", "l", "", "Only pods (or workloads) with these labels, e.g. -l app=reviews")
	f.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "Sweep the meshed pods of every namespace")
	f.IntVar(&o.Top, "top", 20, "Rows of the sweep's summary table (0 for all)")
	f.Float32Var(&o.QPS, "qps", defaultQPS, "Requests per second to the API server at most")
	f.IntVar(&o.Burst, "burst", defaultBurst, "Requests to the API server allowed in a burst above --qps")
	f.BoolVar(&o.DebugAgent, "debug-agent", false, "Start a gops agent so a long sweep can be inspected (gops stack PID)")
	f.BoolVar(&o.Follow, "follow", true, "For one pod: follow the hop to its slowest upstream, sample that upstream's pods for another window, and split the latency between its application and the way there")
	f.StringVar(&o.DebugImage, "debug-image", collect.DefaultDebugImage, "Image of the ephemeral container that reads node counters when istio-proxy has no tail (distroless proxies)")
	return cmd
}

// Complete fills the options from the arguments and the environment, and builds the clients of
// a live diagnosis (--from needs none).
func (o *Options) Complete(args []string) error {
	o.Args = args
	o.Color = cli.ColorEnabled(o.Out)
	if o.FailOn != "" {
		sev, err := diagnose.ParseSeverity(o.FailOn)
		if err != nil {
			return cli.UsageError("--fail-on: %v", err)
		}
		o.failOn = sev
	}
	if o.From != "" || o.Client != nil && o.RESTConfig != nil && o.Getter != nil {
		return nil // offline, or set by a test
	}
	c, err := cli.Connect(o.ConfigFlags, o.QPS, o.Burst, "or diagnose a capture with --from DIR")
	if err != nil {
		return err
	}
	o.Namespace, o.RESTConfig, o.Client, o.Dynamic, o.Getter = c.Namespace, c.Config, c.Client, c.Dynamic, o.ConfigFlags
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if err := cli.ValidateOutput(o.Output); err != nil {
		return err
	}
	if o.From != "" {
		if len(o.Args) > 0 {
			return cli.UsageError("--from reads one captured pod: leave out %q", o.Args[0])
		}
		if o.AllNamespaces || o.Selector != "" {
			return cli.UsageError("--from reads one captured pod: -A and -l apply to live pods only")
		}
		return nil
	}
	if o.Window <= 0 {
		return cli.UsageError("--window must be positive, for example 10s (got %v)", o.Window)
	}
	if o.Concurrency < 1 {
		return cli.UsageError("--concurrency must be at least 1 (got %d)", o.Concurrency)
	}
	if o.Top < 0 {
		return cli.UsageError("--top must be 0 (all) or more (got %d)", o.Top)
	}
	if o.QPS <= 0 || o.Burst < 1 {
		return cli.UsageError("--qps and --burst must be positive (got %v and %d)", o.QPS, o.Burst)
	}
	return nil
}

// Run diagnoses the evidence and prints the report.
func (o *Options) Run(ctx context.Context) error {
	if o.From != "" {
		return o.runFrom()
	}
	return o.runLive(ctx)
}

func (o *Options) runFrom() error {
	snap, err := loadFrom(o.From, o.Now())
	if err != nil {
		return cli.UsageError("%v", err)
	}
	report := diagnose.Diagnose(snap, diagnose.Rules())
	report.Target = target(snap, o.From)
	return o.printReport(report)
}

// printReport prints one pod's report and turns --fail-on into the exit code.
func (o *Options) printReport(report *diagnose.Report) error {
	if done, err := cli.PrintStructured(o.Out, o.Output, report); done {
		if err != nil {
			return err
		}
	} else if err := diagnose.RenderText(o.Out, report, diagnose.TextOptions{Color: o.Color, Verbose: o.Verbose}); err != nil {
		return err
	}
	return o.exitFor(report.Worst())
}

func (o *Options) exitFor(worst diagnose.Severity) error {
	if o.failOn != "" && worst.Rank() >= o.failOn.Rank() {
		return &cli.ExitError{Code: cli.ExitFindings}
	}
	return nil
}

func target(s *diagnose.Snapshot, dir string) string {
	if s.Meta.Pod != "" {
		return fmt.Sprintf("pod %s/%s (captured in %s)", s.Meta.Namespace, s.Meta.Pod, dir)
	}
	return "captured folder " + dir
}
