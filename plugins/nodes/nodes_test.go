package nodes

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
	"github.com/kubectl-mesh/kubectl-mesh/internal/cli"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/nodereplay"
	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

func run(ctx context.Context, kubeconfig string, args ...string) (string, string, error) {
	flags := genericclioptions.NewConfigFlags(true)
	flags.KubeConfig = &kubeconfig
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	cmd := NewCmd(flags, streams)
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// TestNodes probes two kwok nodes through real probe pods whose exec kwok runs in a replay of
// the node-cpu-steal incident's /proc, then applies the tuning DaemonSet, twice.
func TestNodes(t *testing.T) {
	work := t.TempDir()
	r, err := nodereplay.Start(context.Background(), "../../testdata/incidents/node-cpu-steal", work)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	c := testcluster.Start(t, testcluster.Options{Nodes: 2, KwokRules: []string{testcluster.ExecRule("", "probe", []string{"probe"}, work)}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stdout, stderr, err := run(ctx, c.Kubeconfig, "-o", "json", "--window", "1s")
	if cli.Code(err) != cli.ExitFindings {
		t.Fatalf("nodes: %v, want exit 1 for the stolen CPU\nstderr:\n%s", err, stderr)
	}
	var reports []nodes.Report
	if err := json.Unmarshal([]byte(stdout), &reports); err != nil || len(reports) != 2 {
		t.Fatalf("reports (%v):\n%s", err, stdout)
	}
	for _, rep := range reports {
		if rep.Error != "" {
			t.Fatalf("%s: %s", rep.Node, rep.Error)
		}
		if rep.StealPct == nil || *rep.StealPct < 35 || *rep.StealPct > 41 {
			t.Errorf("%s: steal %v, want the incident's 38%%", rep.Node, rep.StealPct)
		}
		if len(rep.Sysctls) < 6 {
			t.Errorf("%s: sysctls %+v", rep.Node, rep.Sysctls)
		}
	}
	if !strings.Contains(stderr, "probing node kwok-node-0") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	left, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: nodes.ProbeLabel + "=" + nodes.ProbeValue})
	if err != nil || len(left.Items) != 0 {
		t.Errorf("probe pods left behind: %d (%v)", len(left.Items), err)
	}

	text, _, _ := run(ctx, c.Kubeconfig, "kwok-node-1", "--window", "1s")
	if !strings.Contains(text, "kwok-node-1") || strings.Contains(text, "kwok-node-0") || !strings.Contains(text, "of its CPU time is stolen") {
		t.Errorf("one node's table:\n%s", text)
	}

	// --apply needs --yes; --dry-run prints; --yes applies, and a second run changes nothing.
	if _, _, err := run(ctx, c.Kubeconfig, "--apply"); cli.Code(err) != cli.ExitUsage || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("--apply without --yes: %v", err)
	}
	printed, _, err := run(ctx, c.Kubeconfig, "--apply", "--dry-run")
	if err != nil || !strings.Contains(printed, "privileged: true") || !strings.Contains(printed, `sysctl -w net.ipv4.tcp_tw_reuse="1"`) {
		t.Errorf("--apply --dry-run: %v\n%q", err, printed)
	}
	if _, err := c.Client.AppsV1().DaemonSets("default").Get(ctx, nodes.TuningDaemonSetName, metav1.GetOptions{}); err == nil {
		t.Error("--dry-run created the DaemonSet")
	}
	for _, want := range []string{"created", "unchanged"} {
		out, _, err := run(ctx, c.Kubeconfig, "--apply", "--yes")
		if err != nil || !strings.Contains(out, "DaemonSet default/"+nodes.TuningDaemonSetName+" "+want) {
			t.Errorf("--apply --yes: %v, want %s:\n%s", err, want, out)
		}
	}
}
