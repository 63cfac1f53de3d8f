package envoyadmin

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-mesh/kubectl-mesh/internal/lazyregexp"
)

// ParseCerts reads the certificates a proxy holds from any of the documents that carry them:
// GET /certs ({"certificates":[{"ca_cert":[...],"cert_chain":[...]}]}), a whole /config_dump
// (its SecretsConfigDump entries in configs[]), or a SecretsConfigDump on its own. Private keys
// are never read. A document of none of these shapes is an error. See CertsFromSecretsDump for
// what happens to secrets whose certificates cannot be decoded.
func ParseCerts(data []byte) ([]Cert, error) {
	top, err := looseObject(data)
	if err != nil {
		if certs := certsFromExcerpt(data); len(certs) > 0 {
			return certs, nil
		}
		return nil, fmt.Errorf("certs: %w", err)
	}
	if raw, ok := top["certificates"]; ok {
		return certsFromAdminCerts(raw)
	}
	if raw, ok := top["configs"]; ok {
		var configs []json.RawMessage
		if err := json.Unmarshal(raw, &configs); err != nil {
			return nil, fmt.Errorf("config dump configs: %w", err)
		}
		certs := []Cert{}
		var errs []error
		for _, c := range configs {
			obj, err := looseObject(c)
			if err != nil || !strings.HasSuffix(looseString(obj["@type"]), "SecretsConfigDump") {
				continue
			}
			got, err := CertsFromSecretsDump(c)
			certs = append(certs, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		return certs, errors.Join(errs...)
	}
	if isSecretsDump(top) {
		return CertsFromSecretsDump(data)
	}
	return nil, errors.New("certs: neither a /certs response, a config dump nor a SecretsConfigDump")
}

func isSecretsDump(top map[string]json.RawMessage) bool {
	if strings.HasSuffix(looseString(top["@type"]), "SecretsConfigDump") {
		return true
	}
	for _, k := range []string{"staticsecrets", "dynamicactivesecrets", "dynamicwarmingsecrets"} {
		if _, ok := top[k]; ok {
			return true
		}
	}
	return false
}

// adminCertJSON is admin.v3.Certificate after looseKeysJSON.
type adminCertJSON struct {
	CACert    []certDetailsJSON `json:"cacert"`
	CertChain []certDetailsJSON `json:"certchain"`
}

type certDetailsJSON struct {
	Path            string `json:"path"`
	SerialNumber    string `json:"serialnumber"`
	SubjectAltNames []struct {
		URI       string `json:"uri"`
		DNS       string `json:"dns"`
		IPAddress string `json:"ipaddress"`
	} `json:"subjectaltnames"`
	DaysUntilExpiration *looseInt `json:"daysuntilexpiration"`
	ValidFrom           string    `json:"validfrom"`
	ExpirationTime      string    `json:"expirationtime"`
}

func certsFromAdminCerts(raw json.RawMessage) ([]Cert, error) {
	norm, err := looseKeysJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("/certs: %w", err)
	}
	var entries []adminCertJSON
	if err := json.Unmarshal(norm, &entries); err != nil {
		return nil, fmt.Errorf("/certs: %w", err)
	}
	certs := []Cert{}
	for _, e := range entries {
		for _, d := range e.CACert {
			certs = append(certs, certFromDetails(d, true))
		}
		for _, d := range e.CertChain {
			certs = append(certs, certFromDetails(d, false))
		}
	}
	return certs, nil
}

func certFromDetails(d certDetailsJSON, ca bool) Cert {
	c := Cert{
		Secret:              d.Path,
		CA:                  ca,
		SerialNumber:        strings.ToLower(d.SerialNumber),
		DaysUntilExpiration: -1,
	}
	for _, san := range d.SubjectAltNames {
		for _, v := range []string{san.URI, san.DNS, san.IPAddress} {
			if v != "" {
				c.SubjectAltNames = append(c.SubjectAltNames, v)
			}
		}
	}
	if d.DaysUntilExpiration != nil {
		c.DaysUntilExpiration = int64(*d.DaysUntilExpiration)
	}
	c.NotBefore = certTimestamp(d.ValidFrom)
	c.NotAfter = certTimestamp(d.ExpirationTime)
	return c
}

// certTimestamp reads a protobuf Timestamp in JSON ("2023-05-16T01:32:52Z"); zero if not.
func certTimestamp(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// secretsDumpJSON is admin.v3.SecretsConfigDump after looseKeysJSON. Only the certificate
// chain and the trusted CA are declared, so private keys (redacted or not) are never decoded.
type secretsDumpJSON struct {
	StaticSecrets        []secretEntryJSON `json:"staticsecrets"`
	DynamicActiveSecrets []secretEntryJSON `json:"dynamicactivesecrets"`
}

type secretEntryJSON struct {
	Name   string `json:"name"`
	Secret *struct {
		Name           string `json:"name"`
		TLSCertificate *struct {
			CertificateChain *dataSourceJSON `json:"certificatechain"`
		} `json:"tlscertificate"`
		ValidationContext *struct {
			TrustedCA *dataSourceJSON `json:"trustedca"`
		} `json:"validationcontext"`
	} `json:"secret"`
}

// dataSourceJSON is core.v3.DataSource; only inline data can be read from a dump.
type dataSourceJSON struct {
	InlineBytes  string `json:"inlinebytes"` // base64
	InlineString string `json:"inlinestring"`
}

// CertsFromSecretsDump returns the certificates of an SDS SecretsConfigDump section of a config
// dump (the JSON object whose @type is envoy.admin.v3.SecretsConfigDump): for each static and
// dynamic active secret, every certificate of its tls_certificate chain (CA false, in chain
// order) and of its validation_context trusted CA bundle (CA true). Warming secrets are not in
// use yet and are skipped; so are file-based data sources, which the dump cannot show. Private
// keys are never read. Secrets whose data is not base64 PEM certificates are skipped and named in
// the error, which is returned together with the certificates that did decode.
func CertsFromSecretsDump(raw []byte) ([]Cert, error) {
	norm, err := looseKeysJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("secrets config dump: %w", err)
	}
	var dump secretsDumpJSON
	if err := json.Unmarshal(norm, &dump); err != nil {
		return nil, fmt.Errorf("secrets config dump: %w", err)
	}
	certs := []Cert{}
	var errs []error
	for _, e := range append(dump.StaticSecrets, dump.DynamicActiveSecrets...) {
		if e.Secret == nil {
			continue
		}
		name := e.Name
		if name == "" {
			name = e.Secret.Name
		}
		if tc := e.Secret.TLSCertificate; tc != nil && tc.CertificateChain != nil {
			got, err := certsFromDataSource(name, false, tc.CertificateChain)
			certs = append(certs, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		if vc := e.Secret.ValidationContext; vc != nil && vc.TrustedCA != nil {
			got, err := certsFromDataSource(name, true, vc.TrustedCA)
			certs = append(certs, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return certs, errors.Join(errs...)
}

func certsFromDataSource(secret string, ca bool, ds *dataSourceJSON) ([]Cert, error) {
	var pemData []byte
	switch {
	case ds.InlineBytes != "":
		b, err := base64.StdEncoding.DecodeString(ds.InlineBytes)
		if err != nil {
			return nil, fmt.Errorf("secret %q: inline_bytes is not base64: %w", secret, err)
		}
		pemData = b
	case ds.InlineString != "":
		pemData = []byte(ds.InlineString)
	default:
		return nil, nil
	}
	certs, err := CertsFromPEM(secret, ca, pemData)
	if err != nil {
		return certs, fmt.Errorf("secret %q: %w", secret, err)
	}
	return certs, nil
}

// CertsFromPEM decodes every CERTIFICATE block of pemData and describes it as a Cert of the
// named secret. Blocks of other types (keys) are skipped unread. It is an error when no
// certificate decodes or one fails to.
func CertsFromPEM(secret string, ca bool, pemData []byte) ([]Cert, error) {
	var certs []Cert
	var errs []error
	for rest := pemData; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		certs = append(certs, certFromX509(secret, ca, x))
	}
	if len(certs) == 0 && len(errs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, errors.Join(errs...)
}

func certFromX509(secret string, ca bool, x *x509.Certificate) Cert {
	c := Cert{
		Secret:              secret,
		CA:                  ca,
		Subject:             x.Subject.String(),
		NotBefore:           x.NotBefore.UTC(),
		NotAfter:            x.NotAfter.UTC(),
		DaysUntilExpiration: -1,
	}
	if x.SerialNumber != nil {
		// Envoy's /certs prints serials as lower-case hex of the serial's bytes.
		c.SerialNumber = hex.EncodeToString(x.SerialNumber.Bytes())
		if c.SerialNumber == "" {
			c.SerialNumber = "0"
		}
	}
	for _, u := range x.URIs {
		c.SubjectAltNames = append(c.SubjectAltNames, u.String())
	}
	c.SubjectAltNames = append(c.SubjectAltNames, x.DNSNames...)
	for _, ip := range x.IPAddresses {
		c.SubjectAltNames = append(c.SubjectAltNames, ip.String())
	}
	c.SubjectAltNames = append(c.SubjectAltNames, x.EmailAddresses...)
	return c
}

// certDetailField finds one field of a /certs certificate in text that is no longer JSON (an
// excerpt with lines left out).
var certDetailField = lazyregexp.New(`"(path|serial_number|expiration_time|valid_from|days_until_expiration)"\s*:\s*"?([^",}\s]*)`)

// certsFromExcerpt reads the certificates of a /certs excerpt that does not parse as JSON:
// each "serial_number" starts one, and its expiration_time and valid_from follow it.
func certsFromExcerpt(data []byte) []Cert {
	var certs []Cert
	path := ""
	for _, m := range certDetailField.FindAllSubmatch(data, -1) {
		key, val := string(m[1]), string(m[2])
		switch key {
		case "path":
			path = val
		case "serial_number":
			certs = append(certs, Cert{Secret: path, SerialNumber: strings.ToLower(val), DaysUntilExpiration: -1})
		}
		if len(certs) == 0 {
			continue
		}
		c := &certs[len(certs)-1]
		switch key {
		case "expiration_time":
			c.NotAfter, _ = time.Parse(time.RFC3339, val)
		case "valid_from":
			c.NotBefore, _ = time.Parse(time.RFC3339, val)
		case "days_until_expiration":
			if d, err := strconv.ParseInt(val, 10, 64); err == nil {
				c.DaysUntilExpiration = d
			}
		}
	}
	out := certs[:0]
	for _, c := range certs {
		if !c.NotAfter.IsZero() {
			out = append(out, c)
		}
	}
	return out
}
