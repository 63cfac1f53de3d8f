package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestDetached starts a control plane that is not tied to the test, reaches it through
// the kubeconfig it wrote alone, and stops it by the PIDs it recorded.
func TestDetached(t *testing.T) {
	RequireBinDir(t)
	dir := t.TempDir()
	// Registered after TempDir, so it runs first: nothing may outlive a failed test.
	t.Cleanup(func() {
		if err := StopDetached(dir); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartDetached(ctx, Options{KwokCRDs: []string{"PortForward"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubeconfig != filepath.Join(dir, "kubeconfig") {
		t.Errorf("kubeconfig at %s, want %s/kubeconfig", c.Kubeconfig, dir)
	}
	if _, err := StartDetached(ctx, Options{}, dir); err == nil {
		t.Error("a second StartDetached in the same directory succeeded, want an error")
	}

	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes through the written kubeconfig: %v, %v", nodes, err)
	}

	procs, err := DetachedProcesses(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
	if len(procs) != len(want) {
		t.Fatalf("recorded %v, want %v", procs, want)
	}
	for i, p := range procs {
		if p.Name != want[i] || !p.Running() {
			t.Errorf("process %d = %+v, want %s running", i, p, want[i])
		}
		if runtime.GOOS == "linux" {
			if sid, _ := getsid(p.PID); sid != p.PID {
				t.Errorf("%s (pid %d) is in session %d, want a session of its own", p.Name, p.PID, sid)
			}
		}
	}

	if err := StopDetached(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if p.Running() {
			t.Errorf("%s (pid %d) still runs after StopDetached", p.Name, p.PID)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, PIDsFile)); !os.IsNotExist(err) {
		t.Errorf("pids file after StopDetached: %v, want it removed", err)
	}
	if err := StopDetached(dir); err != nil {
		t.Errorf("StopDetached when stopped: %v, want nil", err)
	}
}

// TestStopDetachedChecksCommandLine records a PID with a command line it does not run,
// as when the kernel has reused the PID: StopDetached must leave that process alone.
func TestStopDetachedChecksCommandLine(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no sleep(1)")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })

	dir := t.TempDir()
	recs := []pidRecord{
		{Name: "other", PID: cmd.Process.Pid, Args: []string{"/not/what/runs", "--flag"}},
	}
	f, err := os.Create(filepath.Join(dir, PIDsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := json.NewEncoder(f).Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	procs, err := DetachedProcesses(dir)
	if err != nil || len(procs) != 1 || procs[0].Running() {
		t.Errorf("DetachedProcesses = %+v, %v; want one record, not running", procs, err)
	}
	if err := StopDetached(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		t.Error("StopDetached killed a process whose command line differs from the recorded one")
	case <-time.After(200 * time.Millisecond):
	}
	if !runsCommandLine(cmd.Process.Pid, cmd.Args) {
		t.Errorf("runsCommandLine(%d, %q) = false for the running sleep", cmd.Process.Pid, cmd.Args)
	}
}

// getsid reads the session ID of pid from /proc/PID/stat (the field after the parent,
// process group: "pid (comm) state ppid pgrp session ...").
func getsid(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 4 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return strconv.Atoi(fields[3])
}
