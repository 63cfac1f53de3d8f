package envoyadmin

import (
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The TLS of clusters and filter chains is read from their transport sockets. Sockets are walked
// at the JSON level rather than decoded as Any, because a socket may be a v3 typed_config, a v2
// Struct config, or a wrapper (internal_upstream, tap, proxy_protocol, tcp_stats) around the
// socket that matters; only the TLS context itself goes through protojson, with its certificate
// and key bytes pruned away.

const (
	dumpUpstreamTLSType   = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	dumpDownstreamTLSType = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
)

// Istio's own identity: the SDS secrets its agent serves, and the files older releases
// (before SDS, 1.0 to 1.4) mounted from a Kubernetes secret.
const (
	istioCertSecret = "default"
	istioRootSecret = "ROOTCA"
	istioCertFile   = "/etc/certs/cert-chain.pem"
	istioRootFile   = "/etc/certs/root-cert.pem"
)

var dumpValidationSpec = dumpSpec{
	"trusted_ca":                    {"filename": nil},
	"match_subject_alt_names":       nil,
	"match_typed_subject_alt_names": nil,
}

var dumpCommonTLSSpec = dumpSpec{
	// Only whether a client certificate is configured matters, not its bytes.
	"tls_certificates":                              {"certificate_chain": {"filename": nil}},
	"tls_certificate_sds_secret_configs":            {"name": nil},
	"tls_certificate_provider_instance":             {"instance_name": nil},
	"tls_certificate_certificate_provider_instance": {"instance_name": nil},
	"validation_context":                            dumpValidationSpec,
	"validation_context_sds_secret_config":          {"name": nil},
	"combined_validation_context": {
		"default_validation_context":           dumpValidationSpec,
		"validation_context_sds_secret_config": {"name": nil},
	},
}

var dumpUpstreamTLSSpec = dumpSpec{"sni": nil, "common_tls_context": dumpCommonTLSSpec}

var dumpDownstreamTLSSpec = dumpSpec{"require_client_certificate": nil}

// dumpSocketTLS is what a transport socket says about TLS.
type dumpSocketTLS struct {
	mode string // a TLSMode* constant, for upstream sockets
	tls  bool
	sni  string
	sans []string
	// requireClientCert is the downstream context's require_client_certificate.
	requireClientCert bool
}

// dumpSocket splits a transport socket into its name, the v3 type of its config, the config (a
// v3 typed_config, or a v2 Struct config) and the socket the config wraps, if any (for
// internal_upstream, tap, proxy_protocol...). Network filters have the same shape.
func dumpSocket(ts []byte) (name, typ string, cfg, inner []byte) {
	it := dumpObject(ts)
	for it.Next() {
		switch {
		case dumpKeyIs(it.Key(), "name"):
			name = dumpString(it.Val())
		case dumpKeyIs(it.Key(), "typed_config"), dumpKeyIs(it.Key(), "config"), dumpKeyIs(it.Key(), "hidden_envoy_deprecated_config"):
			if cfg != nil {
				continue
			}
			m := it.Object()
			for m.Next() {
				switch {
				case string(m.Key()) == "@type":
					typ = dumpTypeName(dumpString(m.Val()))
				case dumpKeyIs(m.Key(), "transport_socket"):
					inner = m.Val()
				}
			}
			it.After(&m)
			cfg = it.Val()
		}
	}
	return name, typ, cfg, inner
}

// dumpTLSSocketName reports whether a socket name is Envoy's TLS socket.
func dumpTLSSocketName(name string) bool {
	return name == "envoy.transport_sockets.tls" || name == "tls"
}

// upstreamSocket classifies a cluster's transport socket.
func (d *dumpDecoder) upstreamSocket(ts []byte, depth int) (dumpSocketTLS, error) {
	name, typ, cfg, inner := dumpSocket(ts)
	if typ == dumpUpstreamTLSType || typ == "" && dumpTLSSocketName(name) {
		if dumpIsNull(cfg) {
			return dumpSocketTLS{mode: TLSModeSimple, tls: true}, nil
		}
		return d.upstreamTLSContext(cfg)
	}
	if !dumpIsNull(inner) && depth < 8 {
		return d.upstreamSocket(inner, depth+1)
	}
	// raw_buffer, or a socket type that does not do TLS itself.
	return dumpSocketTLS{mode: TLSModePlaintext}, nil
}

// upstreamTLSContext classifies an UpstreamTlsContext (v3, or a v2 tls_context).
func (d *dumpDecoder) upstreamTLSContext(raw []byte) (dumpSocketTLS, error) {
	var c tlsv3.UpstreamTlsContext
	if err := d.decode(raw, dumpUpstreamTLSSpec, &c); err != nil {
		return dumpSocketTLS{}, fmt.Errorf("upstream TLS context: %w", err)
	}
	ctx := c.GetCommonTlsContext()
	out := dumpSocketTLS{tls: true, sni: c.GetSni(), sans: dumpSANs(ctx, dumpField(raw, "common_tls_context"))}
	switch {
	case !dumpHasClientCert(ctx):
		out.mode = TLSModeSimple
	case dumpIstioCert(ctx) && dumpIstioRoot(ctx):
		out.mode = TLSModeIstioMutual
	default:
		out.mode = TLSModeMutual
	}
	return out, nil
}

// downstreamSocket classifies a filter chain's transport socket.
func (d *dumpDecoder) downstreamSocket(ts []byte, depth int) (dumpSocketTLS, error) {
	name, typ, cfg, inner := dumpSocket(ts)
	if typ == dumpDownstreamTLSType || typ == "" && dumpTLSSocketName(name) {
		if dumpIsNull(cfg) {
			return dumpSocketTLS{tls: true}, nil
		}
		return d.downstreamTLSContext(cfg)
	}
	if !dumpIsNull(inner) && depth < 8 {
		return d.downstreamSocket(inner, depth+1)
	}
	return dumpSocketTLS{}, nil
}

// downstreamTLSContext reads a DownstreamTlsContext (v3, or a v2 tls_context).
func (d *dumpDecoder) downstreamTLSContext(raw []byte) (dumpSocketTLS, error) {
	var c tlsv3.DownstreamTlsContext
	if err := d.decode(raw, dumpDownstreamTLSSpec, &c); err != nil {
		// Still TLS; whether it asks for a client certificate is what is unknown.
		return dumpSocketTLS{tls: true}, fmt.Errorf("downstream TLS context: %w", err)
	}
	return dumpSocketTLS{tls: true, requireClientCert: c.GetRequireClientCertificate().GetValue()}, nil
}

// dumpHasClientCert reports whether a TLS context presents a certificate of its own.
func dumpHasClientCert(ctx *tlsv3.CommonTlsContext) bool {
	return len(ctx.GetTlsCertificates()) > 0 || len(ctx.GetTlsCertificateSdsSecretConfigs()) > 0 ||
		ctx.GetTlsCertificateProviderInstance() != nil || ctx.GetTlsCertificateCertificateProviderInstance() != nil
}

// dumpIstioCert reports whether the certificate is the workload identity Istio's agent serves.
func dumpIstioCert(ctx *tlsv3.CommonTlsContext) bool {
	for _, s := range ctx.GetTlsCertificateSdsSecretConfigs() {
		if s.GetName() == istioCertSecret {
			return true
		}
	}
	for _, c := range ctx.GetTlsCertificates() {
		if c.GetCertificateChain().GetFilename() == istioCertFile {
			return true
		}
	}
	return false
}

// dumpIstioRoot reports whether the peer is validated against Istio's root of trust.
func dumpIstioRoot(ctx *tlsv3.CommonTlsContext) bool {
	combined := ctx.GetCombinedValidationContext()
	return ctx.GetValidationContextSdsSecretConfig().GetName() == istioRootSecret ||
		combined.GetValidationContextSdsSecretConfig().GetName() == istioRootSecret ||
		ctx.GetValidationContext().GetTrustedCa().GetFilename() == istioRootFile ||
		combined.GetDefaultValidationContext().GetTrustedCa().GetFilename() == istioRootFile
}

// dumpSANs lists the subject alt names a TLS context accepts from the peer. rawCommon is the
// context's JSON, for v2's verify_subject_alt_name, which v3 no longer has.
func dumpSANs(ctx *tlsv3.CommonTlsContext, rawCommon []byte) []string {
	var sans []string
	for _, vc := range [...]*tlsv3.CertificateValidationContext{
		ctx.GetValidationContext(), ctx.GetCombinedValidationContext().GetDefaultValidationContext(),
	} {
		for _, m := range vc.GetMatchSubjectAltNames() {
			sans = append(sans, dumpMatcherString(m, true))
		}
		for _, m := range vc.GetMatchTypedSubjectAltNames() {
			sans = append(sans, dumpMatcherString(m.GetMatcher(), true))
		}
	}
	if len(sans) == 0 {
		for _, vc := range [...][]byte{
			dumpField(rawCommon, "validation_context"),
			dumpField(dumpField(rawCommon, "combined_validation_context"), "default_validation_context"),
		} {
			it := dumpArray(dumpField(vc, "verify_subject_alt_name"))
			for it.Next() {
				if s := dumpString(it.Val()); s != "" {
					sans = append(sans, s)
				}
			}
		}
	}
	return sans
}

// dumpMatcherString renders a StringMatcher as "prefix:x", "suffix:x", "contains:x",
// "regex:x" or, for an exact match, "exact:x" (or just x when bareExact).
func dumpMatcherString(m *matcherv3.StringMatcher, bareExact bool) string {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		if bareExact {
			return p.Exact
		}
		return "exact:" + p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return "prefix:" + p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		return "suffix:" + p.Suffix
	case *matcherv3.StringMatcher_Contains:
		return "contains:" + p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		return "regex:" + p.SafeRegex.GetRegex()
	case *matcherv3.StringMatcher_Custom:
		return "custom:" + p.Custom.GetName()
	}
	return ""
}
