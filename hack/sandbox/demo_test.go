package main

import (
	"strings"
	"testing"
)

func TestCRILog(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"kubectl --timestamps prefix",
			"2024-04-16T14:02:10.000418733Z [2024-04-16T14:02:10.000Z] \"GET / HTTP/1.1\" 503 UF\n",
			"2024-04-16T14:02:10.000418733Z stdout F [2024-04-16T14:02:10.000Z] \"GET / HTTP/1.1\" 503 UF\n"},
		{"Envoy start time",
			"[2024-04-16T14:02:08.000Z] \"GET / HTTP/1.1\" 503 UO\n[2024-04-16T14:02:08.520Z] \"GET / HTTP/1.1\" 503 UO\n",
			"2024-04-16T14:02:08Z stdout F [2024-04-16T14:02:08.000Z] \"GET / HTTP/1.1\" 503 UO\n" +
				"2024-04-16T14:02:08.52Z stdout F [2024-04-16T14:02:08.520Z] \"GET / HTTP/1.1\" 503 UO\n"},
		{"no time: the previous line's, else the first sample's",
			"envoy started\n[2024-04-16T14:02:12.000Z] x\nmore\n[2024-04-16T14:02:11.000Z] earlier\n",
			"2024-04-16T14:02:11Z stdout F envoy started\n2024-04-16T14:02:12Z stdout F [2024-04-16T14:02:12.000Z] x\n" +
				"2024-04-16T14:02:12Z stdout F more\n2024-04-16T14:02:12Z stdout F [2024-04-16T14:02:11.000Z] earlier\n"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(criLog([]byte(tt.in))); got != tt.want {
				t.Errorf("criLog:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestLoadIncidents(t *testing.T) {
	ins, err := loadIncidents(incidents)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, in := range ins {
		p := in.Spec.Pod
		if names[p.Name] {
			t.Errorf("two pods named %s", p.Name)
		}
		names[p.Name] = true
		if !strings.HasSuffix(p.Name, "-"+in.Name) || p.Namespace != Namespace || p.Labels[IncidentLabel] != in.Name {
			t.Errorf("incident %s: pod %s/%s labelled %v", in.Name, p.Namespace, p.Name, p.Labels)
		}
		meshed := false
		for _, c := range p.Spec.Containers {
			meshed = meshed || c.Name == sidecarContainer
		}
		if !meshed {
			t.Errorf("pod %s has no %s container", p.Name, sidecarContainer)
		}
	}
	if !names["productpage-timeout"] {
		t.Errorf("no productpage-timeout among %v: the README and up's hints name it", names)
	}
	for _, svc := range demoServices(ins) {
		if svc.Spec.Selector["app"] != svc.Name || len(svc.Spec.Ports) == 0 {
			t.Errorf("service %s selects %v on %v", svc.Name, svc.Spec.Selector, svc.Spec.Ports)
		}
	}
}
