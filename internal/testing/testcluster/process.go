package testcluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is one control plane program the harness started and must stop.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // exit status, valid once done is closed
}

// stopGrace is how long a process gets to exit after SIGTERM before SIGKILL. The
// cluster's state is thrown away, so there is nothing to flush: the grace only lets
// well-behaved programs close their listeners.
const stopGrace = 3 * time.Second

// startProcess runs bin with args and the process attributes attr (sysProcAttr for a
// test's processes, detachedProcAttr for StartDetached's), its output in a log file in
// logDir. The caller decides how the process is stopped: stopOnCleanup or recordPID.
func startProcess(logDir, bin, name string, env []string, attr *syscall.SysProcAttr, args ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	// Never the starter's stdout: a detached process holding `make`'s or a test's pipe
	// open would keep its reader waiting for EOF until the process is stopped.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = attr
	fmt.Fprintf(logFile, "+ %s %s\n", bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// stopOnCleanup registers a cleanup that stops the process by PID (also when the test
// fails or calls t.FailNow) and, if the test failed, prints the end of its log.
func (p *process) stopOnCleanup(t testing.TB) {
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- last lines of %s (pid %d, %s) ---\n%s", p.name, p.cmd.Process.Pid, p.state(), p.logTail(40))
		}
	})
}

// stop sends SIGTERM to the process's PID, then SIGKILL after stopGrace, and waits.
func (p *process) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// state describes how the process ended, for failure messages.
func (p *process) state() string {
	if !p.exited() {
		return "running"
	}
	if p.err != nil {
		return "exited: " + p.err.Error()
	}
	return "exited: status 0"
}

// exitError reports a process that died while the harness waited for something. The
// end of its log, with the program's own message (a bad flag, a port in use), is
// printed by the cleanup because the test has failed.
func (p *process) exitError() error {
	if !p.exited() {
		return nil
	}
	return fmt.Errorf("%s %s (its log follows)", p.name, p.state())
}

// logTail returns the last n lines of the process's log.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
