package collect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// An ambient pod has no sidecar: the ztunnel on its node carries its traffic once istio-cni
// has redirected it. Its evidence is the pod, its namespace's mesh labels, the objects around
// it, and the lines of that ztunnel's log that name it.

const (
	// ZtunnelSelector finds the ztunnel pods, as Istio's ztunnel chart labels them.
	ZtunnelSelector = "app=ztunnel"
	// ztunnelLogTail bounds what is read of ztunnel's log: it logs every connection of every
	// pod on the node.
	ztunnelLogTail  = 20000
	ztunnelLogBytes = 16 << 20
)

// meshLabels are the namespace labels that decide how the mesh serves its pods.
var meshLabels = []string{label.IoIstioDataplaneMode.Name, label.IoIstioUseWaypoint.Name, "istio-injection", label.IoIstioRev.Name}

// ambientPod reports whether a pod without a sidecar is one the ambient mesh serves or should
// serve: istio-cni marked it, or it or its namespace asks for ambient (and it did not opt out).
func ambientPod(p *corev1.Pod, nsLabels map[string]string) bool {
	if p.Spec.HostNetwork || p.Labels[label.IoIstioDataplaneMode.Name] == "none" {
		return false
	}
	return p.Annotations[annotation.AmbientRedirection.Name] != "" || p.Labels[label.IoIstioDataplaneMode.Name] == "ambient" || nsLabels[label.IoIstioDataplaneMode.Name] == "ambient"
}

// namespaceMeshLabels reads the mesh labels of a namespace; nil when it cannot be read (the
// pod's own marks then decide).
func namespaceMeshLabels(ctx context.Context, r *captureRun, name string) map[string]string {
	ns, err := r.o.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("namespace %s not read, so its istio.io/dataplane-mode is unknown: %v", name, err))
		return nil
	}
	out := map[string]string{}
	for _, k := range meshLabels {
		if v, ok := ns.Labels[k]; ok {
			out[k] = v
		}
	}
	return out
}

// captureAmbient captures an ambient pod: the pod, its node's ztunnel's lines about it, the
// objects around it.
func (r *captureRun) captureAmbient(ctx context.Context, pod *corev1.Pod, nsLabels map[string]string) (*Result, error) {
	r.pod = pod
	if err := r.writePod(pod); err != nil {
		return nil, err
	}
	r.progress("pod %s/%s has no sidecar and is in the ambient mesh: reading the ztunnel on node %s", pod.Namespace, pod.Name, pod.Spec.NodeName)
	// The node samples bracket ztunnel's metric samples: both a window apart (in a sweep the
	// metrics of the node may be read already, so the window is waited out here).
	r.node(ctx, 1)
	r.ztunnelCadvisor(ctx, pod, evidence.ZtunnelCadvisor)
	start := time.Now()
	times, err := r.ztunnelMetrics(ctx, pod)
	if err != nil {
		return nil, err
	}
	if rest := r.o.Window - time.Since(start); rest > 0 {
		if err := r.wait(ctx, rest); err != nil {
			return nil, err
		}
	}
	r.node(ctx, 2)
	r.ztunnelCadvisor(ctx, pod, evidence.ZtunnelCadvisor2)
	zt := r.ztunnelLog(ctx, pod)
	r.ztunnelConfigDump(ctx, pod)
	r.kube(ctx, pod)
	meta := evidence.MetaFile{Pod: pod.Name, Namespace: pod.Namespace, CapturedBy: CapturedBy, NamespaceLabels: nsLabels, Ztunnel: zt,
		CaptureTimes: []time.Time{r.o.Now().UTC()}, NodeTimes: r.nodeTimes()}
	if len(times) == 2 {
		meta.CaptureTimes, meta.WindowSeconds = times, times[1].Sub(times[0]).Seconds()
	}
	b, err := json.MarshalIndent(meta, "", " ")
	if err != nil {
		return nil, fmt.Errorf("meta.json: %w", err)
	}
	if err := r.write(evidence.Meta, append(b, '\n')); err != nil {
		return nil, err
	}
	// Last: which waypoint serves the pod is read from the evidence above.
	if err := r.waypoint(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

// ztunnelLog writes the lines of the pod's node's ztunnel that name the pod (its IP or its
// name) and its ztunnel-wide warnings and errors (istiod, certificates), and returns the
// ztunnel pod as namespace/name. A sweep reads each node's ztunnel log once (KubeCache).
func (r *captureRun) ztunnelLog(ctx context.Context, pod *corev1.Pod) string {
	node := pod.Spec.NodeName
	if node == "" {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelLog+" not captured: the pod is not scheduled on a node yet")
		return ""
	}
	r.progress("log of the ztunnel on node %s (last %d lines), lines that name %s", node, ztunnelLogTail, pod.Name)
	v, err := r.o.KubeCache.get("ztunnel-log/"+node, func() (any, error) { return r.readZtunnel(ctx, node) })
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelLog+" not captured: "+err.Error())
		if z, ok := v.(nodeZtunnel); ok {
			return z.name
		}
		return ""
	}
	z := v.(nodeZtunnel)
	if err := r.write(evidence.ZtunnelLog, aboutPod(z.log, pod)); err != nil {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelLog+" not captured: "+err.Error())
	}
	return z.name
}

// nodeZtunnel is the ztunnel pod of a node and the tail of its log.
type nodeZtunnel struct {
	name string // namespace/name
	log  []byte
}

func (r *captureRun) readZtunnel(ctx context.Context, node string) (any, error) {
	l, err := r.o.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: ZtunnelSelector, FieldSelector: "spec.nodeName=" + node})
	if msg, ok := refusal(err, "finding the ztunnel of node "+node, "list", "pods", "(all namespaces)"); ok {
		return nil, errors.New(msg)
	}
	if err != nil {
		return nil, fmt.Errorf("finding the ztunnel of node %s: %w", node, err)
	}
	var zt *corev1.Pod
	for i := range l.Items { // the field selector, checked again
		if l.Items[i].Spec.NodeName == node {
			zt = &l.Items[i]
			break
		}
	}
	if zt == nil {
		return nil, fmt.Errorf("no pod labelled %s runs on node %s: ztunnel is not installed or not scheduled there", ZtunnelSelector, node)
	}
	z := nodeZtunnel{name: zt.Namespace + "/" + zt.Name}
	tail, limit := int64(ztunnelLogTail), int64(ztunnelLogBytes)
	b, err := r.o.Client.CoreV1().Pods(zt.Namespace).GetLogs(zt.Name, &corev1.PodLogOptions{TailLines: &tail, LimitBytes: &limit}).DoRaw(ctx)
	if msg, ok := refusal(err, "reading the log of ztunnel "+z.name, "get", "pods/log", zt.Namespace); ok {
		return z, errors.New(msg)
	}
	if err != nil {
		return z, fmt.Errorf("log of ztunnel %s: %w", z.name, err)
	}
	z.log = b
	return z, nil
}

// aboutPod keeps the lines of a ztunnel log that name the pod (its IP followed by a port or a
// quote, or its name quoted) and ztunnel's warnings and errors that name no connection (istiod
// out of reach, certificates), which touch every pod of the node.
func aboutPod(log []byte, pod *corev1.Pod) []byte {
	var marks []string
	for _, ip := range pod.Status.PodIPs {
		marks = append(marks, ip.IP+":", "["+ip.IP+"]:", ip.IP+`"`)
	}
	if pod.Status.PodIP != "" && len(pod.Status.PodIPs) == 0 {
		marks = append(marks, pod.Status.PodIP+":", pod.Status.PodIP+`"`)
	}
	marks = append(marks, `"`+pod.Name+`"`)
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		keep := false
		for _, m := range marks {
			if strings.Contains(line, m) {
				keep = true
				break
			}
		}
		if !keep {
			if l, ok := ztunnel.ParseLine(line); ok && (l.Level == "warn" || l.Level == "error") && l.Fields["src.addr"] == "" && l.Fields["dst.addr"] == "" {
				keep = true
			}
		}
		if keep {
			out.WriteString(line)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// ZtunnelAdminPort is ztunnel's admin port: /config_dump. It listens on localhost only, which a
// port-forward reaches.
const ZtunnelAdminPort = 15000

// ztunnelConfigDump writes the config dump of the ztunnel on the pod's node, read once per node
// in a sweep.
func (r *captureRun) ztunnelConfigDump(ctx context.Context, pod *corev1.Pod) {
	node := pod.Spec.NodeName
	dump, err := r.ztunnelPort(ctx, node, "ztunnel-dump", ZtunnelAdminPort, func(fw *forward) (any, error) {
		admin := &envoyadmin.AdminClient{BaseURL: fw.BaseURL(), HTTP: fw.HTTPClient()}
		return admin.ConfigDump(ctx, false) // ztunnel serves the path Envoy does
	})
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelDump+" not captured: "+err.Error())
		return
	}
	if err := r.write(evidence.ZtunnelDump, dump.([]byte)); err != nil {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelDump+" not captured: "+err.Error())
	}
}

// ZtunnelMetricsPort serves ztunnel's Prometheus metrics (/metrics).
const ZtunnelMetricsPort = 15020

// ztunnelSamples are two samples of a node's ztunnel metrics, a window apart.
type ztunnelSamples struct {
	first, second []byte
	times         []time.Time
}

// ztunnelMetrics writes two samples of the metrics of the ztunnel on the pod's node, the
// capture's window apart (once per node in a sweep), and returns their times. Only an
// interrupted wait is an error; a ztunnel that cannot be read is a warning.
func (r *captureRun) ztunnelMetrics(ctx context.Context, pod *corev1.Pod) ([]time.Time, error) {
	node := pod.Spec.NodeName
	got, err := r.ztunnelPort(ctx, node, "ztunnel-metrics", ZtunnelMetricsPort, func(fw *forward) (any, error) {
		get := func() ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fw.BaseURL()+"/metrics", nil)
			if err != nil {
				return nil, err
			}
			resp, err := fw.HTTPClient().Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
			}
			return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		}
		var s ztunnelSamples
		var err error
		r.progress("ztunnel's metrics, sample 1 of 2")
		t1 := r.o.Now()
		if s.first, err = get(); err != nil {
			return nil, err
		}
		r.progress("waiting %v for the second sample", r.o.Window)
		if err := r.wait(ctx, r.o.Window); err != nil {
			return nil, err
		}
		t2 := r.o.Now()
		if s.second, err = get(); err != nil {
			return nil, err
		}
		if !t2.After(t1) { // a clock that did not move, as in tests
			t2 = t1.Add(r.o.Window)
		}
		s.times = []time.Time{t1.UTC(), t2.UTC()}
		return s, nil
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, evidence.ZtunnelProm+" not captured: "+err.Error())
		return nil, nil
	}
	s := got.(ztunnelSamples)
	if err := r.write(evidence.ZtunnelProm, s.first); err != nil {
		return nil, err
	}
	if err := r.write(evidence.ZtunnelProm2, s.second); err != nil {
		return nil, err
	}
	return s.times, nil
}

// ztunnelPort reads what read gets from a port of the ztunnel on the node, through a
// port-forward, once per node and key in a sweep.
func (r *captureRun) ztunnelPort(ctx context.Context, node, key string, port int, read func(fw *forward) (any, error)) (any, error) {
	v, err := r.o.KubeCache.get("ztunnel-log/"+node, func() (any, error) { return r.readZtunnel(ctx, node) })
	z, ok := v.(nodeZtunnel)
	if !ok || z.name == "" {
		if err == nil {
			err = errors.New("no ztunnel found on node " + node)
		}
		return nil, err
	}
	return r.o.KubeCache.get(key+"/"+node, func() (any, error) {
		ns, name, _ := strings.Cut(z.name, "/")
		if !hasRESTClient(r.o.Client) {
			return nil, errors.New("this client cannot port-forward")
		}
		r.progress("port %d of ztunnel %s", port, z.name)
		fw, err := startPortForward(ctx, r.o.RESTConfig, r.o.Client, ns, name, port)
		if err != nil {
			return nil, fmt.Errorf("port-forward to ztunnel %s: %w", z.name, err)
		}
		defer fw.Stop()
		return read(fw)
	})
}

// waypoint captures the Envoy of the waypoint that serves the pod, when one is bound and
// programmed, as a sidecar's, into the waypoint-* files. Only an interrupted capture is an
// error; a waypoint that cannot be read is a warning.
func (r *captureRun) waypoint(ctx context.Context) error {
	s, err := r.res.Snapshot(r.o.Now())
	if err != nil {
		return nil
	}
	ns, name := s.ServingWaypoint()
	if name == "" {
		return nil
	}
	warn := func(err error) {
		r.res.Warnings = append(r.res.Warnings, "waypoint "+ns+"/"+name+" not captured: "+err.Error())
	}
	pods, err := r.o.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: label.IoK8sNetworkingGatewayGatewayName.Name + "=" + name})
	if err != nil {
		warn(err)
		return nil
	}
	var wp *corev1.Pod
	for i := range pods.Items {
		if p := &pods.Items[i]; p.Status.Phase == corev1.PodRunning && evidence.HasSidecar(p) {
			wp = p
			break
		}
	}
	if wp == nil {
		warn(fmt.Errorf("none of its %d pods runs", len(pods.Items)))
		return nil
	}
	r.progress("the waypoint that serves the pod: %s/%s", ns, wp.Name)
	sub, err := Capture(ctx, CaptureOptions{Client: r.o.Client, Dynamic: r.o.Dynamic, RESTConfig: r.o.RESTConfig,
		Namespace: ns, Pod: wp.Name, Known: wp, Window: r.o.Window, DebugImage: r.o.DebugImage, Now: r.o.Now,
		KubeCache: r.o.KubeCache, Progress: r.o.Progress})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		warn(err)
		return nil
	}
	for _, f := range sub.Evidence.Names() {
		if err := r.write(evidence.WaypointPrefix+f, sub.Evidence.File(f)); err != nil {
			return err
		}
	}
	for _, w := range sub.Warnings {
		r.res.Warnings = append(r.res.Warnings, "waypoint "+ns+"/"+wp.Name+": "+w)
	}
	return nil
}

// ztunnelCadvisor writes the kubelet's cAdvisor lines of the ztunnel on the pod's node, read
// with the pod's own: ztunnel's CPU throttling delays every ambient pod of the node.
func (r *captureRun) ztunnelCadvisor(ctx context.Context, pod *corev1.Pod, file string) {
	node := pod.Spec.NodeName
	if node == "" || !hasRESTClient(r.o.Client) {
		return
	}
	v, _ := r.o.KubeCache.get("ztunnel-log/"+node, func() (any, error) { return r.readZtunnel(ctx, node) })
	z, ok := v.(nodeZtunnel)
	if !ok || z.name == "" {
		return // the ztunnel files' warnings say why
	}
	ns, name, _ := strings.Cut(z.name, "/")
	kept, err := r.o.KubeCache.podCadvisor(ctx, r.o.Client, node, ns, name, maxScrapeAge(r.o.Window))
	if err == nil && len(kept) == 0 {
		err = fmt.Errorf("node %s /metrics/cadvisor has no series of %s", node, z.name)
	}
	if err != nil {
		r.res.Warnings = append(r.res.Warnings, file+" not captured: "+err.Error())
		return
	}
	_ = r.write(file, kept)
}
