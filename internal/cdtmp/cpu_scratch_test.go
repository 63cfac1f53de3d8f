package envoyadmin

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

func threadCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(0, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestScratchCPU(t *testing.T) {
	data := makeBenchDump(t, 5000)
	runtime.LockOSThread()
	n := 30
	c0 := threadCPU()
	for range n {
		dumpValueEnd(data, 0)
	}
	t.Logf("scan: %v cpu/op", (threadCPU()-c0)/time.Duration(n))
	runtime.GC()
	p0, w0 := procCPU(), time.Now()
	for range n {
		ParseConfigDump(data)
	}
	t.Logf("parse: %v process cpu/op, %v wall/op", (procCPU()-p0)/time.Duration(n), time.Since(w0)/time.Duration(n))
	c0 = threadCPU()
	for range n {
		dumpCollect(data)
	}
	t.Logf("collect: %v cpu/op", (threadCPU()-c0)/time.Duration(n))
}
