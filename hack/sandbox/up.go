package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// serveName is the serve process's name in the pids file and its log's.
const serveName = "sandbox-serve"

// up starts the sandbox, or says it is up already. A sandbox left half-running (a
// process crashed or was killed) is stopped and started afresh.
func up(ctx context.Context, p paths, out io.Writer) error {
	procs, running, err := p.processes()
	if err != nil {
		return err
	}
	if running > 0 && running == len(procs) && procs[len(procs)-1].Name == serveName {
		fmt.Fprintf(out, "The sandbox is already up (state in %s).\n", p.State)
		return printHowTo(out, p, "")
	}
	if running > 0 {
		fmt.Fprintf(out, "The sandbox is only partly up (%d of %d processes run): restarting it.\n", running, len(procs))
		if err := testcluster.StopDetached(p.State); err != nil {
			return err
		}
	}
	if err := resetState(p); err != nil {
		return err
	}
	incidents, err := loadIncidents(p.Incidents)
	if err != nil {
		return err
	}

	begin := time.Now()
	fmt.Fprintln(out, "Starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)...")
	c, err := testcluster.StartDetached(ctx, testcluster.Options{
		// Namespaced rules named like each pod, applied once the replay servers listen.
		KwokCRDs: []string{"PortForward", "Logs", "Exec"},
	}, p.State)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Creating %d meshed pods in namespace %s from %s...\n", len(incidents), Namespace, p.Incidents)
	if err := populate(ctx, c, p, incidents); err != nil {
		if stopErr := testcluster.StopDetached(p.State); stopErr != nil {
			err = fmt.Errorf("%w; stopping the sandbox: %v", err, stopErr)
		}
		return fmt.Errorf("%w\nlogs of every process are in %s", err, p.State)
	}
	fmt.Fprintf(out, "The sandbox is up after %v.\n", time.Since(begin).Round(100*time.Millisecond))
	return printHowTo(out, p, c.BinDir)
}

// resetState empties the state directory of a stopped sandbox, refusing a directory the
// sandbox did not make, and marks it as the sandbox's.
func resetState(p paths) error {
	if entries, err := os.ReadDir(p.State); err == nil && len(entries) > 0 {
		if _, err := os.Stat(p.marker()); err != nil {
			return fmt.Errorf("%s is not empty and not a sandbox state directory: choose another with -state", p.State)
		}
		if err := os.RemoveAll(p.State); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.replayDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p.marker(), []byte("state of `go run ./hack/sandbox up`; `make sandbox-down` removes it\n"), 0o644)
}

// populate starts the replay process and creates what the live path reads: the demo
// namespace, the kwok rules that route each pod's admin port, logs and exec'd commands
// to its incident, a Service per app and the pods, Running.
func populate(ctx context.Context, c *testcluster.Cluster, p paths, incidents []incident) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := c.RunDetached(serveName, exe, nil, "serve", "-state", p.State, "-incidents", p.Incidents); err != nil {
		return err
	}
	replays, err := waitReplays(ctx, c, p)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{"istio-injection": "enabled"}}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("namespace %s: %w", Namespace, err)
	}
	var rules []string
	for _, in := range incidents {
		r, ok := replays[in.Name]
		if !ok {
			return fmt.Errorf("the replay process serves no %s", in.Name)
		}
		pod := in.Spec.Pod.Name
		rules = append(rules,
			testcluster.PortForwardRule(Namespace, pod, adminPort, r.Admin),
			testcluster.LogsRule(Namespace, pod, []string{sidecarContainer}, r.LogsFile))
		if r.NodeDir != "" {
			rules = append(rules, testcluster.ExecRule(Namespace, pod, []string{sidecarContainer}, r.NodeDir))
		}
	}
	if err := c.Apply(ctx, rules...); err != nil {
		return fmt.Errorf("kwok rules: %w", err)
	}
	// Istio's CRDs, so the live path lists PeerAuthentications, DestinationRules and
	// VirtualServices as on a mesh instead of warning that Istio is not installed.
	crds, err := testcluster.IstioCRDs()
	if err != nil {
		return err
	}
	if err := c.Apply(ctx, crds); err != nil {
		return fmt.Errorf("Istio's CRDs: %w", err)
	}
	for _, svc := range demoServices(incidents) {
		if _, err := c.Client.CoreV1().Services(Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
	}
	for _, in := range incidents {
		in.Spec.Pod.Spec.NodeName = c.Nodes[0]
		if err := createPod(ctx, c, in.Spec.Pod); err != nil {
			return err
		}
	}
	for _, in := range incidents {
		if err := waitRunning(ctx, c, in); err != nil {
			return err
		}
	}
	return populateAmbient(ctx, c, p, replays)
}

// waitReplays waits for the serve process's servers.json.
func waitReplays(ctx context.Context, c *testcluster.Cluster, p paths) (map[string]replay, error) {
	var replays map[string]replay
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		if err := c.Crashed(); err != nil {
			return false, err
		}
		var err error
		replays, err = readServers(p)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the replay servers (%s): %w", filepath.Join(p.State, serveName+".log"), err)
	}
	return replays, nil
}

// createPod creates a demo pod, retrying while the namespace's default ServiceAccount,
// which the controller-manager makes, does not exist yet.
func createPod(ctx context.Context, c *testcluster.Cluster, pod *corev1.Pod) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = c.Client.CoreV1().Pods(Namespace).Create(ctx, pod, metav1.CreateOptions{})
		return last == nil || apierrors.IsAlreadyExists(last), nil
	})
	if err != nil {
		return fmt.Errorf("pod %s: %w (last error: %v)", pod.Name, err, last)
	}
	return nil
}

// waitRunning waits until kwok runs the pod and then, for an incident whose captured pod
// was not healthy (a sidecar not ready, restarts), writes the captured container
// statuses, so the live pod shows what the capture showed.
func waitRunning(ctx context.Context, c *testcluster.Cluster, in incident) error {
	name := in.Spec.Pod.Name
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := c.Client.CoreV1().Pods(Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || got.Status.Phase != corev1.PodRunning {
			return false, err
		}
		if st := in.Spec.Status; st != nil {
			got.Status.ContainerStatuses, got.Status.InitContainerStatuses = st.ContainerStatuses, st.InitContainerStatuses
			got.Status.Conditions = st.Conditions
			_, err = c.Client.CoreV1().Pods(Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{})
			return err == nil, nil // a conflict with kwok's own update: try again
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("pod %s/%s not Running: %w", Namespace, name, err)
	}
	return nil
}

// printHowTo prints what to export and run. binDir is the control plane's (kubectl);
// found again when empty.
func printHowTo(out io.Writer, p paths, binDir string) error {
	if binDir == "" {
		var err error
		if binDir, err = testcluster.BinDir(); err != nil {
			return err
		}
	}
	path := binDir
	if root, err := testcluster.RepoRoot(); err == nil {
		path = filepath.Join(root, "bin") + string(os.PathListSeparator) + path // kubectl-mesh from make build
	}
	fmt.Fprintf(out, `
  export KUBECONFIG=%s
  export PATH=%s:$PATH   # kubectl-mesh (make build) and kubectl

  kubectl get pods -n %[3]s
  kubectl mesh why-slow -n %[3]s
  kubectl mesh why-slow pod/productpage-timeout -n %[3]s
  kubectl mesh why-slow -n %[5]s           # ambient pods: no sidecar, their node's ztunnel

Each pod of %[3]s replays the incident folder its %[4]s label names; the ztunnel of %[5]s's
node prints real ztunnel lines of the real-world corpus about its pods. Stop it with: make sandbox-down
`, p.kubeconfig(), path, Namespace, IncidentLabel, AmbientNamespace)
	return nil
}
