package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// down stops the replay process and the control plane by the PIDs up recorded, then
// removes the state directory. A sandbox that is not up is not an error.
func down(p paths, out io.Writer) error {
	_, running, err := p.processes()
	if err != nil {
		return err
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

// processes lists the processes recorded in the state directory, in start order, and
// counts those still running.
func (p paths) processes() (procs []testcluster.DetachedProcess, running int, err error) {
	procs, err = testcluster.DetachedProcesses(p.State)
	if err != nil {
		return nil, 0, err
	}
	for _, pr := range procs {
		if pr.Running() {
			running++
		}
	}
	return procs, running, nil
}
