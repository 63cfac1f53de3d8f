package diagnose

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin"
)

// Thresholds of the certificate rule.
const (
	// workloadCertMinLeftShare: Istio rotates a workload certificate at about half its lifetime
	// (24h by default), so one with less than a quarter left was not rotated when it should
	// have been.
	workloadCertMinLeftShare = 0.25
	// workloadCertMinLeft applies when the lifetime is unknown (no NotBefore): a quarter of
	// Istio's default 24h.
	workloadCertMinLeft = 6 * time.Hour
	// caCertMinLeft: a root or intermediate CA needs weeks of notice to rotate safely, since
	// every workload must trust the new root before the old one expires.
	caCertMinLeft = 30 * 24 * time.Hour
)

// CertExpiryRule finds certificates the proxy holds that have expired or expire soon: its
// workload certificate (SPIFFE identity), its roots, and certificates of its own (gateways).
type CertExpiryRule struct{}

// Meta describes the rule.
func (CertExpiryRule) Meta() RuleMeta {
	return RuleMeta{
		Name:        "CertExpiryRule",
		Description: "Finds expired certificates, workload certificates Istio failed to rotate (less than a quarter of their lifetime left) and CA certificates with less than 30 days left.",
		Codes:       []Code{CodeCertExpiringSoon, CodeCertExpired},
		Needs:       []Input{InputCerts},
	}
}

// certKind says what a certificate is for, which decides how early its expiry matters.
type certKind int

const (
	certWorkload certKind = iota // the proxy's SPIFFE identity, rotated by istio-agent
	certCA                       // a trust anchor or intermediate
	certOther                    // a certificate of the user's own (a gateway's credentialName)
)

func classifyCert(c envoyadmin.Cert) certKind {
	if c.CA {
		return certCA
	}
	for _, san := range c.SubjectAltNames {
		if strings.HasPrefix(san, "spiffe://") {
			return certWorkload
		}
	}
	return certOther
}

// Check runs the rule.
func (CertExpiryRule) Check(s *Snapshot) []Finding {
	if s.Now.IsZero() {
		return nil // without the capture time nothing can be said about expiry
	}
	var out []Finding
	for _, h := range heldCerts(s) {
		if f, ok := certFinding(s, h); ok {
			out = append(out, f)
		}
	}
	return out
}

// heldCert is a certificate the proxy holds, classified.
type heldCert struct {
	envoyadmin.Cert
	kind certKind
	// inChain marks a CA certificate that came in a workload certificate's chain rather than as
	// a trust anchor.
	inChain bool
}

// heldCerts lists the certificates the proxy holds with a NotAfter, each once, classified.
func heldCerts(s *Snapshot) []heldCert {
	// A secret that holds a workload certificate holds its chain too: the other certificates in
	// it are the CAs that signed it.
	workloadSecrets := map[string]bool{}
	for _, c := range s.Certs {
		if classifyCert(c) == certWorkload {
			workloadSecrets[c.Secret] = true
		}
	}
	certs := make([]heldCert, len(s.Certs))
	for i, c := range s.Certs {
		certs[i] = heldCert{Cert: c, kind: classifyCert(c)}
		if workloadSecrets[c.Secret] && certs[i].kind == certOther {
			certs[i].kind, certs[i].CA, certs[i].inChain = certCA, true, true
		}
	}
	// The root appears both in the chain and as ROOTCA: report each certificate once, under the
	// trust anchor's secret when there is one.
	sort.SliceStable(certs, func(i, j int) bool { return certs[i].Secret == "ROOTCA" && certs[j].Secret != "ROOTCA" })
	var out []heldCert
	seen := map[string]bool{}
	for _, c := range certs {
		key := fmt.Sprintf("%s|%s", c.SerialNumber, c.NotAfter)
		if c.SerialNumber == "" {
			key = c.Secret + "|" + key
		}
		if c.NotAfter.IsZero() || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	return out
}

// envoysDaysLeft judges a certificate at the capture when the folder has no capture time but
// /certs has Envoy's own days_until_expiration, which Envoy counted when it answered: a
// pasted or old capture judged against today's clock would show every certificate expired.
// Envoy counts whole days, so a short-lived certificate (SPIFFE SVIDs of an hour or a day)
// always shows 0: its time left at capture cannot be told, it is judged against the clock, and
// what that finds is a warning, not an error. A count over a century is Envoy's underflow for
// a certificate already expired (envoyproxy/envoy#20573).
func envoysDaysLeft(s *Snapshot, c envoyadmin.Cert, lifetime, clockLeft time.Duration) (left time.Duration, byEnvoy, uncertain bool) {
	d := c.DaysUntilExpiration
	if !s.captureTimeUnknown() || d < 0 || c.NotAfter.IsZero() {
		return clockLeft, false, false
	}
	switch {
	case d > 36500:
		return -time.Hour, true, false
	case d == 0 && lifetime > 0 && lifetime < 48*time.Hour:
		return clockLeft, false, true
	}
	return time.Duration(d)*24*time.Hour + 12*time.Hour, true, false
}

func certFinding(s *Snapshot, c heldCert) (Finding, bool) {
	kind := c.kind
	left := c.NotAfter.Sub(s.Now)
	var lifetime time.Duration
	if !c.NotBefore.IsZero() && c.NotAfter.After(c.NotBefore) {
		lifetime = c.NotAfter.Sub(c.NotBefore)
	}
	left, byEnvoy, uncertain := envoysDaysLeft(s, c.Cert, lifetime, left)
	limit, limitWords := certLimit(kind, lifetime)
	if left >= limit {
		return Finding{}, false
	}
	code := CodeCertExpiringSoon
	if left <= 0 {
		code = CodeCertExpired
	}
	name, secretEv := certName(s, c)
	f := NewFinding(code, Subject{Kind: SubjectCertificate, Name: name})
	source := orDefault(s.CertsFile, "certs") + " secret " + c.Secret
	if c.SerialNumber != "" {
		source += " serial " + c.SerialNumber
	}
	f.Evidence = []Evidence{secretEv}
	if len(c.SubjectAltNames) > 0 {
		f.Evidence = append(f.Evidence, Evidence{Label: "subject alt name", Text: strings.Join(c.SubjectAltNames, ", "), Source: source})
	} else if c.Subject != "" {
		f.Evidence = append(f.Evidence, Evidence{Label: "subject", Text: c.Subject, Source: source})
	}
	f.Evidence = append(f.Evidence, Evidence{Label: "expires (NotAfter)", Text: c.NotAfter.UTC().Format(time.RFC3339), Source: source})
	if byEnvoy {
		f.Evidence = append(f.Evidence, Evidence{Label: "days until expiration, as Envoy counted them at capture", Value: float64(c.DaysUntilExpiration), Unit: UnitDays, Source: source + " days_until_expiration"})
	} else {
		f.Evidence = append(f.Evidence, expiryEvidence(s, left)...)
	}
	if lifetime > 0 {
		f.Evidence = append(f.Evidence, durationEvidence("lifetime", lifetime, "NotAfter minus NotBefore"))
	}
	what := map[certKind]string{certWorkload: "workload certificate", certCA: "CA certificate", certOther: "certificate"}[kind]
	f.Title = certTitle(s, code, what, left)
	ns, pod := s.podRef()
	switch kind {
	case certWorkload:
		f.Explanation = "istio-agent asks istiod for a new workload certificate at about half its lifetime, so it should never get this close to expiry (" + limitWords + "). It was not renewed: the agent cannot reach istiod, or istiod refuses its CSR. Once it expires, every new mTLS connection to and from this pod fails its handshake; connections opened before keep working until they close."
		if code == CodeCertExpired {
			f.Explanation = "istio-agent renews the workload certificate at about half its lifetime; this one expired, so the agent has not reached istiod (or istiod refused its CSR) for that long, and every new mTLS connection to and from this pod fails its handshake; connections opened before expiry keep working until they close, which is why traffic can still flow for a while."
			if s.captureTimeUnknown() {
				f.Explanation = "istio-agent renews the workload certificate at about half its lifetime. If the pod still holds this one, the agent has not reached istiod (or istiod refused its CSR) since it expired, and every new mTLS connection to and from the pod fails its handshake; connections opened before expiry keep working until they close."
			}
		}
		f.Fix = Fix{
			Summary: "Check that the agent reaches istiod and why renewal fails, then restart the pod so it gets a fresh certificate.",
			Command: fmt.Sprintf("istioctl proxy-config secret %s -n %s\nkubectl logs -n %s %s -c istio-proxy | grep -iE 'sds|csr|certificate|xds'\nkubectl logs -n istio-system deploy/istiod | grep -iE 'csr|sign'\nkubectl delete pod -n %s %s    # its controller starts a new pod with a new certificate", pod, ns, ns, pod, ns, pod),
		}
	case certCA:
		f.Explanation = "A CA certificate is a trust anchor: when it expires, no certificate it signed validates, and new mTLS connections fail mesh-wide (connections already open keep working until they close). Rotating a root needs every workload to trust the new root before the old one expires, which takes planning (" + limitWords + ")."
		f.Fix = Fix{
			Summary: "Plan the CA rotation now: add the new root beside the old one, roll it out to every workload, then switch signing (istio.io: Plug in CA certificates, and its root-transition steps).",
			Command: "kubectl get secret -n istio-system cacerts istio-ca-secret --ignore-not-found\nkubectl get secret -n istio-system cacerts -o jsonpath='{.data.root-cert\\.pem}' | base64 -d | openssl x509 -noout -subject -enddate",
		}
	default:
		secret := strings.TrimPrefix(secretEv.Text, "kubernetes://") // the config dump's name when /certs says <inline>
		f.Explanation = "This certificate is not issued by Istio's workload CA, so nothing in the mesh renews it: it comes from a Kubernetes secret (a gateway's credentialName) or a file, and whoever issues it (cert-manager, a person) must renew it (" + limitWords + ")."
		f.Fix = Fix{
			Summary: "Renew the certificate where it is issued and update its secret; the proxy picks up the new one through SDS without a restart.",
			Command: fmt.Sprintf("kubectl get secret -n %s %s -o jsonpath='{.data.tls\\.crt}' | base64 -d | openssl x509 -noout -subject -enddate\nkubectl get certificates.cert-manager.io -A    # when cert-manager issues it", ns, secret),
		}
	}
	if s.captureTimeUnknown() {
		f.Explanation += " The folder has no capture time (meta.json captureTimes), so this is judged against the current time: a capture taken earlier may have held the certificate while it was still valid, and the pod may hold a newer one now (the fix's first command shows it)."
		if code == CodeCertExpiringSoon {
			f.Severity = lowerSeverity(f.Severity) // the capture may predate the point where rotation was due
		}
	} else if code == CodeCertExpired && kind != certOther {
		// Every mTLS handshake of this proxy fails, so its TLS failures are this finding's
		// impact (the TLS findings defer to it, see expiredIdentity).
		rate, ev := s.tlsFailures()
		f.Evidence = append(f.Evidence, ev...)
		if len(ev) > 0 {
			f.Explanation += " The TLS failures above are what it causes; the TLS findings they would otherwise raise are folded into this one."
		}
		f.Impact = rate
	}
	if uncertain && f.Severity == SeverityError {
		// Judged against today's clock, not the capture's: it may have been valid then.
		f.Severity = SeverityWarning
		f.Evidence = append(f.Evidence, Evidence{Label: "days until expiration, as Envoy counted them at capture (whole days: a short-lived certificate always shows 0)", Value: 0, Unit: UnitDays, Source: orDefault(s.CertsFile, "certs") + " days_until_expiration"})
	}
	return f, true
}

// certLimit is how much validity a certificate of a kind must have left, and the rule in words.
func certLimit(kind certKind, lifetime time.Duration) (time.Duration, string) {
	switch {
	case kind == certWorkload && lifetime > 0:
		return time.Duration(float64(lifetime) * workloadCertMinLeftShare), "reported when less than a quarter of the lifetime is left"
	case kind == certWorkload:
		return workloadCertMinLeft, "reported when less than 6h is left"
	case kind == certOther && lifetime > 0 && time.Duration(float64(lifetime)*workloadCertMinLeftShare) < caCertMinLeft:
		return time.Duration(float64(lifetime) * workloadCertMinLeftShare), "reported when less than a quarter of the lifetime is left"
	}
	return caCertMinLeft, "reported when less than 30 days are left"
}

// durationEvidence gives a duration in hours, or in days from two days on.
func durationEvidence(label string, d time.Duration, source string) Evidence {
	if d >= 48*time.Hour {
		return Evidence{Label: label, Value: round(d.Hours()/24, 1), Unit: UnitDays, Source: source}
	}
	return Evidence{Label: label, Value: round(d.Hours(), 1), Unit: UnitHours, Source: source}
}

// roughDuration writes a duration the way a title reads best: "3h20m", "12 days".
func roughDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	case d >= time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return d.Round(time.Second).String()
}
