package diagnose

import (
	"bytes"
	"io/fs"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/ztunnel"
)

// ztunnel reads an ambient pod's evidence of the ztunnel on its node: its log lines, its config
// dump and two samples of its metrics.
func (l *loader) ztunnel() {
	l.ztunnelLog()
	l.ztunnelDump()
	l.ztunnelMetrics()
	c1, c2 := l.cadvisor(FileZtunnelCadvisor), l.cadvisor(FileZtunnelCadvisor2)
	if c1 == nil {
		c1, c2 = c2, nil
	}
	l.s.ZtunnelCadvisor, l.s.ZtunnelCadvisor2 = c1, c2
}

// ztunnelLog reads an ambient pod's lines of its node's ztunnel log.
func (l *loader) ztunnelLog() {
	b := l.read(FileZtunnelLog)
	if b == nil {
		return
	}
	events, known := ztunnelLines(string(b))
	if len(known) == 0 {
		l.s.Warnings = append(l.s.Warnings, FileZtunnelLog+": no line of it is ztunnel's; the diagnosis goes on without it")
		return
	}
	l.usable++
	l.s.Ztunnel, l.s.ZtunnelLines = events, len(known)
}

// ztunnelDump reads the config dump of an ambient pod's node's ztunnel.
func (l *loader) ztunnelDump() {
	b := l.read(FileZtunnelDump)
	if b == nil {
		return
	}
	d, err := ztunnel.ParseConfigDump(b)
	if err != nil {
		l.warn(FileZtunnelDump, err)
		return
	}
	l.usable++
	l.s.ZtunnelDump = d
}

// ztunnelMetrics reads the two samples of ztunnel's metrics into an interval over the capture's
// window (one sample alone reads as numbers since ztunnel started).
func (l *loader) ztunnelMetrics() {
	parse := func(name string) *envoyadmin.StatsSample {
		b := l.read(name)
		if b == nil {
			return nil
		}
		s, err := envoyadmin.ParseStatsPrometheus(bytes.NewReader(b))
		if err != nil {
			l.warn(name, err)
			return nil
		}
		return s
	}
	first := parse(FileZtunnelProm)
	if first == nil {
		return
	}
	l.usable++
	l.s.ZtunnelStats = envoyadmin.NewStatsInterval(first, parse(FileZtunnelProm2), l.window())
}

// waypoint reads the evidence of the waypoint that serves an ambient pod: the waypoint-* files,
// a capture of its Envoy like a sidecar's.
func (l *loader) waypoint(where string, now time.Time) {
	sub := prefixFS{fsys: l.fsys, prefix: evidence.WaypointPrefix}
	if _, err := fs.Stat(sub, FileMeta); err != nil {
		if _, err := fs.Stat(sub, FileConfigDump); err != nil {
			return
		}
	}
	ws, err := LoadFS(sub, where+", its waypoint's files", now)
	if err != nil {
		l.s.Warnings = append(l.s.Warnings, "the waypoint's evidence: "+err.Error())
		return
	}
	l.found++
	l.usable++
	l.s.Waypoint = ws
}

// prefixFS is the files of fsys whose names start with prefix, under the rest of their names.
type prefixFS struct {
	fsys   fs.FS
	prefix string
}

func (p prefixFS) Open(name string) (fs.File, error) { return p.fsys.Open(p.prefix + name) }
