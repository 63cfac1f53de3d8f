package diagnose

import (
	"bufio"
	"fmt"
	"io"
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
	for _, s := range settings {
		timeouts, retries := routeTexts(s.Routes)
		perConn := "-"
		if s.MaxRequestsPerConnection > 0 {
			perConn = fmt.Sprint(s.MaxRequestsPerConnection)
		}
		// Every field comes from the config dump: printed with its controls (and tabs) escaped.
		cells := []string{s.Cluster.Raw, dash(s.DiscoveryType), dash(s.TLSMode), fmt.Sprint(s.ConnectTimeout), fmt.Sprint(s.IdleTimeout),
			fmt.Sprintf("%s/%s/%s/%s", s.MaxConnections, s.MaxPending, s.MaxRequests, s.MaxRetries), perConn,
			outlierText(s.Outlier), dash(strings.Join(timeouts, ", ")), dash(strings.Join(retries, ", "))}
		for i := range cells {
			cells[i] = termSafe(cells[i], false)
		}
		ew.printf("%s\n", strings.Join(cells, "\t"))
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
