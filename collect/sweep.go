package collect

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
)

// DefaultConcurrency is how many pods a sweep reads at once when SweepOptions.Concurrency is 0.
const DefaultConcurrency = 8

// InFlightPerSlot bounds the pods a sweep has started and not finished, per unit of
// Concurrency. A started pod holds its port-forward while it waits out its window (a SPDY
// connection with its own zlib header compressor: about 1.5 MiB), so without a bound a sweep of
// 500 pods started them all before finishing any and peaked at 1.1 GiB. A pod is in flight for
// its window plus its reading time, so six per slot keep every slot busy while the window is at
// most five times a pod's reading time (0.2-0.3 s: windows up to 1-1.5 s); a longer window
// needs a higher Concurrency to go as fast.
const InFlightPerSlot = 6

// DiagnosePod captures one pod into memory and diagnoses it with the same engine as an
// evidence folder. With follow, it then follows the hop to the upstream worth following (see
// diagnose.ChooseHop): samples that upstream's pods over another window and diagnoses again
// with their side, which splits the latency between their application and the way there. The
// capture is returned too, for callers that also keep the evidence.
func DiagnosePod(ctx context.Context, o CaptureOptions, follow bool) (*diagnose.Report, *Result, error) {
	res, err := Capture(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	report, snap, err := diagnoseResult(o, res)
	if err != nil || !follow {
		return report, res, err
	}
	t, ok := diagnose.ChooseHop(snap, report)
	if !ok {
		return report, res, nil
	}
	if err := followHop(ctx, o, res, t); err != nil {
		if ctx.Err() != nil {
			return nil, res, err
		}
		w := "hop to " + t.ServiceName + "." + t.ServiceNamespace + " not followed: " + err.Error()
		res.Warnings = append(res.Warnings, w) // a capture written to disk says it too
		report.Warnings = append(report.Warnings, w)
		return report, res, nil
	}
	report, _, err = diagnoseResult(o, res)
	return report, res, err
}

func diagnoseResult(o CaptureOptions, res *Result) (*diagnose.Report, *diagnose.Snapshot, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	snap, err := res.Snapshot(now())
	if err != nil {
		return nil, nil, err
	}
	report := diagnose.Diagnose(snap, diagnose.Rules())
	report.Target = "pod " + res.Namespace + "/" + res.Pod
	return report, snap, nil
}

// SweepOptions say which pods a sweep diagnoses and how.
type SweepOptions struct {
	// Capture is the template of each pod's capture: clients, window, clock. Its Namespace,
	// Pod, Known, Slots and Progress are set per pod. Without a KubeCache the sweep shares one
	// of its own among its pods, events included.
	Capture CaptureOptions
	// Pods are the meshed pods to diagnose.
	Pods []corev1.Pod
	// Concurrency bounds the pods being read at once (DefaultConcurrency when 0). Pods
	// waiting out their window do not count, so the sweep's time is about one window plus
	// the reading time of all pods divided by Concurrency, as long as InFlightPerSlot times
	// Concurrency pods waiting and reading keep the slots busy.
	Concurrency int
	// Done is called after each pod, with the number of pods done so far; it must be safe to
	// call from several goroutines.
	Done func(done, total int)
}

// Sweep diagnoses every pod and returns their reports in the order of o.Pods. A pod that
// cannot be read gets an Error and does not stop the others; only the end of ctx does.
// Pods start in order, at most InFlightPerSlot times Concurrency started and not finished, so
// a pod back from its window queues for a slot behind few new ones and its port-forward closes
// soon.
func Sweep(ctx context.Context, o SweepOptions) []diagnose.PodDiagnosis {
	n := o.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	slots := NewSlots(n)
	if o.Capture.KubeCache == nil {
		o.Capture.KubeCache = &KubeCache{ShareEvents: true}
	}
	inFlight := make(chan struct{}, n*InFlightPerSlot)
	out := make([]diagnose.PodDiagnosis, len(o.Pods))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	finish := func(i int, pr diagnose.PodDiagnosis) {
		out[i] = pr
		if o.Done != nil {
			mu.Lock() // held over the call, so progress never goes backwards
			done++
			o.Done(done, len(o.Pods))
			mu.Unlock()
		}
	}
	for i := range o.Pods {
		pod := &o.Pods[i]
		pr := diagnose.PodDiagnosis{Namespace: pod.Namespace, Pod: pod.Name}
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
			pr.Error = "not diagnosed: " + ctx.Err().Error()
			finish(i, pr)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inFlight }()
			co := o.Capture
			co.Namespace, co.Pod, co.Known, co.Slots, co.Progress = pod.Namespace, pod.Name, pod, slots, nil
			report, res, err := DiagnosePod(ctx, co, false)
			if err != nil {
				pr.Error = err.Error()
			} else {
				pr.Report, pr.Partial = report, res.Partial()
			}
			finish(i, pr)
		}()
	}
	wg.Wait()
	return out
}
