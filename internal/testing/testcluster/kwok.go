package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	// FakeNodeAnnotation marks the nodes kwok manages; kwok ignores all others.
	FakeNodeAnnotation = "kwok.x-k8s.io/node"
	kwokAPIVersion     = "kwok.x-k8s.io/v1alpha1"
)

// startKwok starts kwok as the controller of the fake nodes and the kubelet API server
// for them: the API server dials the node's InternalIP (127.0.0.1) at its kubelet port,
// which kwok sets from --node-port, for port-forward, exec and logs.
func (c *Cluster) startKwok(ctx context.Context, opts Options) error {
	if len(opts.KwokCRDs) > 0 {
		if err := c.applyKwokCRDs(ctx, opts.KwokCRDs); err != nil {
			return err
		}
	}
	port := strconv.Itoa(c.KwokPort)
	args := []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + FakeNodeAnnotation + "=fake",
		"--node-ip=127.0.0.1", "--node-port=" + port, "--server-address=127.0.0.1:" + port,
	}
	if len(opts.KwokCRDs) > 0 {
		args = append(args, "--enable-crds="+strings.Join(opts.KwokCRDs, ","))
	}
	if len(opts.KwokRules) > 0 {
		path := filepath.Join(c.Dir, "kwok-rules.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(opts.KwokRules, "\n---\n")), 0o644); err != nil {
			return err
		}
		args = append(args, "--config="+path)
	}
	shims, err := c.writeExecShims()
	if err != nil {
		return err
	}
	// kwok also loads ~/.kwok/kwok.yaml when it exists: a private HOME keeps a
	// developer's own kwok set-up out of the tests.
	return c.run("kwok", []string{"HOME=" + c.Dir, "PATH=" + shims + string(os.PathListSeparator) + os.Getenv("PATH")}, args...)
}

// tailShim stands first on kwok's PATH. kwok runs an exec'd command on this machine, in the
// ExecRule's workDir; when that folder is a node replay (it has a proc folder), the shim
// turns the node probe's absolute /proc and /sys paths into the replay's, so the probe runs
// unchanged and never reads this machine's own counters. Elsewhere it is tail.
const tailShim = `#!/bin/sh
if [ -d ./proc ]; then
  for a in "$@"; do
    shift
    case "$a" in /proc/*|/sys/*) a=".$a" ;; esac
    set -- "$@" "$a"
  done
fi
exec %s "$@"
`

// writeExecShims writes the shims for kwok's exec and returns their folder.
func (c *Cluster) writeExecShims() (string, error) {
	tail, err := exec.LookPath("tail")
	if err != nil {
		return "", fmt.Errorf("kwok's exec shim: %w", err)
	}
	dir := filepath.Join(c.Dir, "kwok-exec-path")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "tail"), []byte(fmt.Sprintf(tailShim, tail)), 0o755)
}

// applyKwokCRDs applies the CRDs of the kwok kinds to serve from the API server, from
// the copy build.sh made of the pinned kwok module's kustomize/crd/bases.
func (c *Cluster) applyKwokCRDs(ctx context.Context, kinds []string) error {
	for _, kind := range kinds {
		path := filepath.Join(crdDir(c.BinDir), "kwok.x-k8s.io_"+crdPlural(kind)+".yaml")
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("CRD of kwok kind %q: %w", kind, err)
		}
		if err := c.apply(ctx, string(b)); err != nil {
			return fmt.Errorf("CRD of kwok kind %q: %w", kind, err)
		}
	}
	return nil
}

// crdPlural is the resource name of a kwok kind, as its CRD file is named:
// portforwards for PortForward, logs for Logs, attaches for Attach.
func crdPlural(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"):
		return k
	case strings.HasSuffix(k, "ch"):
		return k + "es"
	}
	return k + "s"
}

// createNodes registers the fake nodes. kwok fills in their status (Ready, addresses,
// kubelet port) once it sees the annotation; the status given here only makes them
// schedulable from the first moment.
func (c *Cluster) createNodes(ctx context.Context, n int) error {
	for i := range n {
		name := "kwok-node-" + strconv.Itoa(i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Annotations: map[string]string{FakeNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"type": "kwok",
				},
			},
			Status: corev1.NodeStatus{
				Capacity:    nodeResources(),
				Allocatable: nodeResources(),
				Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
				DaemonEndpoints: corev1.NodeDaemonEndpoints{
					KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(c.KwokPort)},
				},
			},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
		c.Nodes = append(c.Nodes, name)
	}
	return nil
}

// nodeResources is big enough that the scheduler never refuses a test pod for room.
func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("1000"),
	}
}

// waitReady waits for the API server's /readyz, which needs etcd too.
func (c *Cluster) waitReady(ctx context.Context) error {
	rc := c.Client.CoreV1().RESTClient()
	return c.poll(ctx, "kube-apiserver /readyz", 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		err := rc.Get().AbsPath("/readyz").Do(ctx).Error()
		return err == nil, err
	})
}

// waitUsable waits until pods can be created and run: without the `default`
// ServiceAccount (made by the controller-manager) the API server refuses pods, and kwok
// starts pods only on nodes it has marked Ready.
func (c *Cluster) waitUsable(ctx context.Context) error {
	err := c.poll(ctx, "ServiceAccount default/default", 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	for _, name := range c.Nodes {
		err := c.poll(ctx, "node "+name+" Ready (kwok)", 50*time.Millisecond, func(ctx context.Context) (bool, error) {
			node, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// PortForwardRule returns a kwok rule that forwards podPort of pods to target
// ("host:port", a local server). With namespace "" it is a ClusterPortForward for every
// pod (name is then only the rule's name); otherwise a PortForward for pod name in
// namespace, which overrides the cluster rule for that pod.
func PortForwardRule(namespace, name string, podPort int32, target string) string {
	return PortsForwardRule(namespace, name, []int32{podPort}, target)
}

// PortsForwardRule is PortForwardRule for several ports of the pods, all to one target.
func PortsForwardRule(namespace, name string, podPorts []int32, target string) string {
	host, port, ok := strings.Cut(target, ":")
	p, err := strconv.Atoi(port)
	if !ok || err != nil {
		panic(fmt.Sprintf("testcluster.PortForwardRule: target %q is not host:port", target))
	}
	return rule("PortForward", namespace, name, map[string]any{
		"forwards": []any{map[string]any{
			"ports":  podPorts,
			"target": map[string]any{"address": host, "port": p},
		}},
	})
}

// ExecRule returns a kwok rule that runs commands exec'd into the given containers of
// pods as local processes in workDir (so `cat proc/stat` reads workDir/proc/stat, and the
// node probe's `tail /proc/stat` does too when workDir has a proc folder: see tailShim).
// Namespace "" gives a ClusterExec, otherwise an Exec for pod name.
func ExecRule(namespace, name string, containers []string, workDir string) string {
	return rule("Exec", namespace, name, map[string]any{
		"execs": []any{map[string]any{"containers": containers, "local": map[string]any{"workDir": workDir}}},
	})
}

// LogsRule returns a kwok rule that serves the logs of the given containers from
// logsFile, which must hold CRI-format lines (see CRILog). Namespace "" gives a
// ClusterLogs, otherwise a Logs for pod name.
func LogsRule(namespace, name string, containers []string, logsFile string) string {
	return rule("Logs", namespace, name, map[string]any{
		"logs": []any{map[string]any{"containers": containers, "logsFile": logsFile}},
	})
}

func rule(kind, namespace, name string, spec map[string]any) string {
	meta := map[string]any{"name": name}
	if namespace == "" {
		kind = "Cluster" + kind
	} else {
		meta["namespace"] = namespace
	}
	b, err := yaml.Marshal(map[string]any{"apiVersion": kwokAPIVersion, "kind": kind, "metadata": meta, "spec": spec})
	if err != nil {
		panic(err) // only maps of strings and numbers: cannot fail
	}
	return string(b)
}

// CRILog formats lines as a container runtime writes them to a log file, which is
// what kwok's Logs rules serve: "<RFC3339Nano time> stdout F <line>", one millisecond
// apart from a fixed instant so golden output is stable.
func CRILog(lines ...string) string {
	var b strings.Builder
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, l := range lines {
		fmt.Fprintf(&b, "%s stdout F %s\n", t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), l)
	}
	return b.String()
}
