package testcluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// PIDsFile is the file in a detached cluster's state directory that lists the processes
// StartDetached (and RunDetached) started, one JSON object a line, in start order.
const PIDsFile = "pids"

// pidRecord is one line of PIDsFile. Args is the whole command line, so StopDetached
// signals a PID only while it still runs what was started: a PID the kernel has reused
// since is left alone.
type pidRecord struct {
	Name string   `json:"name"`
	PID  int      `json:"pid"`
	Args []string `json:"args"`
}

// DetachedProcess is a process recorded in a state directory.
type DetachedProcess struct {
	Name string
	PID  int
	// Args is the command line it was started with.
	Args []string
}

// Running reports whether the PID still runs the recorded command line. An exited
// process, a zombie (empty command line) and a reused PID all count as gone.
func (p DetachedProcess) Running() bool {
	return runsCommandLine(p.PID, p.Args)
}

// StartDetached starts a control plane like Start but for use outside a test: its
// processes run in sessions of their own and outlive the calling program, their PIDs are
// recorded in stateDir/pids, and the admin kubeconfig is stateDir/kubeconfig. Stop it
// with StopDetached(stateDir). It fails when stateDir already records a running
// process, and stops what it started when start-up fails, returning the end of the log
// of any process that exited.
func StartDetached(ctx context.Context, opts Options, stateDir string) (*Cluster, error) {
	binDir, err := BinDir()
	if err != nil {
		return nil, fmt.Errorf("control plane binaries: %w\n%s", err, buildHint)
	}
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	procs, err := DetachedProcesses(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		if p.Running() {
			return nil, fmt.Errorf("%s already runs %s (pid %d): stop it with StopDetached first", dir, p.Name, p.PID)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Records of processes that have all exited describe nothing to stop.
	if err := os.Remove(filepath.Join(dir, PIDsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	c := &Cluster{Dir: dir, BinDir: binDir, detached: true, procs: map[string]*process{}}
	if err := c.start(ctx, opts); err != nil {
		logs := c.exitedLogs()
		if stopErr := StopDetached(dir); stopErr != nil {
			err = fmt.Errorf("%w; stopping what started: %v", err, stopErr)
		}
		return nil, fmt.Errorf("control plane in %s: %w%s", dir, err, logs)
	}
	return c, nil
}

// RunDetached starts bin as one more process of a detached cluster: in a session of its
// own, its output in Dir/name.log, its PID recorded so StopDetached stops it (before the
// control plane, being started after it). Crashed reports it when it exits.
func (c *Cluster) RunDetached(name, bin string, env []string, args ...string) error {
	if !c.detached {
		return errors.New("RunDetached: the cluster was not started with StartDetached")
	}
	return c.runBin(bin, name, env, args...)
}

// Crashed returns an error naming a process of the cluster that has exited, with the end
// of its log; nil while all run. It only knows the processes this program started.
func (c *Cluster) Crashed() error {
	if err := c.crashed(); err != nil {
		return fmt.Errorf("%w%s", err, c.exitedLogs())
	}
	return nil
}

// exitedLogs returns the end of the log of every process that has exited, for errors
// outside a test, where no cleanup prints them.
func (c *Cluster) exitedLogs() string {
	var b strings.Builder
	for _, p := range c.procs {
		if p.exited() {
			fmt.Fprintf(&b, "\n--- last lines of %s (%s, %s) ---\n%s", p.name, p.state(), p.logPath, p.logTail(20))
		}
	}
	return b.String()
}

// StopDetached stops the processes recorded in stateDir/pids: SIGTERM, then SIGKILL for
// those still running after stopGrace. Only a PID whose command line is still the
// recorded one is signalled. It then removes the pids file; a state directory without
// one (never started, or already stopped) is not an error.
func StopDetached(stateDir string) error {
	recs, err := readPIDs(stateDir)
	if err != nil {
		return err
	}
	running := func() []pidRecord {
		var out []pidRecord
		for _, r := range recs {
			if r.running() {
				out = append(out, r)
			}
		}
		return out
	}
	signal := func(sig os.Signal) {
		live := running()
		slices.Reverse(live) // the last started (kwok, a replay server) first
		for _, r := range live {
			if p, err := os.FindProcess(r.PID); err == nil {
				_ = p.Signal(sig)
			}
		}
	}
	waitGone := func(d time.Duration) []pidRecord {
		deadline := time.Now().Add(d)
		for {
			live := running()
			if len(live) == 0 || time.Now().After(deadline) {
				return live
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	signal(syscall.SIGTERM)
	if len(waitGone(stopGrace)) > 0 {
		signal(os.Kill)
		if live := waitGone(5 * time.Second); len(live) > 0 {
			return fmt.Errorf("%s (pid %d) still runs after SIGKILL", live[0].Name, live[0].PID)
		}
	}
	if err := os.Remove(filepath.Join(stateDir, PIDsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// DetachedProcesses lists the processes recorded in stateDir/pids in start order, none
// when there is no such file.
func DetachedProcesses(stateDir string) ([]DetachedProcess, error) {
	recs, err := readPIDs(stateDir)
	if err != nil {
		return nil, err
	}
	out := make([]DetachedProcess, 0, len(recs))
	for _, r := range recs {
		out = append(out, DetachedProcess(r))
	}
	return out, nil
}

// recordPID appends a started process to dir/pids.
func recordPID(dir string, p *process) error {
	b, err := json.Marshal(pidRecord{Name: p.name, PID: p.cmd.Process.Pid, Args: p.cmd.Args})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, PIDsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readPIDs(dir string) ([]pidRecord, error) {
	f, err := os.Open(filepath.Join(dir, PIDsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []pidRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var r pidRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.PID <= 0 || len(r.Args) == 0 {
			return nil, fmt.Errorf("%s: unreadable line %q", f.Name(), sc.Text())
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

func (r pidRecord) running() bool { return DetachedProcess(r).Running() }
