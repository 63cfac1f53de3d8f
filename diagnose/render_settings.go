package diagnose

import (
	"io"
	"strings"
	"text/tabwriter"
)

// RenderSettingsText writes upstream settings as a table, one cluster a line.
func RenderSettingsText(w io.Writer, settings []UpstreamSettings) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	ew := &errWriter{w: tw}
	ew.printf("CLUSTER\tTYPE\tTLS\tCONNECT\tIDLE\tMAX CONN/PEND/REQ/RETRY\tOUTLIER\tROUTE TIMEOUT\tRETRIES\n")
	for _, s := range settings {
		ew.printf("%s\t%s\t%s\t%s\t%s\t%s/%s/%s/%s\t%s\t%s\t%s\n",
			s.Cluster.Raw, dash(s.DiscoveryType), dash(s.TLSMode), short(s.ConnectTimeout), short(s.IdleTimeout),
			short(s.MaxConnections), short(s.MaxPending), short(s.MaxRequests), short(s.MaxRetries),
			s.Outlier, dash(short(strings.Join(s.RouteTimeouts, ", "))), dash(strings.Join(s.Retries, ", ")))
	}
	if ew.err != nil {
		return ew.err
	}
	return tw.Flush()
}

// short marks defaults with a star to keep the table narrow; the JSON output spells them out.
func short(s string) string { return strings.ReplaceAll(s, " (default)", "*") }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
