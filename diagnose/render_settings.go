package diagnose

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// RenderSettingsText writes upstream settings as a table, one cluster a line; * marks Envoy's
// defaults for unset fields.
func RenderSettingsText(w io.Writer, settings []UpstreamSettings) error {
	// One write per table, not per cell: a dump of thousands of clusters printed cell by cell
	// to an unbuffered stdout spends its time in write system calls.
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
	ew := &errWriter{w: tw}
	ew.printf("CLUSTER\tTYPE\tTLS\tCONNECT\tIDLE\tMAX CONN/PEND/REQ/RETRY\tRQ/CONN\tOUTLIER\tROUTE TIMEOUT\tRETRIES\n")
	// Each row is built in one reused buffer and handed to the tab writer in one Write: with
	// fmt and a slice of cells per row, the table of a 5,000-cluster dump made 23 allocations a
	// row and took as long as reading the dump.
	var row []byte
	for i := range settings {
		s := &settings[i]
		timeouts, retries := routeTexts(s.Routes)
		perConn := "-"
		if s.MaxRequestsPerConnection > 0 {
			perConn = strconv.FormatUint(uint64(s.MaxRequestsPerConnection), 10)
		}
		// Every string from the config dump is printed with its controls (and tabs) escaped;
		// the numbers are written as they are.
		row = row[:0]
		for i, c := range [...]string{s.Cluster.Raw, dash(s.DiscoveryType), dash(s.TLSMode), s.ConnectTimeout.String(), s.IdleTimeout.String()} {
			if i > 0 {
				row = append(row, '\t')
			}
			row = append(row, termSafe(c, false)...)
		}
		row = append(row, '\t')
		for i, l := range [...]*LimitSetting{&s.MaxConnections, &s.MaxPending, &s.MaxRequests, &s.MaxRetries} {
			if i > 0 {
				row = append(row, '/')
			}
			row = l.appendText(row)
		}
		for _, c := range [...]string{perConn, outlierText(s.Outlier), dash(strings.Join(timeouts, ", ")), dash(strings.Join(retries, ", "))} {
			row = append(row, '\t')
			row = append(row, termSafe(c, false)...)
		}
		row = append(row, '\n')
		if _, err := ew.Write(row); err != nil {
			return err
		}
	}
	if ew.err != nil {
		return ew.err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
