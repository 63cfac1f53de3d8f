//go:build !linux

package testcluster

import "syscall"

// sysProcAttr has no parent-death signal outside Linux; the cleanups still stop every
// process, but one the test binary leaves behind when it is killed stays running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
