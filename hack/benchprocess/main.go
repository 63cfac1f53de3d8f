// Command benchprocess measures what a user feels: the whole process, start to exit, of the
// commands the README sets targets for, beside the start-up baseline (hack/startup-baseline),
// in one run. Runs are interleaved, one of each command per round, so the machine's load falls
// on all of them alike; it prints each command's median wall time and median peak RSS (from GNU
// time, /usr/bin/time) and whether its target is met.
//
//	go run ./hack/benchprocess -bin bin/kubectl-mesh -baseline bin/startup-baseline
//
// The config dump for `clusters --file` is grown from a real sidecar's dump in ../shared/captures
// (-capture) by benchdump.Grow, as for the Go benchmark BenchmarkParseConfigDump.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/benchdump"
)

// command is one measured process: its arguments, the exit code it must give and its target.
type command struct {
	name     string
	args     []string
	exit     int
	target   time.Duration // 0: no target of its own
	baseline bool          // the target is the baseline's median
	walls    []time.Duration
	rssKiB   []int64
}

func main() {
	bin := flag.String("bin", "bin/kubectl-mesh", "the kubectl-mesh binary")
	baseline := flag.String("baseline", "bin/startup-baseline", "the start-up baseline binary")
	capture := flag.String("capture", "../shared/captures/"+benchdump.Capture, "the real config dump the large dump is grown from")
	incident := flag.String("incident", "testdata/incidents/keepalive-race", "the incident why-slow --from reads")
	clusters := flag.Int("clusters", 5000, "clusters in the grown dump")
	runs := flag.Int("runs", 30, "runs of each command")
	flag.Parse()
	if err := run(*bin, *baseline, *capture, *incident, *clusters, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "benchprocess:", err)
		os.Exit(1)
	}
}

func run(bin, baseline, capture, incident string, nClusters, runs int) error {
	src, err := os.ReadFile(capture)
	if err != nil {
		return err
	}
	dump, err := benchdump.Grow(src, nClusters)
	if err != nil {
		return fmt.Errorf("%s: %w", capture, err)
	}
	dir, err := os.MkdirTemp("", "benchprocess")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	dumpPath := filepath.Join(dir, "config_dump.json")
	if err := os.WriteFile(dumpPath, dump, 0o600); err != nil {
		return err
	}
	cmds := []*command{
		{name: "startup-baseline version", args: []string{baseline, "version"}},
		{name: "kubectl-mesh version", args: []string{bin, "version"}, baseline: true},
		{name: fmt.Sprintf("kubectl-mesh clusters --file (%.1f MB, %d clusters)", float64(len(dump))/1e6, nClusters),
			args: []string{bin, "clusters", "--file", dumpPath}, target: 100 * time.Millisecond},
		// --fail-on error: the incident's error-level finding must be there, or the run is wrong.
		{name: "kubectl-mesh why-slow --from " + filepath.Base(incident),
			args: []string{bin, "why-slow", "--from", incident, "--fail-on", "error"}, exit: 1, target: 100 * time.Millisecond},
	}
	for _, c := range cmds { // one warm-up each: the page cache, not the measurement
		if err := c.measure(false); err != nil {
			return err
		}
	}
	for range runs {
		for _, c := range cmds {
			if err := c.measure(true); err != nil {
				return err
			}
		}
	}
	report(os.Stdout, cmds, runs)
	return nil
}

// measure runs the command once, its output drained through a pipe as a pager would, and
// records its wall time; then, when GNU time is installed, once more under it for its peak RSS.
// The rusage this process could read itself would count the memory of this process, which the
// child shares between fork and exec.
func (c *command) measure(record bool) error {
	start := time.Now()
	if err := c.exec(c.args); err != nil {
		return err
	}
	wall := time.Since(start)
	if !record {
		return nil
	}
	c.walls = append(c.walls, wall)
	if _, err := os.Stat(gnuTime); err != nil {
		return nil
	}
	out, err := os.CreateTemp("", "benchprocess-rss")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	out.Close()
	if err := c.exec(append([]string{gnuTime, "-f", "%M", "-o", out.Name()}, c.args...)); err != nil {
		return err
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		return err
	}
	// GNU time adds "Command exited with non-zero status N" before the figure.
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fmt.Errorf("%s: %s -f %%M printed nothing", c.name, gnuTime)
	}
	kib, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %s -f %%M printed %q", c.name, gnuTime, b)
	}
	c.rssKiB = append(c.rssKiB, kib)
	return nil
}

// gnuTime is GNU time (Debian package "time"), which reports a child's peak RSS.
const gnuTime = "/usr/bin/time"

// exec runs args and checks the exit code is the command's.
func (c *command) exec(args []string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == c.exit:
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", c.name, err)
	case c.exit != 0:
		return fmt.Errorf("%s: exit 0, want %d", c.name, c.exit)
	}
	return nil
}

func report(w io.Writer, cmds []*command, runs int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "command\tmedian wall\tmedian peak RSS\ttarget\t\n")
	base := median(cmds[0].walls)
	for _, c := range cmds {
		target, verdict := "", ""
		switch {
		case c.baseline:
			target, verdict = fmt.Sprintf("≤ baseline (%s)", ms(base)), met(median(c.walls) <= base)
		case c.target > 0:
			target, verdict = "≤ "+ms(c.target), met(median(c.walls) <= c.target)
		}
		rss := "n/a (install GNU time)"
		if len(c.rssKiB) > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(median(c.rssKiB))/1024)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t\n", c.name, ms(median(c.walls)), rss, target, verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d interleaved runs of each, whole process (fork to exit), output drained through a pipe\n", runs)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func median[T time.Duration | int64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
