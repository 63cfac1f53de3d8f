package whyslow

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
)

// progressBar shows a sweep's progress on stderr: a bar redrawn in place on a terminal, a
// line per tenth of the pods otherwise (so logs of CI jobs stay short).
type progressBar struct {
	w         io.Writer
	tty       bool
	total     int
	lastTenth int
	drawn     bool
}

func newProgressBar(w io.Writer, total int, window time.Duration) *progressBar {
	p := &progressBar{w: w, total: total, tty: isTerminal(w)}
	fmt.Fprintf(w, "diagnosing %d meshed pods (%v window each)\n", total, window)
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// update is called with the pods done so far, never going backwards.
func (p *progressBar) update(done, total int) {
	if p.tty {
		const width = 30
		n := done * width / total
		fmt.Fprintf(p.w, "\r[%s%s] %d/%d pods", strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total)
		p.drawn = true
		return
	}
	if tenth := done * 10 / total; tenth > p.lastTenth || done == total {
		p.lastTenth = tenth
		fmt.Fprintf(p.w, "%d/%d pods diagnosed\n", done, total)
	}
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
