package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
)

// LiveOptions say which live pods why-slow diagnoses and how.
type LiveOptions struct {
	Getter     genericclioptions.RESTClientGetter
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	RESTConfig *rest.Config
	Targets    Targets
	Window     time.Duration
	DebugImage string
	// Follow follows one pod's hop to its slowest upstream.
	Follow      bool
	Concurrency int
	// Progress receives one pod's progress lines; a sweep reports through Sweeping instead.
	Progress io.Writer
	// Sweeping, when set, is called before a sweep with its number of pods and returns the
	// function called after each pod (SweepOptions.Done) and the one called at its end.
	Sweeping func(total int) (done func(done, total int), finish func())
	Now      func() time.Time
}

// LiveResult is one pod's report, or a sweep's.
type LiveResult struct {
	Report *diagnose.Report
	Sweep  *diagnose.SweepReport
}

// TargetsError is an error of the targets themselves: none found, none meshed, an API server
// that cannot list them. It is the user's to fix.
type TargetsError struct{ Err error }

func (e *TargetsError) Error() string { return e.Err.Error() }
func (e *TargetsError) Unwrap() error { return e.Err }

// DiagnoseLive finds the pods the targets name and diagnoses them: one pod, its hop followed,
// or a sweep ranked worst first.
func DiagnoseLive(ctx context.Context, o LiveOptions) (*LiveResult, error) {
	pods, err := ResolveTargets(ctx, o.Getter, o.Client, o.Targets)
	if err != nil {
		return nil, &TargetsError{Err: unreachableHint(err)}
	}
	capture := CaptureOptions{
		Client: o.Client, Dynamic: o.Dynamic, RESTConfig: o.RESTConfig, Window: o.Window, Now: o.Now,
		DebugImage: o.DebugImage,
		// A namespace's Services and Istio objects are listed once, a node's cAdvisor read once
		// per sample for all its pods; a sweep lists the namespace's pod events once too.
		KubeCache: &KubeCache{ShareEvents: o.Targets.Sweep()},
	}
	if !o.Targets.Sweep() {
		p := pods.Meshed[0]
		capture.Namespace, capture.Pod, capture.Known, capture.Progress = p.Namespace, p.Name, &p, o.Progress
		report, _, err := DiagnosePod(ctx, capture, o.Follow)
		if err != nil {
			return nil, err
		}
		return &LiveResult{Report: report}, nil
	}
	scope := o.Targets.Scope()
	if len(pods.Meshed) == 0 {
		return nil, &TargetsError{Err: fmt.Errorf("no meshed pods in %s (%d pods without an istio-proxy sidecar or the ambient mesh): label the namespace istio-injection=enabled and restart its workloads, or istio.io/dataplane-mode=ambient, or pass -n/-A",
			scope, len(pods.Unmeshed))}
	}
	done, finish := func(int, int) {}, func() {}
	if o.Sweeping != nil {
		done, finish = o.Sweeping(len(pods.Meshed))
	}
	results := Sweep(ctx, SweepOptions{Capture: capture, Pods: pods.Meshed, Concurrency: o.Concurrency, Done: done})
	finish()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sweep of %s interrupted: %w", scope, err)
	}
	report := &diagnose.SweepReport{Scope: scope, WindowSeconds: o.Window.Seconds(), Pods: results}
	for _, p := range pods.Unmeshed {
		report.Unmeshed = append(report.Unmeshed, p.Namespace+"/"+p.Name)
	}
	diagnose.RankPods(report.Pods)
	return &LiveResult{Sweep: report}, nil
}

// Scope says in words which pods the targets name.
func (t Targets) Scope() string {
	var s string
	switch {
	case len(t.Args) > 0 && t.AllNamespaces:
		s = strings.Join(t.Args, ", ") + " in all namespaces"
	case len(t.Args) > 0:
		s = strings.Join(t.Args, ", ") + " in namespace " + t.Namespace
	case t.AllNamespaces:
		s = "all namespaces"
	default:
		s = "namespace " + t.Namespace
	}
	if t.Selector != "" {
		s += " with labels " + t.Selector
	}
	return s
}

// unreachableHint adds what to do to the errors of an API server that cannot be reached.
func unreachableHint(err error) error {
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "i/o timeout", "dial tcp", "the server could not find", "Unauthorized"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w; check that the cluster is reachable with `kubectl get pods` (--context, --kubeconfig or KUBECONFIG), or diagnose a capture with --from DIR", err)
		}
	}
	return err
}

// IsTargetsError reports an error of the targets themselves.
func IsTargetsError(err error) bool {
	var te *TargetsError
	return errors.As(err, &te)
}
