package mtls

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-mesh/kubectl-mesh/install/apply"
	"github.com/kubectl-mesh/kubectl-mesh/install/nodes"
)

// mtls.Run's decisions on a fake API server, in milliseconds, with its sidecars given through
// Options.Sample and Options.ConfigDump: STRICT refused while plaintext clients are seen or
// cannot be ruled out, applied when forced or when there are none, PERMISSIVE without the
// guard, dry runs that change nothing, a second run that changes nothing, and the check of the
// sidecars' listeners afterwards. plugins/mtls runs the same engine on the test control plane,
// with replayed sidecars behind real port-forwards.

func TestRunDecisions(t *testing.T) {
	inMesh := func(modes ...string) *sidecar {
		return &sidecar{flows: []flow{{srcNS: "shop", src: "productpage-v1", requests: 50}}, modes: modes}
	}
	plaintext := func(modes ...string) *sidecar {
		sc := inMesh(modes...)
		sc.flows = append(sc.flows, flow{requests: 40, plaintext: true})
		return sc
	}
	fromFront := func(modes ...string) *sidecar {
		return &sidecar{flows: []flow{{srcNS: "front", src: "web-v1", requests: 30}}, modes: modes}
	}
	unreadable := &sidecar{err: errors.New("port-forward: pod not found"), modes: []string{ModePermissive}}
	meshed := []runtime.Object{pod("shop", "reviews-0", true), pod("shop", "ratings-0", true)}
	// Pods without a sidecar the guard must not count: outside the namespaces that call shop,
	// the control plane's own, kubectl mesh nodes' probe, and pods not running.
	bystanders := []runtime.Object{pod("batch", "job-0", false), pod(RootNamespace, "istiod-0", false), pod("kube-system", "coredns-0", false)}
	probe := pod("shop", "probe-0", false)
	probe.Labels[nodes.ProbeLabel] = nodes.ProbeValue
	pending := pod("shop", "curl-1", false)
	pending.Status.Phase = corev1.PodPending
	bystanders = append(bystanders, probe, pending)
	theirs := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": Name, "namespace": "shop"}, "spec": map[string]any{"mtls": map[string]any{"mode": ModePermissive}}}}

	for _, tc := range []struct {
		name     string
		o        Options
		sidecars map[string]*sidecar
		extra    []runtime.Object
		// what the engine decides
		refused   bool
		err       string
		clients   []string
		unsampled []string
		action    apply.Action
		stored    string // the PeerAuthentication's mode after the run, "none" for none
		storedNS  string
		verified  map[string]string // pod: mode seen; OK when it is the mode set
		sampled   bool
	}{
		{name: "STRICT with only mTLS clients: applied and verified",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    bystanders, action: apply.Created, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": ModeStrict, "shop/reviews-0": ModeStrict}},
		{name: "called by the ingress gateway: istiod, without a sidecar beside it, is no client",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": {flows: []flow{{srcNS: RootNamespace, src: "istio-ingressgateway", requests: 10}}, modes: []string{ModeStrict}}, "shop/ratings-0": inMesh(ModeStrict)},
			extra:    bystanders, action: apply.Created, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": ModeStrict, "shop/reviews-0": ModeStrict}},
		{name: "plaintext requests seen: refused",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": plaintext(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			refused:  true, clients: []string{"not in the mesh (no identity)"}, stored: "none", sampled: true},
		{name: "a pod without a sidecar in a namespace that calls: refused",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": fromFront(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    []runtime.Object{pod("front", "curl-0", false), pod("front", "web-0", true)},
			refused:  true, clients: []string{"pod front/curl-0"}, stored: "none", sampled: true},
		{name: "a pod without a sidecar in the namespace itself: refused",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    []runtime.Object{pod("shop", "curl-0", false)},
			refused:  true, clients: []string{"pod shop/curl-0"}, stored: "none", sampled: true},
		{name: "a sidecar that cannot be sampled: refused",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": unreadable},
			refused:  true, unsampled: []string{"shop/ratings-0"}, stored: "none", sampled: true},
		{name: "forced over plaintext clients: applied, the clients still named",
			o:        Options{Namespace: "shop", Mode: ModeStrict, Force: true},
			sidecars: map[string]*sidecar{"shop/reviews-0": plaintext(ModeStrict), "shop/ratings-0": unreadable},
			extra:    []runtime.Object{pod("shop", "curl-0", false)},
			clients:  []string{"not in the mesh (no identity)", "pod shop/curl-0"}, unsampled: []string{"shop/ratings-0"},
			action: apply.Created, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": ModePermissive, "shop/reviews-0": ModeStrict}},
		{name: "PERMISSIVE: no guard, applied and verified",
			o:        Options{Namespace: "shop", Mode: ModePermissive},
			sidecars: map[string]*sidecar{"shop/reviews-0": plaintext(ModePermissive), "shop/ratings-0": unreadable},
			extra:    []runtime.Object{pod("shop", "curl-0", false)},
			action:   apply.Created, stored: ModePermissive,
			verified: map[string]string{"shop/ratings-0": ModePermissive, "shop/reviews-0": ModePermissive}},
		{name: "istiod pushes the mode after a while: verified on a later read",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModePermissive, ModePermissive, ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			action:   apply.Created, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": ModeStrict, "shop/reviews-0": ModeStrict}},
		{name: "a sidecar that never gets the mode: applied, not verified",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModePermissive), "shop/ratings-0": {modes: []string{ModeStrict}, dumpErr: errors.New("connection refused")}},
			action:   apply.Created, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": "unread: config dump of shop/ratings-0: connection refused", "shop/reviews-0": ModePermissive}},
		{name: "server dry run: checked, nothing stored or verified",
			o:        Options{Namespace: "shop", Mode: ModeStrict, DryRun: apply.DryRunServer},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			action:   apply.WouldCreate, stored: "none", sampled: true},
		{name: "client dry run: printed, nothing read",
			o:      Options{Namespace: "shop", Mode: ModeStrict, DryRun: apply.DryRunClient},
			action: apply.Printed, stored: "none"},
		{name: "another tool's PeerAuthentication: not overwritten",
			o:        Options{Namespace: "shop", Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    []runtime.Object{theirs}, err: apply.ErrNotOurs.Error(), stored: ModePermissive, sampled: true},
		{name: "another tool's PeerAuthentication, --force-conflicts: taken over",
			o:        Options{Namespace: "shop", Mode: ModeStrict, ForceConflicts: true},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    []runtime.Object{theirs}, action: apply.Configured, stored: ModeStrict, sampled: true,
			verified: map[string]string{"shop/ratings-0": ModeStrict, "shop/reviews-0": ModeStrict}},
		{name: "the mesh: every namespace's pods without a sidecar count, but Kubernetes' and Istio's own",
			o:        Options{Mesh: true, Mode: ModeStrict},
			sidecars: map[string]*sidecar{"shop/reviews-0": inMesh(ModeStrict), "shop/ratings-0": inMesh(ModeStrict)},
			extra:    bystanders, refused: true, clients: []string{"pod batch/job-0"}, stored: "none", storedNS: RootNamespace, sampled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMesh(tc.sidecars, append(slices.Clone(meshed), tc.extra...)...)
			var progress bytes.Buffer
			tc.o.Progress = &progress
			res, err := Run(context.Background(), m.options(tc.o))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			ns := tc.storedNS
			if ns == "" {
				ns = "shop"
			}
			pa := m.peerAuthentication(t, ns)
			if got := modeOf(pa); got != tc.stored {
				t.Errorf("PeerAuthentication %s/%s: mode %s, want %s", ns, Name, got, tc.stored)
			}
			if pa != nil && tc.action != "" && !apply.IsOurs(pa) {
				t.Errorf("applied without the managed-by label: %v", pa.GetLabels())
			}
			if len(m.sampled) > 0 != tc.sampled {
				t.Errorf("sampled %v, want sampling %v", m.sampled, tc.sampled)
			}
			if tc.sampled && len(m.sampled) == 1 && !slices.Equal(m.sampled[0], []string{"shop/ratings-0", "shop/reviews-0"}) {
				t.Errorf("sampled %v: the running pods with a sidecar", m.sampled[0])
			}
			if res == nil {
				return
			}
			if res.Refused != tc.refused {
				t.Errorf("refused %v, want %v (clients %+v, unsampled %v)", res.Refused, tc.refused, res.Clients, res.Unsampled)
			}
			if got := sources(res.Clients); !slices.Equal(got, tc.clients) {
				t.Errorf("plaintext clients %q, want %q", got, tc.clients)
			}
			if !slices.Equal(res.Unsampled, tc.unsampled) {
				t.Errorf("unsampled %v, want %v", res.Unsampled, tc.unsampled)
			}
			for _, u := range res.Unsampled {
				if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, u) && strings.Contains(w, tc.sidecars[u].err.Error()) }) {
					t.Errorf("no warning says why %s was not sampled: %q", u, res.Warnings)
				}
			}
			switch {
			case tc.action == "" && res.Applied != nil:
				t.Errorf("applied %v, want nothing applied", *res.Applied)
			case tc.action != "" && (res.Applied == nil || res.Applied.Action != tc.action):
				t.Errorf("applied %v, want %s", res.Applied, tc.action)
			}
			got := map[string]string{}
			for _, v := range res.Verified {
				got[v.Pod] = v.Mode
				if v.OK != (v.Mode == tc.o.Mode) {
					t.Errorf("verification of %s: mode %s, ok %v", v.Pod, v.Mode, v.OK)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.verified) {
				t.Errorf("verified %v, want %v", got, tc.verified)
			}
		})
	}
}

// A plaintext client is reported with its destination and its rate over the window, from the
// sidecar's inbound counters: one client however many series (response codes) it has.
func TestPlaintextClientRate(t *testing.T) {
	m := newMesh(map[string]*sidecar{"shop/reviews-0": {flows: []flow{{requests: 40, plaintext: true}, {requests: 20, plaintext: true, code: "503"}, {srcNS: "front", src: "web-v1", requests: 30, plaintext: true}}}},
		pod("shop", "reviews-0", true))
	res, err := Run(context.Background(), m.options(Options{Namespace: "shop", Mode: ModeStrict}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Client{
		{Source: "front/web-v1", Destination: "shop/reviews-v1", RequestsPerSecond: 30 / window.Seconds()},
		{Source: "not in the mesh (no identity)", Destination: "shop/reviews-v1", RequestsPerSecond: (40 + 20) / window.Seconds()},
	}
	if len(res.Clients) != len(want) {
		t.Fatalf("clients %+v, want %+v", res.Clients, want)
	}
	for i, c := range res.Clients {
		if c.Source != want[i].Source || c.Destination != want[i].Destination || c.RequestsPerSecond != want[i].RequestsPerSecond || !strings.Contains(c.Evidence, "shop/reviews-0") {
			t.Errorf("client %d: %+v, want %+v", i, c, want[i])
		}
	}
}

// A second run changes nothing: the same apply is unchanged and the object is not written.
func TestRerunUnchanged(t *testing.T) {
	m := newMesh(map[string]*sidecar{"shop/reviews-0": {modes: []string{ModeStrict}}}, pod("shop", "reviews-0", true))
	o := m.options(Options{Namespace: "shop", Mode: ModeStrict})
	first, err := Run(context.Background(), o)
	if err != nil || first.Applied == nil || first.Applied.Action != apply.Created {
		t.Fatalf("first run: %+v %v", first, err)
	}
	rv := m.peerAuthentication(t, "shop").GetResourceVersion()
	second, err := Run(context.Background(), o)
	if err != nil || second.Applied == nil || second.Applied.Action != apply.Unchanged || second.Refused {
		t.Fatalf("second run: %+v %v", second, err)
	}
	if got := m.peerAuthentication(t, "shop").GetResourceVersion(); got != rv {
		t.Errorf("the second run wrote the object: resource version %s -> %s", rv, got)
	}
	if len(second.Verified) != 1 || !second.Verified[0].OK {
		t.Errorf("second run verified %+v", second.Verified)
	}
}

// A gateway runs istio-proxy too, as a router: it has no inbound listener for a
// PeerAuthentication to change and reports its requests as their source, so it is neither
// sampled for plaintext clients nor verified.
func TestGatewayIsNoSidecar(t *testing.T) {
	gw := pod(RootNamespace, "istio-ingressgateway-0", true)
	gw.Spec.Containers = gw.Spec.Containers[1:]
	gw.Spec.Containers[0].Args = []string{"proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"}
	sc := pod("shop", "reviews-0", true)
	sc.Spec.Containers[1].Args = []string{"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"}
	m := newMesh(map[string]*sidecar{
		"shop/reviews-0": {flows: []flow{{srcNS: RootNamespace, src: "istio-ingressgateway", requests: 10}}, modes: []string{ModeStrict}},
		RootNamespace + "/istio-ingressgateway-0": {modes: []string{"no inbound listener"}},
	}, gw, sc)
	res, err := Run(context.Background(), m.options(Options{Mesh: true, Mode: ModeStrict}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Refused || res.Applied == nil || len(m.sampled) != 1 || !slices.Equal(m.sampled[0], []string{"shop/reviews-0"}) {
		t.Errorf("refused %v, applied %v, sampled %v", res.Refused, res.Applied, m.sampled)
	}
	if len(res.Verified) != 1 || res.Verified[0].Pod != "shop/reviews-0" || !res.Verified[0].OK {
		t.Errorf("verified %+v", res.Verified)
	}
}
