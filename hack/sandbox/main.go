// Command sandbox runs the live path of `kubectl mesh` without a real cluster: `up` starts
// the test control plane (internal/testing/testcluster) detached, with a namespace `demo` holding
// one meshed pod per incident folder of testdata/incidents, whose sidecar admin APIs,
// node files and logs are replayed from the folder; `down` stops it. `make sandbox` and
// `make sandbox-down` run it.
//
//	go run ./hack/sandbox up     # prints the KUBECONFIG to export
//	go run ./hack/sandbox down
//
// `serve` is the replay process `up` starts detached; it is not meant to be run by hand.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// Namespace is where the demo pods run.
const Namespace = "demo"

// paths say where the sandbox keeps its state and what it replays.
type paths struct {
	// State holds the control plane (kubeconfig, certs, etcd, logs, pids) and the replay
	// files; .cache/sandbox by default.
	State string
	// Incidents holds the incident folders, one pod each; testdata/incidents by default.
	Incidents string
}

func (p paths) kubeconfig() string  { return filepath.Join(p.State, "kubeconfig") }
func (p paths) replayDir() string   { return filepath.Join(p.State, "replay") }
func (p paths) serversFile() string { return filepath.Join(p.replayDir(), "servers.json") }

// marker is a file up writes into the state directory, so down and a restarting up only
// ever delete a directory the sandbox made.
func (p paths) marker() string { return filepath.Join(p.State, "sandbox-state") }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: sandbox up|down [-state DIR] [-incidents DIR]

  up     start the control plane and the demo pods (idempotent)
  down   stop everything up started (idempotent)
`

// run is main without the exit, so the test can call it in a re-executed test binary.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("sandbox "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p paths
	fs.StringVar(&p.State, "state", "", "state directory (default .cache/sandbox in the repository)")
	fs.StringVar(&p.Incidents, "incidents", "", "incident folders to replay (default testdata/incidents)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if err := p.complete(); err != nil {
		fmt.Fprintf(stderr, "sandbox: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch verb {
	case "up":
		err = up(ctx, p, stdout)
	case "down":
		err = down(p, stdout)
	case "serve":
		err = serve(ctx, p)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sandbox %s: %v\n", verb, err)
		return 1
	}
	return 0
}

// complete fills in the defaults from the repository root and makes the paths absolute:
// the detached processes and the kwok rules must not depend on a working directory.
func (p *paths) complete() error {
	if p.State == "" || p.Incidents == "" {
		root, err := testcluster.RepoRoot()
		if err != nil {
			return err
		}
		if p.State == "" {
			p.State = filepath.Join(root, ".cache", "sandbox")
		}
		if p.Incidents == "" {
			p.Incidents = filepath.Join(root, "testdata", "incidents")
		}
	}
	var err error
	if p.State, err = filepath.Abs(p.State); err != nil {
		return err
	}
	p.Incidents, err = filepath.Abs(p.Incidents)
	return err
}
