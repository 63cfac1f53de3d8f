package diagnose

import (
	"fmt"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// This file holds what the CertExpiryRule says about a certificate beyond its dates: the name a
// user knows it by, the time its expiry is judged against, and the TLS failures an expired one
// causes on this proxy.

// certName names a certificate for a finding's subject: its SDS secret ("default", "ROOTCA") and
// its first SAN or subject. /certs calls every secret Istio pushes "<inline>"; the config dump's
// secret with the same serial number then gives the name, or else what the certificate is.
func certName(s *Snapshot, c heldCert) (string, Evidence) {
	source := orDefault(s.CertsFile, "certs") + " secret " + c.Secret
	if c.SerialNumber != "" {
		source += " serial " + c.SerialNumber
	}
	name := c.Secret
	ev := Evidence{Label: "secret", Text: c.Secret, Source: source}
	if name == "" || name == "<inline>" {
		if sds := sdsSecretName(s, c); sds != "" {
			name = sds
			ev = Evidence{Label: "secret", Text: sds, Source: fmt.Sprintf("%s SDS secret %s, the same serial number as %s", FileConfigDump, sds, source)}
		} else {
			name = certKindWords(c)
		}
	}
	if len(c.SubjectAltNames) > 0 {
		return name + " (" + c.SubjectAltNames[0] + ")", ev
	}
	if c.Subject != "" {
		return name + " (" + c.Subject + ")", ev
	}
	return name, ev
}

// certKindWords says what a certificate is, for one that has no secret name.
func certKindWords(c heldCert) string {
	switch {
	case c.kind == certWorkload:
		return "workload certificate"
	case c.kind == certCA && c.inChain:
		return "CA certificate"
	case c.kind == certCA:
		return "root certificate"
	}
	return "certificate"
}

// sdsSecretName finds the config dump's SDS secret that holds the same certificate (serial number
// and expiry), preferring ROOTCA for a CA certificate; "" when there is none.
func sdsSecretName(s *Snapshot, c heldCert) string {
	if s.Config == nil || c.SerialNumber == "" {
		return ""
	}
	found := ""
	for _, sec := range s.Config.Secrets {
		if sec.SerialNumber != c.SerialNumber || !sec.NotAfter.Equal(c.NotAfter) || sec.Secret == "" || sec.Secret == "<inline>" {
			continue
		}
		if c.CA && sec.Secret == "ROOTCA" {
			return sec.Secret
		}
		if found == "" {
			found = sec.Secret
		}
	}
	return found
}

// certTitle is the finding's title. Without a capture time the expiry is judged against the
// current time, and the title says so.
func certTitle(s *Snapshot, code Code, what string, left time.Duration) string {
	const unknown = " (judged against the current time; the capture time is unknown)"
	switch {
	case code == CodeCertExpired && s.captureTimeUnknown():
		return fmt.Sprintf("The proxy's %s has expired%s", what, unknown)
	case code == CodeCertExpired:
		return fmt.Sprintf("The proxy's %s expired %s before the capture", what, roughDuration(-left))
	case s.captureTimeUnknown():
		return fmt.Sprintf("The proxy's %s expires in %s%s", what, roughDuration(left), unknown)
	}
	return fmt.Sprintf("The proxy's %s expires in %s", what, roughDuration(left))
}

// expiryEvidence says how far the certificate is from its expiry, and against which time.
func expiryEvidence(s *Snapshot, left time.Duration) []Evidence {
	var ev []Evidence
	if s.NowSource != "" {
		ev = append(ev, Evidence{Label: "expiry judged against", Text: s.Now.UTC().Format(time.RFC3339), Source: s.NowSource})
	}
	if s.captureTimeUnknown() {
		const why = " (the folder has no meta.json capture time)"
		if left > 0 {
			return append(ev, durationEvidence("time left at the current time", left, "NotAfter minus the current time"+why))
		}
		return append(ev, durationEvidence("expired before the current time by", -left, "current time minus NotAfter"+why))
	}
	if left > 0 {
		return append(ev, durationEvidence("time left at capture", left, "NotAfter minus the capture time"))
	}
	return append(ev, durationEvidence("expired before the capture by", -left, "capture time minus NotAfter"))
}

// expiredIdentity reports whether the proxy's workload certificate, or a CA certificate it holds,
// had expired when the evidence was taken. Every mTLS handshake of the proxy then fails, so the
// findings about failing TLS handshakes (MESH0203, MESH0801) defer to the CertExpiryRule's
// MESH0902, which carries their evidence and rate. Without a known capture time nothing defers:
// the certificate may have been valid when the evidence was taken.
func (s *Snapshot) expiredIdentity() bool {
	if s.Now.IsZero() || s.captureTimeUnknown() {
		return false
	}
	for _, h := range heldCerts(s) {
		if h.kind != certOther && !h.NotAfter.After(s.Now) {
			return true
		}
	}
	return false
}

// tlsFailures measures the TLS handshakes that failed on this proxy: the TLS failure counters of
// its upstream clusters and listeners, and its access-log lines with a TLS error at connect.
// Clusters whose TLS mode cannot work with their endpoints are left out (MESH0802 explains
// them), and so are handshakes answered in plaintext (WRONG_VERSION_NUMBER). The rate is the
// counters' or the lines', whichever is larger.
func (s *Snapshot) tlsFailures() (float64, []Evidence) {
	var total Measure
	var where []string
	add := func(name string, read func(stat string) (Measure, bool)) {
		found := false
		for _, sl := range tlsStatLabels {
			if m, ok := read(sl.stat); ok && m.Value > 0 {
				total.Value, total.Rate = total.Value+m.Value, total.Rate+m.Rate
				total.Interval, total.Span = m.Interval, m.Span
				found = true
			}
		}
		if found {
			where = append(where, name)
		}
	}
	for _, c := range statsClusterNames(s) {
		if !s.tlsModeMismatch(c) {
			add("cluster "+c, func(stat string) (Measure, bool) { return s.ClusterCounter(c, stat) })
		}
	}
	for _, id := range tlsListenerIDs(s) {
		add("listener "+listenerAddress(id), func(stat string) (Measure, bool) { return s.Counter("listener_" + id + "_" + stat) })
	}
	var ev []Evidence
	if total.Value > 0 {
		listed := where[:min(len(where), maxListedHosts)]
		total.Source = fmt.Sprintf("%s ssl.connection_error and ssl.fail_verify_* of %s", orDefault(s.StatsFile, "stats"), strings.Join(listed, ", "))
		if len(where) > len(listed) {
			total.Source += fmt.Sprintf(" and %d more", len(where)-len(listed))
		}
		ev = append(ev, total.Evidence("TLS handshakes that failed on this proxy"))
	}
	lines := s.LogEntries(func(e *envoyadmin.AccessLogEntry) bool {
		if !isConnectFailure(e) || isWrongVersion(e) || s.tlsModeMismatch(e.UpstreamCluster) {
			return false
		}
		cause, _ := connectFailureCause(e)
		return cause == causeTLS
	})
	if len(lines) > 0 {
		_, sample := connectFailureCause(&lines[0])
		where := "access.log"
		if lines[0].Line > 0 {
			where = fmt.Sprintf("access.log line %d", lines[0].Line)
		}
		ev = append(ev, s.logEvidence("access-log lines with UF and a TLS error", len(lines)),
			Evidence{Label: "transport failure reason", Text: sample, Source: where + " %UPSTREAM_TRANSPORT_FAILURE_REASON%"})
	}
	rate := 0.0
	if total.Value > 0 {
		rate = total.Rate
	}
	return round(max(rate, s.logRate(len(lines))), 3), ev
}
