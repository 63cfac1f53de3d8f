package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// InstallBinary holds `kubectl mesh install` and `uninstall`, which link Helm's SDK.
const InstallBinary = "kubectl-mesh-install"

// FindSibling finds a binary that ships with kubectl-mesh: beside the running executable (its
// real path, as krew links it), else on PATH.
func FindSibling(name string) (string, error) {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s was not found beside kubectl-mesh or on PATH: it ships with kubectl-mesh (krew and the release archives install both); with go install, also run go install github.com/kubectl-mesh/kubectl-mesh/cmd/%s@latest", name, name)
}

// RunSibling runs a binary that ships with kubectl-mesh with the same streams, and returns its
// exit status as an ExitError. An interrupt reaches it as an interrupt, so it can stop cleanly.
func RunSibling(ctx context.Context, name string, args []string, streams genericiooptions.IOStreams) error {
	path, err := FindSibling(name)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = streams.In, streams.Out, streams.ErrOut
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit):
		// It printed its own error; only the status is left to pass on.
		return &ExitError{Code: exit.ExitCode()}
	}
	return fmt.Errorf("running %s: %w", path, err)
}
