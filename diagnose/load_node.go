package diagnose

import (
	"fmt"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Node evidence file names: the probe's output (tail over /proc, cgroup and sysctl files, see
// nodeinfo.ProbeCommand) at the two samples, and the kubelet's cAdvisor lines of the pod.
const (
	FileNode      = evidence.Node
	FileNode2     = evidence.Node2
	FileCadvisor  = evidence.Cadvisor
	FileCadvisor2 = evidence.Cadvisor2
)

// node reads the node samples and the cAdvisor samples. A second sample without a first is read
// as the only one; the window is meta.json's node times, else the stats window.
func (l *loader) node() {
	first, second := l.nodeSample(FileNode), l.nodeSample(FileNode2)
	switch {
	case first != nil:
		l.s.Node, l.s.NodeFile = first, FileNode
		l.s.Node2 = second
	case second != nil:
		l.s.Node, l.s.NodeFile = second, FileNode2
	}
	l.s.NodeWindow = l.nodeWindow()
	if l.s.Node2 != nil && l.s.NodeWindow <= 0 {
		l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s has no nodeTimes, windowSeconds or captureTimes: %s is read as a single sample", FileMeta, FileNode2))
	}

	c1, c2 := l.cadvisor(FileCadvisor), l.cadvisor(FileCadvisor2)
	if c1 == nil {
		c1, c2 = c2, nil
	}
	l.s.Cadvisor, l.s.Cadvisor2 = c1, c2
}

func (l *loader) nodeSample(name string) *nodeinfo.Sample {
	b := l.read(name)
	if b == nil {
		return nil
	}
	s, err := nodeinfo.ParseProbe(string(b))
	if err != nil {
		l.warn(name, err)
		return nil
	}
	if len(s.Problems) > 0 {
		l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: %d files not understood (first: %s)", name, len(s.Problems), s.Problems[0]))
	}
	if s.Empty() {
		l.s.Warnings = append(l.s.Warnings, name+": holds none of the files the node rules read; the diagnosis goes on without it")
		return nil
	}
	l.usable++
	return s
}

func (l *loader) cadvisor(name string) *nodeinfo.Cadvisor {
	b := l.read(name)
	if b == nil {
		return nil
	}
	c, err := nodeinfo.ParseCadvisor(b)
	if err != nil {
		l.warn(name, err)
		return nil
	}
	if len(c.Containers) == 0 {
		l.s.Warnings = append(l.s.Warnings, name+": no container of the pod in it; the diagnosis goes on without it")
		return nil
	}
	l.usable++
	return c
}

func (l *loader) nodeWindow() time.Duration {
	if t := l.s.Meta.NodeTimes; len(t) >= 2 {
		return t[1].Sub(t[0])
	}
	return l.window()
}
