package meshtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mesh/kubectl-mesh/internal/testing/testcluster"
)

// Injector is an in-process stand-in for istiod's sidecar injector: a real admission webhook
// the API server calls for every pod created in a namespace labelled for injection, which adds
// an istio-proxy container as Istio's does. Tests run `kubectl mesh inject` against it.
type Injector struct {
	// URL and CABundle are the webhook's address and the PEM of the CA that signed its
	// certificate, as a MutatingWebhookConfiguration takes them.
	URL string
	// ValidationURL admits every object, as istiod's validation webhook admits valid ones:
	// Istio's istiod chart points its ValidatingWebhookConfiguration at it with
	// base.validationURL, and an upgrade of the chart makes that webhook fail closed.
	ValidationURL string
	CABundle      []byte
	// ProxyMemory is the memory the injected sidecar requests; ProxyMemoryIn overrides it per
	// namespace (a sidecar too big for the node, say). Set them before pods are created.
	ProxyMemory   string
	ProxyMemoryIn map[string]string

	srv *http.Server
}

// StartInjector serves the webhook on 127.0.0.1 and registers it for the default revision
// (istio-injection=enabled) and for revision, when not "".
func StartInjector(t testing.TB, c *testcluster.Cluster, revision string) *Injector {
	t.Helper()
	inj := ServeInjector(t)
	inj.register(t, c, revision)
	return inj
}

// ServeInjector serves the webhook without registering it: for a chart's webhook configuration
// to point at (its URL ends in /REVISION, which it writes into the pods' status annotation).
func ServeInjector(t testing.TB) *Injector {
	t.Helper()
	inj, err := NewInjector()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inj.Close() })
	return inj
}

// NewInjector serves the webhook on 127.0.0.1, as ServeInjector does, until Close.
func NewInjector() (*Injector, error) {
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("injector certificate: %w", err)
	}
	inj := &Injector{CABundle: caPEM, ProxyMemory: "128Mi"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	inj.srv = &http.Server{Handler: http.HandlerFunc(inj.serve), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = inj.srv.ServeTLS(ln, "", "") }()
	inj.URL = "https://" + ln.Addr().String() + "/inject"
	inj.ValidationURL = "https://" + ln.Addr().String() + "/validate"
	return inj, nil
}

// Close stops serving the webhook.
func (inj *Injector) Close() error { return inj.srv.Close() }

func (inj *Injector) register(t testing.TB, c *testcluster.Cluster, revision string) {
	t.Helper()
	caPEM := inj.CABundle
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	hook := func(name, rev string, sel metav1.LabelSelectorRequirement, extra ...metav1.LabelSelectorRequirement) admissionregistrationv1.MutatingWebhook {
		url := inj.URL + "/" + rev
		return admissionregistrationv1.MutatingWebhook{
			Name: name, AdmissionReviewVersions: []string{"v1"}, SideEffects: &none, FailurePolicy: &fail,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: append([]metav1.LabelSelectorRequirement{sel}, extra...)},
		}
	}
	hooks := []admissionregistrationv1.MutatingWebhook{hook("namespace.sidecar-injector.istio.io", "default",
		metav1.LabelSelectorRequirement{Key: "istio-injection", Operator: metav1.LabelSelectorOpIn, Values: []string{"enabled"}})}
	if revision != "" {
		hooks = append(hooks, hook("rev.namespace.sidecar-injector.istio.io", revision,
			metav1.LabelSelectorRequirement{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{revision}},
			metav1.LabelSelectorRequirement{Key: "istio-injection", Operator: metav1.LabelSelectorOpDoesNotExist}))
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector"}, Webhooks: hooks}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// serve answers an AdmissionReview for a pod with a JSON patch that adds istio-proxy.
func (inj *Injector) serve(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	var pod corev1.Pod
	if strings.HasPrefix(r.URL.Path, "/validate") {
		// Validation: allowed, nothing to patch.
	} else if err := json.Unmarshal(review.Request.Object.Raw, &pod); err == nil && !hasProxy(&pod) && pod.Labels["sidecar.istio.io/inject"] != "false" {
		proxy := corev1.Container{
			Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.30.4",
			Args: []string{"proxy", "sidecar"},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse(inj.memory(review.Request.Namespace)),
			}},
		}
		ops := []map[string]any{{"op": "add", "path": "/spec/containers/-", "value": proxy}}
		if pod.Annotations == nil {
			ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{}})
		}
		rev := strings.TrimPrefix(r.URL.Path, "/inject/")
		status, _ := json.Marshal(map[string]any{"containers": []string{"istio-proxy"}, "revision": rev})
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations/sidecar.istio.io~1status", "value": string(status)})
		if pod.Labels == nil {
			ops = append(ops, map[string]any{"op": "add", "path": "/metadata/labels", "value": map[string]string{}})
		}
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/labels/istio.io~1rev", "value": rev})
		patch, _ := json.Marshal(ops)
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	review.Response = resp
	review.Request = nil
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(review)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

func (inj *Injector) memory(ns string) string {
	if m, ok := inj.ProxyMemoryIn[ns]; ok {
		return m
	}
	return inj.ProxyMemory
}

func hasProxy(p *corev1.Pod) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == "istio-proxy" {
			return true
		}
	}
	return false
}

// selfSigned makes a serving certificate for 127.0.0.1, its own CA.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sidecar-injector"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return cert, certPEM, nil
}
