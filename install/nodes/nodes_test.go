package nodes

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// incident reads the two node samples of the bundled node-cpu-steal incident: a real node's
// counters with its steal scaled up (testdata/incidents/node-cpu-steal/README.md).
func incident(t *testing.T) [2][]byte {
	t.Helper()
	var out [2][]byte
	for i, name := range []string{"node.txt", "node-2.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "incidents", "node-cpu-steal", name))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// kubelet makes the fake clientset start every pod it is given in the given phase, or leave
// it waiting with the given reason.
func kubelet(c *fake.Clientset, phase corev1.PodPhase, waiting string) {
	c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		pod.Status.Phase = phase
		if waiting != "" {
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "probe", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: waiting, Message: "back-off pulling image"}}}}
		}
		return false, nil, nil // the tracker stores it
	})
}

func node(name string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}} }

func TestProbeReadsEachNodeAndCleansUp(t *testing.T) {
	samples := incident(t)
	c := fake.NewClientset(node("b"), node("a"))
	kubelet(c, corev1.PodRunning, "")
	var mu sync.Mutex
	calls := map[string]int{}
	var progress bytes.Buffer
	reports, err := Probe(context.Background(), ProbeOptions{
		Client: c, Namespace: "default", Window: time.Millisecond, Progress: &syncWriter{w: &progress},
		Exec: func(_ context.Context, ns, pod string, cmd []string) ([]byte, []byte, error) {
			mu.Lock()
			defer mu.Unlock()
			if ns != "default" || strings.Join(cmd, " ") != strings.Join(nodeinfo.ProbeCommand("/"), " ") {
				t.Errorf("exec %s/%s %q", ns, pod, cmd)
			}
			calls[pod]++
			return samples[calls[pod]-1], nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[0].Node != "a" || reports[1].Node != "b" {
		t.Fatalf("reports %+v; want nodes a and b in order", reports)
	}
	for _, r := range reports {
		if r.Error != "" || r.StealPct == nil || *r.StealPct < 35 || *r.StealPct > 41 {
			t.Errorf("%s: error %q, steal %v; want the incident's 38%%", r.Node, r.Error, r.StealPct)
		}
		if got := r.Shortfalls(); len(got) == 0 || !strings.Contains(strings.Join(got, ";"), "stolen by the hypervisor") {
			t.Errorf("%s: shortfalls %q; want the steal", r.Node, got)
		}
	}
	left, _ := c.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: ProbeLabel + "=" + ProbeValue})
	if n := len(left.Items); n != 0 {
		t.Errorf("%d probe pods left behind", n)
	}
	if len(calls) != 2 {
		t.Errorf("exec'd into %d pods, want one per node", len(calls))
	}
}

func TestProbeSaysWhyANodeWasNotProbed(t *testing.T) {
	exec := func(context.Context, string, string, []string) ([]byte, []byte, error) {
		return nil, nil, errors.New("unexpected exec")
	}
	t.Run("image does not pull", func(t *testing.T) {
		c := fake.NewClientset()
		kubelet(c, corev1.PodPending, "ImagePullBackOff")
		reports, err := Probe(context.Background(), ProbeOptions{Client: c, Namespace: "default", Nodes: []string{"a"}, Exec: exec})
		if err != nil || len(reports) != 1 || !strings.Contains(reports[0].Error, "ImagePullBackOff") || !strings.Contains(reports[0].Error, "--image") {
			t.Errorf("reports %+v, err %v; want the pull failure and --image", reports, err)
		}
	})
	t.Run("pods forbidden", func(t *testing.T) {
		c := fake.NewClientset()
		c.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC"))
		})
		reports, err := Probe(context.Background(), ProbeOptions{Client: c, Namespace: "ops", Nodes: []string{"a"}, Exec: exec})
		if err != nil || len(reports) != 1 || !strings.Contains(reports[0].Error, "needs create on pods in namespace ops") {
			t.Errorf("reports %+v, err %v; want the permission named", reports, err)
		}
	})
	t.Run("nodes forbidden", func(t *testing.T) {
		c := fake.NewClientset()
		c.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("RBAC"))
		})
		if _, err := Probe(context.Background(), ProbeOptions{Client: c, Exec: exec}); err == nil || !strings.Contains(err.Error(), "name the nodes to probe") {
			t.Errorf("err = %v; want the way around it", err)
		}
	})
}

func TestShortfallsOfATunedNode(t *testing.T) {
	steal := 2.0
	tuned := Report{Node: "a", StealPct: &steal, Disks: []DiskReading{{Name: "nvme0n1", AwaitMs: 0.4, IOs: 100}}}
	for _, s := range nodeinfo.SeedTuning {
		tuned.Sysctls = append(tuned.Sysctls, SysctlReading{Name: s.Name, Current: s.Value, Recommended: s.Value, OK: true})
	}
	if got := Shortfalls([]Report{tuned}); len(got) != 0 {
		t.Errorf("a tuned node falls short: %q", got)
	}
	slow := tuned
	slow.Sysctls = append([]SysctlReading{{Name: nodeinfo.SeedTuning[0].Name, Current: "1", Recommended: nodeinfo.SeedTuning[0].Value}}, tuned.Sysctls[1:]...)
	slow.Disks = []DiskReading{{Name: "xvda", AwaitMs: 80, IOs: 10}}
	got := Shortfalls([]Report{slow})
	if len(got) != 2 || slow.SysctlsBelow() != 1 || !strings.Contains(got[1], "disk xvda takes 80 ms") {
		t.Errorf("shortfalls %q, below %d; want the sysctl and the disk", got, slow.SysctlsBelow())
	}
}

func TestTuningDaemonSet(t *testing.T) {
	var out bytes.Buffer
	r, err := Tune(context.Background(), TuneOptions{Namespace: "kube-system", Image: "busybox:1.36", DryRun: apply.DryRunClient, Manifests: &out})
	if err != nil {
		t.Fatal(err)
	}
	if r.Action == apply.Created || r.Action == apply.Configured {
		t.Errorf("a client dry run %s the DaemonSet", r.Action)
	}
	var ds struct {
		Metadata struct{ Name, Namespace string }
		Spec     struct {
			Template struct {
				Spec struct {
					HostNetwork bool `json:"hostNetwork"`
					Containers  []struct {
						Command         []string
						SecurityContext struct{ Privileged bool } `json:"securityContext"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(out.String(), "---\n")), &ds); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	spec := ds.Spec.Template.Spec
	if ds.Metadata.Name != TuningDaemonSetName || ds.Metadata.Namespace != "kube-system" || !spec.HostNetwork || len(spec.Containers) != 1 || !spec.Containers[0].SecurityContext.Privileged {
		t.Fatalf("DaemonSet %+v", ds)
	}
	script := spec.Containers[0].Command[2]
	for _, s := range nodeinfo.SeedTuning {
		if !strings.Contains(script, "sysctl -w "+s.Name+"=") {
			t.Errorf("the DaemonSet does not set %s: %s", s.Name, script)
		}
	}
}

// syncWriter serialises the probes' progress lines, written from one goroutine per node.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
