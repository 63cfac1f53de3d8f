package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// runner runs the examples with the built binaries, writes them into the doc and collects
// what did not go as declared.
type runner struct {
	// bin is kubectl-mesh, with kubectl-mesh-install beside it as the archives put it.
	bin string
	// dir is the commands' working directory.
	dir string
	// timeout bounds each run.
	timeout time.Duration
	doc     *doc
	// ran counts the examples run; mismatches collects what differed.
	ran        int
	mismatches []Mismatch
}

// run runs each example with env added to the environment (KUBECONFIG), writes it into the
// doc and checks it. It fails only when a command cannot be run at all or ctx ends: a
// command that exits otherwise than declared is a mismatch, and the others still run.
func (r *runner) run(ctx context.Context, env []string, examples ...Example) error {
	for _, ex := range examples {
		var o Outcome
		var err error
		if o.Text, err = r.exec(ctx, env, ex.Args); err != nil {
			return err
		}
		if len(ex.Top) > 0 {
			args := append(append([]string(nil), ex.Args...), "-o", "json")
			j, err := r.exec(ctx, env, args)
			if err != nil {
				return err
			}
			o.JSON = &j
		}
		r.doc.example(ex, o.Text)
		r.ran++
		r.mismatches = append(r.mismatches, check(ex, r.doc.command(ex.Args), o)...)
	}
	return nil
}

// exec runs kubectl-mesh ARGS once, without colour, 120 columns wide.
func (r *runner) exec(ctx context.Context, env, args []string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Dir = r.dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1", "COLUMNS=120"), env...)
	cmd.WaitDelay = 5 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	res := Result{Stdout: out.String(), Stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.Exit, res.TimedOut = -1, true
	case ctx.Err() != nil:
		return res, fmt.Errorf("kubectl mesh %s: %w", strings.Join(args, " "), ctx.Err())
	case errors.As(err, &exit):
		res.Exit = exit.ExitCode()
	case err != nil:
		return res, fmt.Errorf("running %s: %w", r.bin, err)
	}
	return res, nil
}

// binaries returns kubectl-mesh in binDir, checking that kubectl-mesh-install is beside it,
// or, when binDir is "", builds both into dir from the repository at root. The build is not
// stamped, so `kubectl mesh version` prints the same in every regenerated doc.
func binaries(ctx context.Context, root, binDir, dir string) (string, error) {
	if binDir == "" {
		// One go build for both, so they link in parallel; without symbol tables, as make
		// build does, which halves the link.
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w", "-o", dir+string(filepath.Separator), "./cmd/kubectl-mesh", "./cmd/kubectl-mesh-install")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %w\n%s", err, out)
		}
		binDir = dir
	}
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return "", err
	}
	for _, name := range []string{"kubectl-mesh", "kubectl-mesh-install"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return "", fmt.Errorf("-bin %s: %w (make build puts both binaries in bin/)", binDir, err)
		}
	}
	return filepath.Join(binDir, "kubectl-mesh"), nil
}
