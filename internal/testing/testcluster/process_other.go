//go:build !linux

package testcluster

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr has no parent-death signal outside Linux; the cleanups still stop every
// process, but one the test binary leaves behind when it is killed stays running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}

// detachedProcAttr has no portable way to start a new session outside Linux; the
// processes still outlive their starter, which sets no parent-death signal.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}

// runsCommandLine compares what ps prints for pid with args joined by spaces: there is no
// /proc to read the exact command line from.
func runsCommandLine(pid int, args []string) bool {
	out, err := exec.Command("ps", "-o", "args=", "-p", strconv.Itoa(pid)).Output()
	return err == nil && strings.TrimSpace(string(out)) == strings.Join(args, " ")
}
