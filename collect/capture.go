// Package collect captures the evidence of one meshed pod from a live cluster into an evidence
// folder (the files diagnose.LoadDir reads): the pod, two stats samples of the istio-proxy
// sidecar's Envoy admin API a window apart, its config dump, clusters, certificates and server
// info, and the sidecar's access log. The admin API is reached with a client-go port-forward
// through the API server, as istioctl does, so no extra network path to the pod is needed.
package collect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

const (
	// SidecarContainer is the name Istio gives its injected proxy container.
	SidecarContainer = evidence.SidecarContainer
	// AdminPort is the Envoy admin port of the Istio sidecar.
	AdminPort = 15000
	// DefaultWindow is the time between the two stats samples when CaptureOptions.Window is 0.
	DefaultWindow = 10 * time.Second
	// LogTailLines bounds how much of the sidecar's log is read for access-log lines.
	LogTailLines = 2000
	// CapturedBy is written to meta.json so a folder says which tool wrote it.
	CapturedBy = "kubectl-mesh"
)

// CaptureOptions say which pod to capture, how and where.
type CaptureOptions struct {
	// Client reads the pod and its logs.
	Client kubernetes.Interface
	// RESTConfig opens the port-forward (an upgraded connection client-go builds from it).
	RESTConfig *rest.Config
	// Namespace and Pod name the meshed pod.
	Namespace, Pod string
	// Window is the time between the two stats samples (DefaultWindow when 0).
	Window time.Duration
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// Now is the clock for the capture times in meta.json; nil means time.Now.
	Now func() time.Time
	// Known is the pod when the caller has it already (a sweep lists them); nil reads it.
	Known *corev1.Pod
	// Slots bounds how many captures talk to the cluster at once; a capture gives its slot
	// back while it waits out the window, so a sweep of many pods takes about one window
	// plus the time to read them, not one window per pod. Nil means no bound.
	Slots Slots
	// Dynamic reads Istio's PeerAuthentications, DestinationRules and VirtualServices into
	// istio.yaml; nil leaves them out (events, Services and EndpointSlices come from Client).
	Dynamic dynamic.Interface
	// KubeCache shares namespace-wide lists among the captures of a sweep; nil shares nothing.
	KubeCache *KubeCache

	// DebugImage runs the node probe in an ephemeral container when istio-proxy has no tail
	// (DefaultDebugImage when empty).
	DebugImage string
	// SkipNode leaves the node evidence out (node.txt, cadvisor.prom): no exec, no node proxy.
	SkipNode bool
}

// Slots is a counting semaphore shared by the captures of a sweep.
type Slots chan struct{}

// NewSlots returns room for n captures at once.
func NewSlots(n int) Slots { return make(Slots, n) }

// acquire takes a slot, or fails when ctx ends first; a nil Slots never blocks.
func (s Slots) acquire(ctx context.Context) error {
	if s == nil {
		return nil
	}
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s Slots) release() {
	if s != nil {
		<-s
	}
}

// Result is the evidence of one pod, held in memory: the files of an evidence folder, and what
// could not be read.
type Result struct {
	// Namespace and Pod name the captured pod.
	Namespace, Pod string
	// Evidence holds the evidence files by name; WriteDir and WriteTarGz store them.
	Evidence evidence.Set
	// Warnings name each piece of evidence that could not be read and why; the capture went on
	// without it.
	Warnings []string
}

// Snapshot reads the evidence as diagnose.LoadDir reads a folder; the capture's warnings come
// first among the snapshot's.
func (r *Result) Snapshot(now time.Time) (*diagnose.Snapshot, error) {
	s, err := diagnose.LoadFS(r.Evidence.FS(), "the evidence of pod "+r.Namespace+"/"+r.Pod, now)
	if err != nil {
		return nil, err
	}
	s.Warnings = append(append([]string(nil), r.Warnings...), s.Warnings...)
	return s, nil
}

// adminUnread starts the warning of a capture whose port-forward to the admin API failed.
const adminUnread = "Envoy admin API not read: "

// Partial says why the capture lacks the sidecar's own evidence (no stats and no config dump:
// its admin API could not be read), "" when it has it.
func (r *Result) Partial() string {
	if r.Evidence.File(evidence.StatsProm) != nil || r.Evidence.File(evidence.ConfigDump) != nil {
		return ""
	}
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, adminUnread) {
			return w
		}
	}
	return "the sidecar's Envoy admin API answered nothing"
}

// captureRun holds the state of one capture.
type captureRun struct {
	o   CaptureOptions
	res *Result
	// holding says whether the run holds one of o.Slots.
	holding bool
	nodeSt  nodeState
	// pod is the captured pod, as read once at the start.
	pod *corev1.Pod
}

// wait sleeps for d without holding a slot, and takes one back before it returns.
func (r *captureRun) wait(ctx context.Context, d time.Duration) error {
	r.releaseSlot()
	select {
	case <-ctx.Done():
		return fmt.Errorf("capture of %s/%s interrupted: %w", r.o.Namespace, r.o.Pod, ctx.Err())
	case <-time.After(d):
	}
	if err := r.o.Slots.acquire(ctx); err != nil {
		return fmt.Errorf("capture of %s/%s interrupted: %w", r.o.Namespace, r.o.Pod, err)
	}
	r.holding = true
	return nil
}

func (r *captureRun) releaseSlot() {
	if r.holding {
		r.holding = false
		r.o.Slots.release()
	}
}

// Capture writes the evidence folder of one meshed pod: a sidecar's admin API, or for a pod of
// the ambient mesh the log of the ztunnel on its node (captureAmbient). It fails when the pod
// cannot be read, is in neither, or the admin port cannot be forwarded; a single admin endpoint or the log that cannot be read becomes a warning in the
// result and the capture goes on.
func Capture(ctx context.Context, o CaptureOptions) (*Result, error) {
	if o.Client == nil || o.RESTConfig == nil {
		return nil, errors.New("capture: a Kubernetes client and REST config are required")
	}
	if o.Namespace == "" || o.Pod == "" {
		return nil, errors.New("capture: a namespace and pod name are required")
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	r := &captureRun{o: o, res: &Result{Namespace: o.Namespace, Pod: o.Pod}}
	if err := o.Slots.acquire(ctx); err != nil {
		return nil, fmt.Errorf("capture of %s/%s: %w", o.Namespace, o.Pod, err)
	}
	r.holding = true
	defer r.releaseSlot()

	pod := o.Known
	if pod == nil {
		var err error
		pod, err = o.Client.CoreV1().Pods(o.Namespace).Get(ctx, o.Pod, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading pod %s/%s: %w", o.Namespace, o.Pod, err)
		}
	}
	if err := checkSidecar(pod); err != nil {
		nsLabels := namespaceMeshLabels(ctx, r, pod.Namespace)
		if !ambientPod(pod, nsLabels) {
			return nil, err
		}
		return r.captureAmbient(ctx, pod, nsLabels)
	}
	r.pod = pod
	if err := r.writePod(pod); err != nil {
		return nil, err
	}

	r.progress("forwarding port %d of pod %s/%s", AdminPort, o.Namespace, o.Pod)
	fw, err := startPortForward(ctx, o.RESTConfig, o.Client, o.Namespace, o.Pod, AdminPort)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The pod itself still explains a sidecar that is not running or not ready.
		r.res.Warnings = append(r.res.Warnings, adminUnread+err.Error())
	} else {
		defer fw.Stop()
		admin := &envoyadmin.AdminClient{BaseURL: fw.BaseURL(), HTTP: fw.HTTPClient()}
		if err := r.admin(ctx, admin); err != nil {
			return nil, err
		}
	}
	r.accessLog(ctx)
	r.kube(ctx, pod)
	return r.res, nil
}

// checkSidecar finds the istio-proxy container: a regular container, or a native sidecar (an
// init container with restartPolicy Always), as Istio injects it on Kubernetes 1.29 and later.
func checkSidecar(pod *corev1.Pod) error {
	if evidence.HasSidecar(pod) {
		return nil
	}
	names := make([]string, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	return fmt.Errorf("pod %s/%s has no %s sidecar and is not in the ambient mesh: its containers are %v; label the namespace with istio-injection=enabled (or istio.io/rev) and restart the pod, or with istio.io/dataplane-mode=ambient, or capture a meshed pod",
		pod.Namespace, pod.Name, SidecarContainer, names)
}

// writePod writes the pod as `kubectl get` prints it, without managed fields, which are long and
// say nothing about the proxy, and without credentials in its environment (evidence.RedactPod). Like
// every .yaml evidence file it is JSON in memory and YAML on disk (Evidence.WriteDir).
func (r *captureRun) writePod(pod *corev1.Pod) error {
	p := pod.DeepCopy()
	p.ManagedFields = nil
	evidence.RedactPod(p)
	p.APIVersion, p.Kind = "v1", "Pod" // a typed Get leaves TypeMeta empty
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pod %s/%s as JSON: %w", pod.Namespace, pod.Name, err)
	}
	return r.write(evidence.Pod, b)
}

// admin reads the admin API: a stats sample, another after the window, then the rest once.
func (r *captureRun) admin(ctx context.Context, admin *envoyadmin.AdminClient) error {
	stats := func() ([]byte, error) {
		return admin.Stats(ctx, envoyadmin.StatsPrometheus, envoyadmin.DefaultStatsFilter)
	}
	r.progress("stats sample 1 of 2")
	t1 := r.o.Now()
	r.fetch(evidence.StatsProm, stats)
	p1 := admin.ProxyTime()
	r.node(ctx, 1)
	r.progress("waiting %v for the second stats sample", r.o.Window)
	if err := r.wait(ctx, r.o.Window); err != nil {
		return err
	}
	r.progress("stats sample 2 of 2")
	t2 := r.o.Now()
	r.fetch(evidence.Stats2Prom, stats)
	p2 := admin.ProxyTime()
	r.node(ctx, 2)

	r.progress("config dump, clusters, certificates, server info")
	r.fetch(evidence.ConfigDump, func() ([]byte, error) {
		b, err := admin.ConfigDump(ctx, true)
		if err != nil {
			return nil, err
		}
		return b, nil // redacted by write, as every file
	})
	r.fetch(evidence.ClustersJSON, func() ([]byte, error) { return admin.Clusters(ctx) })
	r.fetch(evidence.Certs, func() ([]byte, error) { return admin.Certs(ctx) })
	r.fetch(evidence.ServerInfo, func() ([]byte, error) { return admin.ServerInfo(ctx) })

	window := t2.Sub(t1).Seconds()
	if window <= 0 { // a clock that did not move, as in tests
		window = r.o.Window.Seconds()
	}
	// The capture times are the proxy's own (its answers' Date header, to the second) when it
	// stated them: expiry is judged by the clock the proxy runs on. The window is measured
	// here, to the millisecond.
	if !p1.IsZero() && !p2.IsZero() && !p2.Before(p1) {
		t1, t2 = p1, p1.Add(t2.Sub(t1))
	}
	meta := evidence.MetaFile{
		Pod: r.o.Pod, Namespace: r.o.Namespace,
		CaptureTimes:  []time.Time{t1.UTC(), t2.UTC()},
		WindowSeconds: window,
		CapturedBy:    CapturedBy,
		NodeTimes:     r.nodeTimes(),
	}
	b, err := json.MarshalIndent(meta, "", " ")
	if err != nil {
		return fmt.Errorf("meta.json: %w", err)
	}
	return r.write(evidence.Meta, append(b, '\n'))
}

// accessLog reads the sidecar's recent log lines with their timestamps; the diagnosis picks the
// access-log lines out of them.
func (r *captureRun) accessLog(ctx context.Context) {
	r.progress("access log of %s (last %d lines)", SidecarContainer, LogTailLines)
	tail := int64(LogTailLines)
	r.fetch(evidence.AccessLog, func() ([]byte, error) {
		b, err := r.o.Client.CoreV1().Pods(r.o.Namespace).GetLogs(r.o.Pod, &corev1.PodLogOptions{
			Container: SidecarContainer, TailLines: &tail, Timestamps: true,
		}).DoRaw(ctx)
		if msg, ok := refusal(err, "reading the logs of "+SidecarContainer, "get", "pods/log", r.o.Namespace); ok {
			return nil, errors.New(msg)
		}
		if err != nil {
			return nil, fmt.Errorf("logs of container %s: %w", SidecarContainer, err)
		}
		return b, nil // redacted by write, as every file
	})
}

// fetch writes what get returns to name; a failure becomes a warning.
func (r *captureRun) fetch(name string, get func() ([]byte, error)) {
	b, err := get()
	if err == nil {
		err = r.write(name, b)
	}
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("%s not captured: %v", name, err))
	}
}

func (r *captureRun) write(name string, b []byte) error {
	r.res.Evidence.Add(name, evidence.RedactFile(name, b))
	return nil
}

func (r *captureRun) progress(format string, a ...any) {
	if r.o.Progress != nil {
		fmt.Fprintf(r.o.Progress, format+"\n", a...)
	}
}
