package diagnose

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
	"github.com/kubectl-mesh/kubectl-mesh/evidence"
)

// Evidence folder file names: the evidence package owns them.
const (
	FileStatsText        = evidence.StatsText
	FileStatsJSON        = evidence.StatsJSON
	FileStatsProm        = evidence.StatsProm
	FileStats2Text       = evidence.Stats2Text
	FileStats2JSON       = evidence.Stats2JSON
	FileStats2Prom       = evidence.Stats2Prom
	FileConfigDump       = evidence.ConfigDump
	FileClustersJS       = evidence.ClustersJSON
	FileClustersTxt      = evidence.ClustersText
	FileCerts            = evidence.Certs
	FileServerInfo       = evidence.ServerInfo
	FileAccessLog        = evidence.AccessLog
	FileZtunnelLog       = evidence.ZtunnelLog
	FileZtunnelDump      = evidence.ZtunnelDump
	FileZtunnelProm      = evidence.ZtunnelProm
	FileZtunnelProm2     = evidence.ZtunnelProm2
	FileZtunnelCadvisor  = evidence.ZtunnelCadvisor
	FileZtunnelCadvisor2 = evidence.ZtunnelCadvisor2
	FilePod              = evidence.Pod
	FileMeta             = evidence.Meta
)

// statsPairs lists the stats formats in order of preference: Prometheus carries Istio's
// request metrics and histogram buckets, JSON carries computed quantiles, text is the fallback.
var statsPairs = []struct {
	first, second string
	parse         func(io.Reader, ...envoyadmin.StatsOption) (*envoyadmin.StatsSample, error)
}{
	{FileStatsProm, FileStats2Prom, envoyadmin.ParseStatsPrometheus},
	{FileStatsJSON, FileStats2JSON, envoyadmin.ParseStatsJSON},
	{FileStatsText, FileStats2Text, envoyadmin.ParseStatsText},
}

// Load reads an evidence folder or archive (.tar.gz) under the evidence package's rules for
// input from strangers: only regular files with evidence names, each and all within caps, an
// archive with one top folder and nothing that climbs out. What was refused becomes a warning
// of the snapshot. Every file is optional; a file that does not parse becomes a warning and the
// rest is still read. It fails only when the path cannot be read or holds no evidence at all.
// now is used for certificate expiry when meta.json has no capture time, and
// Snapshot.NowSource then says so.
func Load(path string, now time.Time) (*Snapshot, error) {
	set, err := evidence.Open(path)
	if err != nil {
		return nil, err
	}
	return loadSet(set, now)
}

// LoadDir reads an evidence folder, as Load does.
func LoadDir(dir string, now time.Time) (*Snapshot, error) {
	set, err := evidence.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return loadSet(set, now)
}

func loadSet(set *evidence.Set, now time.Time) (*Snapshot, error) {
	if set.Len() == 0 && len(set.Warnings) > 0 {
		return nil, fmt.Errorf("%q holds no evidence file that could be read: %s", set.Where, strings.Join(set.Warnings, "; "))
	}
	s, err := LoadFS(set.FS(), set.Where, now)
	if err != nil {
		return nil, err
	}
	s.Warnings = append(set.Warnings, s.Warnings...)
	return s, nil
}

// LoadFS reads evidence files from fsys, as LoadDir does from a folder: a live capture held in
// memory, or an unpacked archive. where names the evidence in messages.
func LoadFS(fsys fs.FS, where string, now time.Time) (*Snapshot, error) {
	dir := where
	l := &loader{fsys: fsys, s: &Snapshot{Now: now, NowSource: NowFromClock}}
	l.meta()
	l.config() // before the stats: its cluster names settle ambiguous stat names
	l.stats()
	l.upstreams()
	l.certs()
	l.serverInfo()
	l.accessLog()
	l.ztunnel()
	l.pod()
	l.node()
	l.kube()
	l.hop()
	l.waypoint(where, now)
	if l.found > 0 && l.usable == 0 {
		return nil, fmt.Errorf("none of the evidence files in %s could be read: %s", dir, strings.Join(l.s.Warnings, "; "))
	}
	if l.found == 0 {
		return nil, fmt.Errorf("%s holds no evidence files: expected some of %s, %s, %s, %s, %s, %s, %s", dir,
			FileStatsProm, FileStatsText, FileConfigDump, FileClustersJS, FileCerts, FileAccessLog, FilePod)
	}
	l.s.checkNames()
	return l.s, nil
}

type loader struct {
	fsys fs.FS
	s    *Snapshot
	// windowWhy says why meta.json gave no window, when it had one that could not be used.
	windowWhy string
	// found counts the evidence files present, usable those that parsed.
	found, usable int
}

// read returns a file's content, nil when absent; other read errors become warnings.
func (l *loader) read(name string) []byte {
	b, err := fs.ReadFile(l.fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		l.warn(name, err)
		return nil
	}
	l.found++
	return b
}

func (l *loader) warn(file string, err error) {
	l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: %v; the diagnosis goes on without it", file, err))
}

func (l *loader) meta() {
	b := l.read(FileMeta)
	if b == nil {
		return
	}
	l.found-- // meta.json alone is not evidence
	if err := json.Unmarshal(b, &l.s.Meta); err != nil {
		l.warn(FileMeta, err)
		return
	}
	l.checkMeta()
	if n := len(l.s.Meta.CaptureTimes); n > 0 {
		l.s.Now, l.s.NowSource = l.s.Meta.CaptureTimes[n-1], NowFromMeta
	}
}

// Bounds of meta.json's times: Envoy did not exist before the first, and a capture is not
// taken in the future; a window between two samples is a second to a day.
var (
	earliestCapture = time.Date(2016, 9, 1, 0, 0, 0, 0, time.UTC)
	minWindow       = 100 * time.Millisecond
	maxWindow       = 24 * time.Hour
)

// checkMeta refuses meta.json's times and window when no capture could have them, saying which
// value and why, so that rates and certificate ages are never computed from them.
func (l *loader) checkMeta() {
	m := &l.s.Meta
	latest := time.Now().Add(48 * time.Hour)
	for _, t := range m.CaptureTimes {
		if t.Before(earliestCapture) || t.After(latest) {
			l.windowWhy = fmt.Sprintf("%s: capture time %s is not a time a capture was taken; its captureTimes are not used", FileMeta, t.Format(time.RFC3339))
			l.s.Warnings = append(l.s.Warnings, l.windowWhy)
			m.CaptureTimes = nil
			break
		}
	}
	if len(m.CaptureTimes) >= 2 && !m.CaptureTimes[1].After(m.CaptureTimes[0]) {
		l.windowWhy = fmt.Sprintf("%s: the second capture time (%s) is not after the first (%s); no window is read from them", FileMeta, m.CaptureTimes[1].Format(time.RFC3339), m.CaptureTimes[0].Format(time.RFC3339))
		l.s.Warnings = append(l.s.Warnings, l.windowWhy)
		m.CaptureTimes = m.CaptureTimes[1:]
	}
	if w := m.WindowSeconds; w != 0 {
		d := time.Duration(w * float64(time.Second))
		if math.IsNaN(w) || w < minWindow.Seconds() || w > maxWindow.Seconds() {
			l.windowWhy = fmt.Sprintf("%s: windowSeconds %v is not a window between two samples (%v to %v)", FileMeta, w, minWindow, maxWindow)
			l.s.Warnings = append(l.s.Warnings, l.windowWhy)
			m.WindowSeconds = 0
		} else if len(m.CaptureTimes) >= 2 {
			if gap := m.CaptureTimes[1].Sub(m.CaptureTimes[0]); gap > 2*d+time.Minute || d > 2*gap+time.Minute {
				l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: windowSeconds %v and the capture times %v apart disagree; windowSeconds is used", FileMeta, w, gap))
			}
		}
	}
}

func (l *loader) stats() {
	var opts []envoyadmin.StatsOption
	if l.s.Config != nil {
		names := make([]string, len(l.s.Config.Clusters))
		for i, c := range l.s.Config.Clusters {
			names[i] = c.Name.Raw
		}
		opts = append(opts, envoyadmin.WithClusterNames(names...))
	}
	parse := func(file string, b []byte, p func(io.Reader, ...envoyadmin.StatsOption) (*envoyadmin.StatsSample, error)) *envoyadmin.StatsSample {
		sample, err := p(bytes.NewReader(b), opts...)
		if err != nil {
			l.warn(file, err)
			return nil
		}
		if sample.Skipped > 0 {
			msg := fmt.Sprintf("%s: %d entries did not parse and were skipped", file, sample.Skipped)
			if len(sample.Warnings) > 0 {
				msg += " (first: " + sample.Warnings[0] + ")"
			}
			l.s.Warnings = append(l.s.Warnings, msg)
		}
		return sample
	}
	for _, p := range statsPairs {
		b := l.read(p.first)
		if b == nil {
			continue
		}
		first := parse(p.first, b, p.parse)
		if first == nil || first.Empty() {
			if first != nil {
				// A file of the wrong format (GET /stats saved as stats.prom) can parse to
				// nothing; another format's file may still hold the sample.
				l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: holds no Envoy stats (is it the output of the endpoint its name says?); the diagnosis goes on without it", p.first))
			}
			if _, err := fs.Stat(l.fsys, p.second); err == nil {
				l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s is not read: a second sample needs the first, %s, which could not be used", p.second, p.first))
			}
			continue
		}
		l.usable++
		l.s.Stats, l.s.StatsFile = first, p.first
		if b2 := l.read(p.second); b2 != nil {
			if second := parse(p.second, b2, p.parse); second != nil && !second.Empty() {
				l.s.Stats2, l.s.Stats2File = second, p.second
				l.s.Window = l.window()
				if l.s.Window <= 0 {
					why := l.windowWhy
					if why == "" {
						why = FileMeta + " has no windowSeconds or captureTimes"
					}
					l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: %s is read as a single cumulative sample, numbers since the proxy started", why, p.second))
				}
			} else if second != nil {
				l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s holds no Envoy stats: %s is read alone, numbers since the proxy started", p.second, p.first))
			}
		}
		l.unpairedSeconds(p.first)
		return
	}
}

// unpairedSeconds warns about second samples of another format than the first, which cannot
// be subtracted from it.
func (l *loader) unpairedSeconds(first string) {
	for _, p := range statsPairs {
		if p.first == first || l.s.Stats2File == p.second {
			continue
		}
		if _, err := fs.Stat(l.fsys, p.second); err == nil {
			l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s is ignored: the first sample read is %s, and only two samples of one format give interval rates", p.second, first))
		}
	}
}

func (l *loader) window() time.Duration {
	m := l.s.Meta
	if m.WindowSeconds > 0 {
		return time.Duration(m.WindowSeconds * float64(time.Second))
	}
	if len(m.CaptureTimes) >= 2 {
		if w := m.CaptureTimes[1].Sub(m.CaptureTimes[0]); w >= minWindow && w <= maxWindow {
			return w
		}
		l.windowWhy = fmt.Sprintf("%s: the capture times are %v apart, not a window between two samples (%v to %v)", FileMeta, m.CaptureTimes[1].Sub(m.CaptureTimes[0]), minWindow, maxWindow)
	}
	return 0
}

func (l *loader) config() {
	b := l.read(FileConfigDump)
	if b == nil {
		return
	}
	cfg, err := envoyadmin.ParseConfigDump(b)
	if err != nil {
		l.warn(FileConfigDump, err)
		excerpt, ok := envoyadmin.ConfigDumpExcerpt(b)
		if !ok {
			return
		}
		l.s.Warnings = append(l.s.Warnings, FileConfigDump+": read as an excerpt of a config dump: only what it shows")
		cfg = excerpt
	}
	for _, w := range cfg.Warnings {
		l.s.Warnings = append(l.s.Warnings, FileConfigDump+": "+w)
	}
	l.s.Config = cfg
	l.usable++
	if len(cfg.Secrets) > 0 && len(l.s.Certs) == 0 {
		l.s.Certs, l.s.CertsFile = cfg.Secrets, FileConfigDump
	}
}

func (l *loader) upstreams() {
	if b := l.read(FileClustersJS); b != nil {
		u, err := envoyadmin.ParseClustersJSON(b)
		if err == nil {
			l.s.Upstreams, l.s.UpstreamsFile = u, FileClustersJS
			l.usable++
			return
		}
		l.warn(FileClustersJS, err)
	}
	if b := l.read(FileClustersTxt); b != nil {
		u, err := envoyadmin.ParseClustersText(bytes.NewReader(b))
		if err != nil {
			l.warn(FileClustersTxt, err)
			return
		}
		l.s.Upstreams, l.s.UpstreamsFile = u, FileClustersTxt
		l.usable++
	}
}

func (l *loader) certs() {
	b := l.read(FileCerts)
	if b == nil {
		return
	}
	certs, err := envoyadmin.ParseCerts(b)
	if err != nil {
		l.warn(FileCerts, err)
		return
	}
	l.s.NoCerts = len(certs) == 0
	l.s.Certs, l.s.CertsFile = certs, FileCerts
	l.usable++
}

func (l *loader) serverInfo() {
	b := l.read(FileServerInfo)
	if b == nil {
		return
	}
	si, err := envoyadmin.ParseServerInfo(b)
	if err != nil {
		l.warn(FileServerInfo, err)
		return
	}
	l.s.ServerInfo = si
	l.usable++
}

func (l *loader) accessLog() {
	b := l.read(FileAccessLog)
	if b == nil {
		return
	}
	log, err := envoyadmin.ParseLog(bytes.NewReader(b))
	if err != nil {
		l.warn(FileAccessLog, err)
		return
	}
	if lineErrs := log.Errors; len(lineErrs) > 0 {
		l.s.Warnings = append(l.s.Warnings, fmt.Sprintf("%s: %d lines not understood (first, line %d: %s)", FileAccessLog, len(lineErrs), lineErrs[0].Line, lineErrs[0].Reason))
	}
	l.s.AccessLog, l.s.ProxyLog, l.s.LogOther = log.Entries, log.Proxy, log.Other
	switch {
	case len(log.Entries) > 0 || len(log.Proxy) > 0 || log.ProxyLines > 0:
		l.usable++
	default:
		l.s.Warnings = append(l.s.Warnings, FileAccessLog+": no access-log line in it (access logs may be off: Istio's Telemetry API or meshConfig.accessLogFile turns them on); the diagnosis goes on without it")
	}
}

func (l *loader) pod() {
	b := l.read(FilePod)
	if b == nil {
		return
	}
	var pod corev1.Pod
	if err := unmarshalYAML(b, &pod); err != nil {
		l.warn(FilePod, err)
		return
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		l.warn(FilePod, fmt.Errorf("holds a %s, not a Pod", pod.Kind))
		return
	}
	if pod.Name == "" && len(pod.Spec.Containers) == 0 {
		l.warn(FilePod, fmt.Errorf("holds no Pod: no name and no containers"))
		return
	}
	l.s.Pod = &pod
	l.usable++
	if l.s.Meta.Pod == "" {
		l.s.Meta.Pod, l.s.Meta.Namespace = pod.Name, pod.Namespace
	}
}

// unmarshalYAML decodes a .yaml evidence file, which holds YAML (as `kubectl get -o yaml` prints
// it) or JSON (as `kubectl get -o json` does, and as a live capture keeps it in memory: JSON
// decodes without the YAML parser's cost, which dominated a sweep's reading of its pods).
func unmarshalYAML(b []byte, v any) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return json.Unmarshal(b, v)
	}
	return yaml.Unmarshal(b, v)
}
