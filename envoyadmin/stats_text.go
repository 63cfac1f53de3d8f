package envoyadmin

import (
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// ParseStatsText reads the output of GET /stats: one "name: value" line per stat, where the
// value is a number (counters and gauges), a quoted string (text readouts such as
// "cluster_manager.cds.version_text: "v13""), a histogram summary
// "P0(interval,cumulative) P25(...) ... P100(...)", "No recorded values", or the bucket forms of
// ?histogram_buckets=cumulative|disjoint ("B0.5(0,0) B1(0,1) ...") and =detailed (a "name:"
// line followed by indented totals=, intervals= and summary= lines).
//
// Lines that are not stats (a kubectl banner, a truncated last line) are counted in Skipped and
// quoted in Warnings; the sample is still returned. The error wraps ErrNoStats when the input has
// content but no stat at all, and reports read errors.
//
// The whole input is read into memory and sliced, without regular expressions: a large proxy's
// /stats runs to megabytes and tens of thousands of lines.
func ParseStatsText(r io.Reader, opts ...StatsOption) (*StatsSample, error) {
	text, err := readAllString(r)
	if err != nil {
		return nil, fmt.Errorf("reading stats: %w", err)
	}
	b := newSampleBuilder(StatsText, opts)
	text = dropLongLines(text, b)
	p := statsTextParser{b: b}
	lineNo, contentLines, firstLine := 0, 0, ""
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		lineNo++
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if contentLines++; contentLines == 1 {
			firstLine = line
		}
		if !p.line(lineNo, line) {
			b.skip("line", lineNo, line)
		}
	}
	p.flushDetail()
	if b.parsed == 0 && contentLines > 0 {
		if len(firstLine) > 80 {
			firstLine = firstLine[:80] + "..."
		}
		return nil, fmt.Errorf("%w: none of %d lines is a stat (first: %q)", ErrNoStats, contentLines, firstLine)
	}
	return b.finish(), nil
}

// readAllString reads r to the end into one string, sized up front when r can say how big it is,
// so a multi-megabyte dump is neither copied twice nor regrown many times.
func readAllString(r io.Reader) (string, error) {
	var sb strings.Builder
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		sb.Grow(v.Len() + 1)
	case interface{ Stat() (fs.FileInfo, error) }: // os.File
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < 1<<30 {
			sb.Grow(int(fi.Size()) + 1)
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		sb.Write(buf[:n])
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return "", err
		}
	}
}

// statsTextParser holds the state that spans lines: a detailed histogram being read, from the
// line that opened it and with how many of its indented lines so far.
type statsTextParser struct {
	b           *sampleBuilder
	detailName  string
	detail      *Histogram
	detailLine  int
	detailParts int
}

// line parses one non-blank line, reporting whether it was a stat (or part of one).
func (p *statsTextParser) line(lineNo int, line string) bool {
	if line[0] == ' ' || line[0] == '\t' {
		return p.detailPart(strings.TrimLeft(line, " \t"))
	}
	p.flushDetail()
	// Stat names have no spaces, so the first space is the one after "name:".
	sp := strings.IndexByte(line, ' ')
	if sp < 0 {
		// "name:" opens a detailed histogram; its buckets follow on indented lines.
		if name, ok := strings.CutSuffix(line, ":"); ok && name != "" {
			p.detailName, p.detail, p.detailLine, p.detailParts = name, &Histogram{}, lineNo, 0
			return true // unless no indented line follows: see flushDetail
		}
		return false
	}
	if sp < 2 || line[sp-1] != ':' {
		return false
	}
	name, val := line[:sp-1], strings.TrimSpace(line[sp+1:])
	if val == "" {
		return false
	}
	v, ok := parseStatsTextValue(val)
	if ok {
		p.b.add(name, v)
	}
	return ok
}

// parseStatsTextValue parses the value part of a /stats line.
func parseStatsTextValue(val string) (statValue, bool) {
	switch val[0] {
	case '"':
		if len(val) < 2 || val[len(val)-1] != '"' {
			return statValue{}, false
		}
		return statValue{kind: statText, text: strings.Clone(val[1 : len(val)-1])}, true
	case 'N':
		if val == "No recorded values" {
			return statValue{kind: statHistogram, hist: &Histogram{NoValues: true}}, true
		}
	case 'P':
		if qs, ok := parseQuantileSummary(val); ok {
			return statValue{kind: statHistogram, hist: &Histogram{Quantiles: qs}}, true
		}
		return statValue{}, false
	case 'B':
		if bs, ok := parseBucketSummary(val); ok {
			h := &Histogram{Buckets: cumulativeBuckets(bs)}
			h.Count = bs[len(bs)-1].Count
			return statValue{kind: statHistogram, hist: h}, true
		}
		return statValue{}, false
	}
	f, ok := parseStatNumber(val)
	return statValue{kind: statNumber, num: f}, ok
}

// parseStatNumber parses a counter or gauge: plain digits on the fast path, anything strconv reads
// (floats, exponents, nan) otherwise.
func parseStatNumber(s string) (float64, bool) {
	if len(s) <= 15 { // below 2^53, so exact in a float64
		var n uint64
		i := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n = n*10 + uint64(s[i]-'0')
		}
		if i == len(s) && i > 0 {
			return float64(n), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// parseQuantileSummary parses "P0(nan,1.0) P25(nan,1.02) ... P100(nan,2.1)"; "nan" is NaN.
func parseQuantileSummary(s string) ([]Quantile, bool) {
	qs := make([]Quantile, 0, 10)
	ok := eachStatPair(s, 'P', func(label string, interval, cumulative float64) bool {
		q, ok := parseStatNumber(label)
		if !ok || q < 0 || q > 100 {
			return false
		}
		qs = append(qs, Quantile{Q: q / 100, Interval: interval, Cumulative: cumulative})
		return true
	})
	return qs, ok && len(qs) > 0
}

// parseBucketSummary parses "B0.5(0,0) B1(0,1) ... B3.6e+06(1,4)", keeping the counts since the
// proxy started (the second of each pair).
func parseBucketSummary(s string) ([]Bucket, bool) {
	bs := make([]Bucket, 0, 20)
	ok := eachStatPair(s, 'B', func(label string, _, cumulative float64) bool {
		bound, ok := parseStatNumber(label)
		if !ok || math.IsNaN(bound) || math.IsNaN(cumulative) || cumulative < 0 || (len(bs) > 0 && bound <= bs[len(bs)-1].UpperBound) {
			return false
		}
		bs = append(bs, Bucket{UpperBound: bound, Count: cumulative})
		return true
	})
	return bs, ok && len(bs) > 0
}

// eachStatPair calls fn for each space-separated "<prefix><label>(<a>,<b>)" token of s.
func eachStatPair(s string, prefix byte, fn func(label string, a, b float64) bool) bool {
	for s != "" {
		tok := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			tok, s = s[:i], strings.TrimLeft(s[i+1:], " ")
		} else {
			s = ""
		}
		open, comma := strings.IndexByte(tok, '('), strings.IndexByte(tok, ',')
		if len(tok) < 6 || tok[0] != prefix || open < 2 || comma < open || tok[len(tok)-1] != ')' {
			return false
		}
		a, okA := parseStatNumber(tok[open+1 : comma])
		c, okC := parseStatNumber(tok[comma+1 : len(tok)-1])
		if !okA || !okC || !fn(tok[1:open], a, c) {
			return false
		}
	}
	return true
}

// detailPart reads one indented line of a detailed histogram:
// "totals=0,1:3, 5,1:2", "intervals=...", "summary=P0(...) ...".
func (p *statsTextParser) detailPart(line string) bool {
	if p.detail == nil {
		return false
	}
	p.detailParts++
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return false
	}
	switch key {
	case "totals":
		var details []envoyDetailBucket
		for _, item := range strings.Split(val, ", ") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			lw, cnt, ok1 := strings.Cut(item, ":")
			l, w, ok2 := strings.Cut(lw, ",")
			lower, ok3 := parseStatNumber(l)
			width, ok4 := parseStatNumber(w)
			count, ok5 := parseStatNumber(cnt)
			if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || count < 0 {
				return false
			}
			details = append(details, envoyDetailBucket{lower: lower, width: width, count: count})
		}
		built := histogramFromDetail(details)
		p.detail.Buckets, p.detail.Count = built.Buckets, built.Count
	case "intervals":
		// Over Envoy's last flush interval only; the capture window is what matters here.
	case "summary":
		qs, ok := parseQuantileSummary(val)
		if !ok {
			return false
		}
		p.detail.Quantiles = qs
	default:
		return false
	}
	return true
}

// flushDetail adds the detailed histogram being read, if any. A "name:" line that no indented
// line followed was not one ("Error:"), and is counted as skipped.
func (p *statsTextParser) flushDetail() {
	if p.detail == nil {
		return
	}
	if p.detailParts == 0 {
		p.b.skip("line", p.detailLine, p.detailName+":")
	} else {
		p.b.add(p.detailName, statValue{kind: statHistogram, hist: p.detail})
	}
	p.detail, p.detailName = nil, ""
}
