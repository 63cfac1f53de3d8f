package testcluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// frontProxyName is the CN the API server accepts request headers from.
const frontProxyName = "front-proxy-client"

// pki holds the file paths of the cluster's self-made credentials and the admin client
// certificate in memory (for the kubeconfig and rest.Config).
type pki struct {
	caCert, caKey         string // CA that signs everything and that the apiserver trusts for clients
	servingCert, servKey  string // kube-apiserver's serving certificate
	proxyCert, proxyKey   string // front-proxy client certificate for aggregated APIs
	saKey, saPub          string // service-account token signing key pair
	caPEM                 []byte
	adminCert, adminKey   []byte // client certificate in system:masters
	adminUser, adminGroup string
	ca                    *x509.Certificate // kept to sign more client certificates
	caSigner              *ecdsa.PrivateKey
}

// newPKI writes a CA, a serving certificate for the apiserver, an admin client
// certificate and a service-account key pair into dir. It uses crypto/x509 rather than
// openssl so the tests need no tool beyond Go; ECDSA P-256 because key generation is
// instant, unlike RSA.
func newPKI(dir string) (*pki, error) {
	p := &pki{
		caCert: filepath.Join(dir, "ca.crt"), caKey: filepath.Join(dir, "ca.key"),
		servingCert: filepath.Join(dir, "apiserver.crt"), servKey: filepath.Join(dir, "apiserver.key"),
		proxyCert: filepath.Join(dir, "front-proxy-client.crt"), proxyKey: filepath.Join(dir, "front-proxy-client.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
		adminUser: "kubectl-mesh-test-admin", adminGroup: "system:masters",
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubectl-mesh-testcluster-ca"},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock differences
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p.caPEM, p.ca, p.caSigner = pemBytes("CERTIFICATE", caDER), ca, caKey
	if err := writeCertAndKey(p.caCert, p.caKey, caDER, caKey); err != nil {
		return nil, err
	}

	// The serving certificate covers every name a client in or out of the cluster uses
	// for the apiserver, including the first service IP of --service-cluster-ip-range.
	serving := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(serviceIP)},
	}
	if _, _, err := signLeaf(ca, caKey, serving, p.servingCert, p.servKey); err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}

	admin := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: p.adminUser, Organization: []string{p.adminGroup}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if p.adminCert, p.adminKey, err = signLeaf(ca, caKey, admin, "", ""); err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}

	// Without a request-header CA the controller-manager and scheduler log an error
	// every few hundred milliseconds about its missing content; with it, aggregated
	// APIs (such as a metrics server) work too.
	proxy := &x509.Certificate{
		SerialNumber: big.NewInt(4),
		Subject:      pkix.Name{CommonName: frontProxyName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if _, _, err := signLeaf(ca, caKey, proxy, p.proxyCert, p.proxyKey); err != nil {
		return nil, fmt.Errorf("front-proxy certificate: %w", err)
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saKeyDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saKey, pemBytes("PRIVATE KEY", saKeyDER), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.saPub, pemBytes("PUBLIC KEY", saPubDER), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// clientCert returns a client certificate and key for user in groups, which the API
// server maps to that identity (CN is the user, O the groups).
func (p *pki) clientCert(user string, groups []string) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	return signLeaf(p.ca, p.caSigner, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: user, Organization: groups},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, "", "")
}

// signLeaf creates a key and a certificate signed by the CA. With non-empty paths it
// also writes them; it always returns both as PEM.
func signLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate, certPath, keyPath string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM, keyPEM = pemBytes("CERTIFICATE", der), pemBytes("PRIVATE KEY", keyDER)
	if certPath != "" {
		if err := writeCertAndKey(certPath, keyPath, der, key); err != nil {
			return nil, nil, err
		}
	}
	return certPEM, keyPEM, nil
}

func writeCertAndKey(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pemBytes("CERTIFICATE", der), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pemBytes("PRIVATE KEY", keyDER), 0o600)
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
