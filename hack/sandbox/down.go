package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testcluster"
)

// down stops the replay process and the control plane by the PIDs up recorded, then
// removes the state directory. A sandbox that is not up is not an error.
func down(p paths, out io.Writer) error {
	procs, err := testcluster.DetachedProcesses(p.State)
	if err != nil {
		return err
	}
	running := 0
	for _, pr := range procs {
		if pr.Running() {
			running++
		}
	}
	if err := testcluster.StopDetached(p.State); err != nil {
		return err
	}
	if _, err := os.Stat(p.marker()); err == nil {
		if err := os.RemoveAll(p.State); err != nil {
			return err
		}
	}
	if running == 0 {
		fmt.Fprintln(out, "The sandbox is not up.")
		return nil
	}
	fmt.Fprintf(out, "The sandbox is down (%d processes stopped).\n", running)
	return nil
}
