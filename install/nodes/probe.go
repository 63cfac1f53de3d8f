// Package nodes is the engine of `kubectl mesh nodes` and of the install's node checks: a
// short-lived probe pod per node reads its sysctls, CPU steal and disk latency, and a privileged
// DaemonSet sets the recommended sysctls.
package nodes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mesh/kubectl-mesh/collect"
	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Node probe pods: what `kubectl mesh nodes` and the install's preflight start on each node.
const (
	// ProbeLabel marks the probe pods, so a leftover one can be found and removed.
	ProbeLabel = "app.kubernetes.io/component"
	ProbeValue = "kubectl-mesh-node-probe"
	// DefaultWindow is the time between a probe's two samples (steal, disk latency).
	DefaultWindow = 3 * time.Second
	// probeLifetime bounds a probe pod that was never deleted (the command was killed):
	// the kubelet ends it after this.
	probeLifetime = 10 * time.Minute
	probeStart    = 2 * time.Minute
)

// ProbeOptions say where and how to probe nodes.
type ProbeOptions struct {
	Client     kubernetes.Interface
	RESTConfig *rest.Config
	// Namespace holds the probe pods.
	Namespace string
	// Image runs the probe: it needs tail (busybox's is enough).
	Image string
	// Nodes to probe; empty probes every node.
	Nodes []string
	// Window is the time between the two samples (DefaultWindow when 0).
	Window time.Duration
	// Concurrency bounds the nodes probed at once (4 when 0).
	Concurrency int
	Progress    io.Writer
	// Exec runs a command in a probe pod's container (collect.Exec through the API server
	// when nil). Tests replace it, as kubectl's tests replace a command's request function.
	Exec func(ctx context.Context, namespace, pod string, cmd []string) (stdout, stderr []byte, err error)
}

// SysctlReading is one sysctl of a node against the recommended tuning.
type SysctlReading struct {
	Name        string `json:"name"`
	Current     string `json:"current"`
	Recommended string `json:"recommended"`
	OK          bool   `json:"ok"`
}

// DiskReading is one disk's latency over the window.
type DiskReading struct {
	Name    string  `json:"name"`
	AwaitMs float64 `json:"awaitMs"`
	IOs     float64 `json:"ios"`
}

// Report is what the probe read on one node.
type Report struct {
	Node    string          `json:"node"`
	Sysctls []SysctlReading `json:"sysctls,omitempty"`
	// StealPct and IOWaitPct are the node's CPU time lost to steal and waiting for I/O over
	// the window, in percent; nil when not read.
	StealPct  *float64      `json:"stealPercent,omitempty"`
	IOWaitPct *float64      `json:"iowaitPercent,omitempty"`
	Disks     []DiskReading `json:"disks,omitempty"`
	// WindowSeconds is the time between the two samples.
	WindowSeconds float64 `json:"windowSeconds,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// ProbePod is the pod that reads a node's counters: on the node's network (the sysctls of
// net.ipv4 are per network namespace, and the node's are the ones to tune), without the host's
// processes, read-only, without privileges, sleeping until it is exec'd into and then deleted.
func ProbePod(namespace, node, image string) *corev1.Pod {
	no, yes := false, true
	uid := int64(65534) // nobody: /proc and /proc/sys are world-readable
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "kubectl-mesh-node-probe-" + utilrand.String(6),
			Namespace: namespace,
			Labels:    map[string]string{ProbeLabel: ProbeValue, apply.ManagedByLabel: apply.ManagedBy},
		},
		Spec: corev1.PodSpec{
			NodeName:      node,
			HostNetwork:   true,
			HostPID:       false,
			RestartPolicy: corev1.RestartPolicyNever,
			// The pod ends itself if nobody deletes it.
			ActiveDeadlineSeconds:         ptr(int64(probeLifetime.Seconds())),
			TerminationGracePeriodSeconds: ptr(int64(0)),
			AutomountServiceAccountToken:  &no,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:    "probe",
				Image:   image,
				Command: []string{"sleep", fmt.Sprint(int(probeLifetime.Seconds()))},
				SecurityContext: &corev1.SecurityContext{
					RunAsUser: &uid, RunAsNonRoot: &yes, ReadOnlyRootFilesystem: &yes,
					AllowPrivilegeEscalation: &no, Privileged: &no,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}},
			}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// Probe starts a probe pod on each node, samples it twice a window apart, and deletes it.
// A node whose probe fails gets an Error; the others go on.
func Probe(ctx context.Context, o ProbeOptions) ([]Report, error) {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Image == "" {
		o.Image = collect.DefaultDebugImage
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Exec == nil {
		o.Exec = func(ctx context.Context, namespace, pod string, cmd []string) ([]byte, []byte, error) {
			return collect.Exec(ctx, o.Client, o.RESTConfig, namespace, pod, "probe", cmd)
		}
	}
	nodes := o.Nodes
	if len(nodes) == 0 {
		l, err := o.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			if collect.Forbidden(err) {
				return nil, errors.New("listing nodes is forbidden: it needs list on nodes (cluster-scoped); name the nodes to probe instead")
			}
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		for _, n := range l.Items {
			nodes = append(nodes, n.Name)
		}
	}
	sort.Strings(nodes)
	out := make([]Report, len(nodes))
	slots := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			out[i] = probeNode(ctx, o, n)
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

func probeNode(ctx context.Context, o ProbeOptions, node string) Report {
	rep := Report{Node: node}
	fail := func(err error) Report {
		rep.Error = err.Error()
		return rep
	}
	pods := o.Client.CoreV1().Pods(o.Namespace)
	pod, err := pods.Create(ctx, ProbePod(o.Namespace, node, o.Image), metav1.CreateOptions{FieldManager: apply.FieldManager})
	if err != nil {
		if collect.Forbidden(err) {
			return fail(fmt.Errorf("creating the probe pod is forbidden: it needs create on pods in namespace %s (and pods/exec get and create)", o.Namespace))
		}
		return fail(fmt.Errorf("creating the probe pod: %w", err))
	}
	defer func() {
		// Always removed, also when the command is interrupted: it is kubectl-mesh's own pod.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		grace := int64(0)
		if err := pods.Delete(dctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil && !apierrors.IsNotFound(err) && o.Progress != nil {
			fmt.Fprintf(o.Progress, "warning: probe pod %s/%s was not deleted (%v): it ends itself after %v\n", o.Namespace, pod.Name, err, probeLifetime)
		}
	}()
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "probing node %s (pod %s/%s)\n", node, o.Namespace, pod.Name)
	}
	if err := waitPodRunning(ctx, o.Client, o.Namespace, pod.Name); err != nil {
		return fail(err)
	}
	sample := func() (*nodeinfo.Sample, time.Time, error) {
		t := time.Now()
		out, stderr, err := o.Exec(ctx, o.Namespace, pod.Name, nodeinfo.ProbeCommand("/"))
		if err != nil && !nodeinfo.HasSections(string(out)) {
			if collect.Forbidden(err) {
				return nil, t, fmt.Errorf("exec into the probe pod is forbidden: it needs get and create on pods/exec in namespace %s", o.Namespace)
			}
			return nil, t, fmt.Errorf("exec of tail in the probe pod: %v%s", err, collect.FirstLine(stderr))
		}
		s, err := nodeinfo.ParseProbe(string(out))
		return s, t, err
	}
	a, t1, err := sample()
	if err != nil {
		return fail(err)
	}
	select {
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(o.Window):
	}
	b, t2, err := sample()
	if err != nil {
		return fail(err)
	}
	for _, t := range nodeinfo.SeedTuning {
		have, ok := b.Sysctls[t.Name]
		if !ok {
			continue
		}
		rep.Sysctls = append(rep.Sysctls, SysctlReading{Name: t.Name, Current: have, Recommended: t.Value, OK: !t.Below(have)})
	}
	rep.WindowSeconds = t2.Sub(t1).Seconds()
	if iv := nodeinfo.NewInterval(a, b, rep.WindowSeconds); iv != nil {
		if iv.CPU != nil {
			rep.StealPct, rep.IOWaitPct = ptr(iv.CPU.StealPct), ptr(iv.CPU.IOWaitPct)
		}
		for _, d := range iv.Disks {
			rep.Disks = append(rep.Disks, DiskReading{Name: d.Name, AwaitMs: d.AwaitMs, IOs: d.IOs})
		}
	}
	return rep
}

// waitPodRunning waits for a pod to run, and says why when it cannot (an image that does not
// pull, a node that refuses it).
func waitPodRunning(ctx context.Context, client kubernetes.Interface, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, probeStart)
	defer cancel()
	var last string
	for {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			switch p.Status.Phase {
			case corev1.PodRunning:
				return nil
			case corev1.PodFailed, corev1.PodSucceeded:
				return fmt.Errorf("the probe pod ended (%s): %s", p.Status.Phase, p.Status.Message)
			}
			for _, cs := range p.Status.ContainerStatuses {
				if w := cs.State.Waiting; w != nil {
					last = w.Reason + ": " + w.Message
					if strings.Contains(w.Reason, "ImagePull") || w.Reason == "InvalidImageName" {
						return fmt.Errorf("the probe pod cannot start: %s (set another image with --image)", last)
					}
				}
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					last = c.Reason + ": " + c.Message
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the probe pod did not start in %v (%s)", probeStart, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Thresholds above which a node's probe is a shortfall.
const (
	StealWarnPct = 10.0
	AwaitWarnMs  = 50.0
)

// Shortfalls says how the node falls short of the tuning meshed traffic needs: sysctls below
// the recommended values, CPU steal, slow disks; a node not probed says why.
func (r Report) Shortfalls() []string {
	if r.Error != "" {
		return []string{"not probed: " + r.Error}
	}
	var out []string
	for _, s := range r.Sysctls {
		if !s.OK {
			out = append(out, fmt.Sprintf("%s is %s (recommended %s)", s.Name, s.Current, s.Recommended))
		}
	}
	if r.StealPct != nil && *r.StealPct >= StealWarnPct {
		out = append(out, fmt.Sprintf("%.0f%% of its CPU time is stolen by the hypervisor", *r.StealPct))
	}
	for _, d := range r.Disks {
		if d.IOs > 0 && d.AwaitMs >= AwaitWarnMs {
			out = append(out, fmt.Sprintf("disk %s takes %.0f ms per I/O", d.Name, d.AwaitMs))
		}
	}
	return out
}
