// Package nodereplay plays an incident's node samples back as a live /proc: a directory tree
// (proc/stat, proc/diskstats, sys/fs/cgroup/cpu.stat, proc/sys/...) whose numbers move in wall
// time from the first sample's values to the second's over the incident's window, and on at
// the same rate after it. Any two reads a window apart then measure the incident's rates, so a
// capture that execs the node probe in a working directory (kwok's ExecRule) diagnoses what
// the incident folder does.
package nodereplay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/evidence"
	"github.com/kubectl-mesh/kubectl-mesh/nodeinfo"
)

// Interval is how often the files are rewritten.
const Interval = 100 * time.Millisecond

// Replay keeps a directory's files moving; Stop ends it.
type Replay struct {
	dir    string
	files  []file
	start  time.Time
	window float64
	now    func() time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// file is one probe file: its path under the directory and its two samples' bodies.
type file struct {
	path   string
	first  string
	second string // "" when the second sample lacks it: the first is kept as it is
}

// Start writes the tree of incidentDir's node.txt and node-2.txt into workDir at the first
// sample's values and keeps it moving until ctx ends or Stop is called.
func Start(ctx context.Context, incidentDir, workDir string) (*Replay, error) {
	r, err := load(incidentDir)
	if err != nil {
		return nil, err
	}
	r.dir, r.now = workDir, time.Now
	r.start = r.now()
	if err := r.write(r.start); err != nil {
		return nil, err
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go r.run(ctx)
	return r, nil
}

// Stop ends the replay and waits for its last write.
func (r *Replay) Stop() {
	r.cancel()
	<-r.done
}

// Dir is the directory the replay writes.
func (r *Replay) Dir() string { return r.dir }

func (r *Replay) run(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = r.write(r.now()) // a failed write leaves the previous values: the next tick retries
		}
	}
}

func load(incidentDir string) (*Replay, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(incidentDir, name))
		return string(b), err
	}
	t1, err := read(evidence.Node)
	if err != nil {
		return nil, fmt.Errorf("node replay: %w", err)
	}
	t2, err := read(evidence.Node2)
	if err != nil {
		return nil, fmt.Errorf("node replay: %w", err)
	}
	var meta evidence.MetaFile
	if b, err := os.ReadFile(filepath.Join(incidentDir, evidence.Meta)); err == nil {
		if err := json.Unmarshal(b, &meta); err != nil {
			return nil, fmt.Errorf("node replay: %s: %w", evidence.Meta, err)
		}
	}
	r := &Replay{window: meta.WindowSeconds}
	if len(meta.NodeTimes) >= 2 {
		r.window = meta.NodeTimes[1].Sub(meta.NodeTimes[0]).Seconds()
	}
	if r.window <= 0 {
		return nil, fmt.Errorf("node replay: %s/%s has no window between the node samples", incidentDir, evidence.Meta)
	}
	second := map[string]string{}
	for _, s := range nodeinfo.SplitSections(t2) {
		second[s.Path] = s.Body
	}
	for _, s := range nodeinfo.SplitSections(t1) {
		rel := filepath.FromSlash(strings.TrimPrefix(s.Path, "/"))
		if rel == "" || strings.HasPrefix(filepath.Clean(rel), "..") {
			return nil, fmt.Errorf("node replay: %s names %q, not a path under the root", evidence.Node, s.Path)
		}
		r.files = append(r.files, file{path: rel, first: trimSeparator(s.Body), second: trimSeparator(second[s.Path])})
	}
	if len(r.files) == 0 {
		return nil, errors.New("node replay: " + evidence.Node + " holds no probe file")
	}
	return r, nil
}

// trimSeparator drops the blank line tail prints between files, which is not part of a file.
func trimSeparator(body string) string {
	if strings.HasSuffix(body, "\n\n") {
		return body[:len(body)-1]
	}
	return body
}

// write writes every file at time t, each through a temporary file and a rename so a reader
// never sees half a file.
func (r *Replay) write(t time.Time) error {
	frac := t.Sub(r.start).Seconds() / r.window
	for _, f := range r.files {
		p := filepath.Join(r.dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(Interpolate(f.first, f.second, frac)), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

var numberToken = regexp.MustCompile(`\d+(\.\d+)?`)

// Interpolate returns the first body with every number moved frac of the way to the same number
// in the second (frac 1 gives the second; above 1 goes on at the same rate), never below zero.
// Numbers equal in both are kept as written, so names (cpu0, nvme0n1, avg10) and huge limits
// stay exact; a second body of another shape leaves the first as it is.
func Interpolate(first, second string, frac float64) string {
	a, b := numberToken.FindAllStringIndex(first, -1), numberToken.FindAllStringIndex(second, -1)
	if len(a) != len(b) || second == "" {
		return first
	}
	var out strings.Builder
	last := 0
	for i, loc := range a {
		out.WriteString(first[last:loc[0]])
		last = loc[1]
		x, y := first[loc[0]:loc[1]], second[b[i][0]:b[i][1]]
		if x == y {
			out.WriteString(x)
			continue
		}
		fx, err1 := strconv.ParseFloat(x, 64)
		fy, err2 := strconv.ParseFloat(y, 64)
		if err1 != nil || err2 != nil {
			out.WriteString(x)
			continue
		}
		v := math.Max(0, fx+(fy-fx)*frac)
		if dot := strings.IndexByte(x, '.'); dot >= 0 {
			out.WriteString(strconv.FormatFloat(v, 'f', len(x)-dot-1, 64))
		} else {
			out.WriteString(strconv.FormatFloat(math.Floor(v), 'f', 0, 64))
		}
	}
	out.WriteString(first[last:])
	return out.String()
}
