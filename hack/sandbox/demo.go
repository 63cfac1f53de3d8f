package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-mesh/kubectl-mesh/diagnose"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/incidentpod"
)

const (
	// sidecarContainer and adminPort are Istio's (collect.SidecarContainer, collect.AdminPort).
	sidecarContainer = "istio-proxy"
	adminPort        = 15000
	// IncidentLabel names the incident a demo pod replays.
	IncidentLabel = "sandbox.kubectl-mesh.io/incident"
)

// incident is one evidence folder and the demo pod that replays it.
type incident struct {
	Name string // the folder's name: timeout, keepalive-race, ...
	Dir  string
	// Spec is the pod made from the folder's pod.yaml, named after the app and the
	// incident (productpage-timeout) and labelled with IncidentLabel; its node is set
	// by up.
	Spec *incidentpod.Spec
}

// loadIncidents reads every folder of dir that holds a pod.yaml, sorted by name.
func loadIncidents(dir string) ([]incident, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("incident folders: %w", err)
	}
	var out []incident
	for _, e := range entries {
		sub := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(sub, diagnose.FilePod)); !e.IsDir() || err != nil {
			continue // gen/, README.md
		}
		spec, err := incidentpod.FromIncident(sub, Namespace, "", "")
		if err != nil {
			return nil, err
		}
		pod := spec.Pod
		if pod.Labels == nil || pod.Labels["app"] == "" {
			pod.Labels = map[string]string{"app": "app"}
		}
		pod.Labels[IncidentLabel] = e.Name()
		pod.Name = podName(pod.Labels["app"], e.Name())
		out = append(out, incident{Name: e.Name(), Dir: sub, Spec: spec})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no incident folder with a %s in %s", diagnose.FilePod, dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// podName names a demo pod after its app and incident: productpage-timeout.
func podName(app, incident string) string {
	name := app + "-" + incident
	if len(name) > validation.DNS1123LabelMaxLength {
		name = strings.TrimRight(name[:validation.DNS1123LabelMaxLength], "-")
	}
	return name
}

func (in incident) app() string { return in.Spec.Pod.Labels["app"] }

// demoServices returns one Service per app, selecting its pods by the app label, with
// the ports of the app's containers other than the sidecar.
func demoServices(incidents []incident) []*corev1.Service {
	byApp := map[string]*corev1.Service{}
	var apps []string
	for _, in := range incidents {
		app := in.app()
		svc := byApp[app]
		if svc == nil {
			svc = &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: Namespace, Labels: map[string]string{"app": app, "service": app}},
				Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": app}},
			}
			byApp[app] = svc
			apps = append(apps, app)
		}
		for _, c := range in.Spec.Pod.Spec.Containers {
			if c.Name == sidecarContainer {
				continue
			}
			for _, cp := range c.Ports {
				if !hasPort(svc, cp.ContainerPort) {
					svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
						Name: fmt.Sprintf("http-%d", cp.ContainerPort), Port: cp.ContainerPort,
						TargetPort: intstr.FromInt32(cp.ContainerPort), Protocol: corev1.ProtocolTCP,
					})
				}
			}
		}
	}
	sort.Strings(apps)
	out := make([]*corev1.Service, 0, len(apps))
	for _, app := range apps {
		svc := byApp[app]
		if len(svc.Spec.Ports) == 0 { // a Service needs a port
			svc.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}}
		}
		out = append(out, svc)
	}
	return out
}

func hasPort(svc *corev1.Service, port int32) bool {
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// criLog turns an incident's access.log into the CRI log file kwok serves as the
// sidecar's log, so `kubectl logs -c istio-proxy` (with or without --timestamps) prints
// the captured lines. A line's time is its `kubectl logs --timestamps` prefix, else the
// start time Envoy writes in brackets, kept in order: a line's time is never before the
// previous line's.
func criLog(accessLog []byte) []byte {
	var b bytes.Buffer
	last := time.Time{}
	sc := bufio.NewScanner(bytes.NewReader(accessLog))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var t time.Time
		if ts, rest, ok := strings.Cut(line, " "); ok {
			if pt, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				t, line = pt, rest
			}
		}
		if end := strings.IndexByte(line, ']'); t.IsZero() && strings.HasPrefix(line, "[") && end > 0 {
			t, _ = time.Parse(time.RFC3339Nano, line[1:end])
		}
		switch {
		case t.IsZero() && last.IsZero():
			t = time.Date(2024, 4, 16, 14, 2, 11, 0, time.UTC) // the incidents' first sample
		case t.IsZero() || t.Before(last):
			t = last
		}
		last = t
		fmt.Fprintf(&b, "%s stdout F %s\n", t.UTC().Format(time.RFC3339Nano), line)
	}
	return b.Bytes()
}
