package testcluster

import (
	"bytes"
	"os"
	"slices"
	"strconv"
	"syscall"
)

// sysProcAttr makes the kernel kill a control plane process when the test binary dies
// without running its cleanups (a panic, `go test -timeout`, SIGKILL), so no etcd or
// kube-apiserver outlives the test that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// detachedProcAttr starts a process in a session of its own, so it outlives the program
// that started it and a Ctrl-C or hang-up in that program's terminal does not reach it.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// runsCommandLine reports whether pid runs exactly args, from /proc/PID/cmdline (empty
// for a zombie, missing for an exited process).
func runsCommandLine(pid int, args []string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return false
	}
	got := bytes.Split(bytes.TrimSuffix(b, []byte{0}), []byte{0})
	return slices.EqualFunc(got, args, func(g []byte, a string) bool { return string(g) == a })
}
