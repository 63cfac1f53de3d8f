package testcluster

import "syscall"

// sysProcAttr makes the kernel kill a control plane process when the test binary dies
// without running its cleanups (a panic, `go test -timeout`, SIGKILL), so no etcd or
// kube-apiserver outlives the test that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
