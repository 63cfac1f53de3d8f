package diagnose

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fxMeshedPod is a running pod with an app container and istio-proxy (ready unless changed).
func fxMeshedPod(mutate func(p *corev1.Pod, proxy *corev1.Container, st *corev1.ContainerStatus)) *Snapshot {
	p := fxPod("reviews")
	p.CreationTimestamp = metav1.NewTime(fxNow.Add(-time.Hour))
	p.Spec.Containers = []corev1.Container{{Name: "reviews"}, {Name: "istio-proxy"}}
	p.Status.Phase = corev1.PodRunning
	started := metav1.NewTime(fxNow.Add(-time.Hour))
	p.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "reviews", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}},
		{Name: "istio-proxy", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}},
	}
	if mutate != nil {
		mutate(p, &p.Spec.Containers[1], &p.Status.ContainerStatuses[1])
	}
	return &Snapshot{Now: fxNow, Pod: p}
}

func fxLimits(cpu, mem string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}
	if cpu != "" {
		r.Limits[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		r.Limits[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return r
}

func TestSidecarRule(t *testing.T) {
	oomAt := func(ago time.Duration) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137, FinishedAt: metav1.NewTime(fxNow.Add(-ago))}}
	}
	cases := []struct {
		name  string
		snap  *Snapshot
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"running but not ready: not configured by istiod", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) { st.Ready = false }),
			[]string{"MESH1301"}, func(t *testing.T, fs []Finding) {
				if fs[0].Evidence[0].Text != "1/2" || !strings.Contains(fs[0].Explanation, "istiod") || !strings.Contains(fs[0].Fix.Command, "istioctl proxy-status reviews-7d4b9c6f5-x2x9k.default") {
					t.Errorf("%+v / %s / %s", fs[0].Evidence, fs[0].Explanation, fs[0].Fix.Command)
				}
			}},
		{"not ready in its first seconds", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			st.Ready = false
			st.State.Running.StartedAt = metav1.NewTime(fxNow.Add(-10 * time.Second))
		}), nil, nil},
		{"crash-looping after OOM kills at its limit", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			c.Resources = fxLimits("", "256Mi")
			st.Ready, st.RestartCount = false, 7
			st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}}
			st.LastTerminationState = oomAt(2 * time.Minute)
		}), []string{"MESH1301", "MESH1302"}, func(t *testing.T, fs []Finding) {
			for _, f := range fs {
				switch f.Code {
				case "MESH1301":
					if !strings.Contains(f.Title, "7 restarts") || !strings.Contains(f.Fix.Command, "--previous") {
						t.Errorf("%q %q", f.Title, f.Fix.Command)
					}
				case "MESH1302":
					if f.Severity != SeverityError || !strings.Contains(f.Fix.YAML, `sidecar.istio.io/proxyMemoryLimit: "512Mi"`) || !strings.Contains(f.Title, "256Mi") {
						t.Errorf("%s %q %q", f.Severity, f.Title, f.Fix.YAML)
					}
				}
			}
		}},
		{"an OOM kill days ago, ready since", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			c.Resources = fxLimits("", "1Gi")
			st.RestartCount = 1
			st.LastTerminationState = oomAt(72 * time.Hour)
		}), []string{"MESH1302"}, func(t *testing.T, fs []Finding) {
			if fs[0].Severity != SeverityWarning {
				t.Errorf("severity %s", fs[0].Severity)
			}
		}},
		{"image cannot be pulled", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			st.Ready = false
			st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "docker.io/istio/proxyv2:1.99.0"`}}
		}), []string{"MESH1301"}, func(t *testing.T, fs []Finding) {
			if !strings.Contains(fs[0].Title, "cannot be pulled") {
				t.Errorf("%q", fs[0].Title)
			}
		}},
		{"half a core CPU limit", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			c.Resources = fxLimits("500m", "1Gi")
			p.Status.QOSClass = corev1.PodQOSBurstable
		}), []string{"MESH1401"}, func(t *testing.T, fs []Finding) {
			f := fs[0]
			if f.Severity != SeverityWarning || f.Evidence[0].Value != 500 || !strings.Contains(f.Explanation, "50 ms of CPU per 100 ms") || !strings.Contains(f.Fix.YAML, "proxyCPULimit") {
				t.Errorf("%s %+v %s", f.Severity, f.Evidence, f.Explanation)
			}
		}},
		{"1.5 cores is a note", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			c.Resources = fxLimits("1500m", "")
		}),
			[]string{"MESH1401"}, func(t *testing.T, fs []Finding) {
				if fs[0].Severity != SeverityInfo {
					t.Errorf("severity %s", fs[0].Severity)
				}
			}},
		{"two cores, as this project installs, is fine", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			c.Resources = fxLimits("2", "1Gi")
		}), nil, nil},
		{"native sidecar not ready", func() *Snapshot {
			s := fxMeshedPod(nil)
			always := corev1.ContainerRestartPolicyAlways
			s.Pod.Spec.Containers = s.Pod.Spec.Containers[:1]
			s.Pod.Spec.InitContainers = []corev1.Container{{Name: "istio-proxy", RestartPolicy: &always}}
			st := s.Pod.Status.ContainerStatuses[1]
			st.Ready = false
			s.Pod.Status.ContainerStatuses = s.Pod.Status.ContainerStatuses[:1]
			s.Pod.Status.InitContainerStatuses = []corev1.ContainerStatus{st}
			return s
		}(), []string{"MESH1301"}, func(t *testing.T, fs []Finding) {
			if fs[0].Evidence[0].Text != "1/2" {
				t.Errorf("ready %q", fs[0].Evidence[0].Text)
			}
		}},
		{"terminating pod: not ready is expected", fxMeshedPod(func(p *corev1.Pod, c *corev1.Container, st *corev1.ContainerStatus) {
			now := metav1.NewTime(fxNow)
			p.DeletionTimestamp = &now
			st.Ready = false
		}), nil, nil},
		{"pod without a sidecar: the rule stays silent", func() *Snapshot {
			s := fxMeshedPod(nil)
			s.Pod.Spec.Containers = s.Pod.Spec.Containers[:1]
			return s
		}(), nil, nil},
		{"healthy sidecar", fxMeshedPod(nil), nil, nil},
		{"no pod", &Snapshot{Now: fxNow}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := fxRun(t, SidecarRule{}, tc.snap)
			if got := fxCodes(fs); !reflect.DeepEqual(got, append([]string{}, tc.want...)) {
				t.Fatalf("codes %v, want %v: %+v", got, tc.want, fs)
			}
			if tc.check != nil {
				tc.check(t, fs)
			}
		})
	}
}
