// Package testcluster starts a real Kubernetes control plane on 127.0.0.1 for tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok standing in for
// the kubelets of fake nodes. Port-forward, exec and logs requests go through the real
// API server to kwok, which serves them from rules (a local port, a local work directory,
// a CRI-format log file), so client-go's real code paths run end to end.
//
// The binaries come from hack/testcluster/build.sh (`make testcluster`); this package
// only starts them, so the main module never depends on k8s.io/kubernetes.
package testcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1" // first address of serviceCIDR: the `kubernetes` Service
)

// Options configure Start. The zero value gives one fake node and no kwok rules.
type Options struct {
	// KwokRules are YAML documents kwok loads from its --config file at start-up:
	// ClusterPortForward, ClusterExec, ClusterLogs and their namespaced forms (see
	// PortForwardRule, ExecRule, LogsRule). Kinds listed in KwokCRDs must not be here.
	KwokRules []string
	// KwokCRDs are kwok kinds served from CRDs instead of the config file, e.g.
	// "PortForward", "Exec", "Logs": Start applies their CRDs and tests create rules
	// with Apply while the cluster runs. A namespaced rule named like a pod overrides
	// the Cluster rule for that pod.
	KwokCRDs []string
	// Nodes is the number of fake nodes (default 1), named kwok-node-0, kwok-node-1, ...
	Nodes int
	// Timeout bounds the whole start-up (default 2 minutes; about 4 s on a warm machine).
	Timeout time.Duration
}

// withDefaults fills in the zero fields of Options.
func (o Options) withDefaults() Options {
	if o.Nodes <= 0 {
		o.Nodes = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return o
}

// Cluster is a running control plane. Its processes stop when the test ends, or, for
// StartDetached, when StopDetached is called.
type Cluster struct {
	// Dir holds the credentials, kubeconfig, etcd data and the processes' logs.
	Dir string
	// BinDir holds the binaries, kubectl included.
	BinDir string
	// Kubeconfig is the path of an admin (system:masters) kubeconfig.
	Kubeconfig string
	// Config is the admin rest.Config, with QPS and Burst raised for test set-up.
	Config *rest.Config
	// Client and Dynamic are built from Config.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Nodes are the names of the fake nodes kwok manages.
	Nodes []string
	// KwokPort is where kwok serves the kubelet API of every fake node.
	KwokPort int

	t        testing.TB // nil when detached
	detached bool
	pki      *pki
	procs    map[string]*process
}

// Start starts a control plane and returns it once the API server is ready, the
// `default` ServiceAccount exists and every fake node is Ready, so a test can create pods
// right away. It skips the test when KUBE_MESH_NO_CLUSTER=1 (outside CI) and fails it
// with what to run when the binaries are missing.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	binDir := RequireBinDir(t)
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	defer cancel()
	begin := time.Now()
	for attempt := 1; ; attempt++ {
		// TempDir before any process: cleanups run last-in first-out, so the processes are
		// stopped before their data directory is removed.
		c := &Cluster{Dir: t.TempDir(), BinDir: binDir, t: t, procs: map[string]*process{}}
		err := c.start(ctx, opts)
		if err == nil {
			t.Logf("test control plane ready in %v: %s", time.Since(begin).Round(time.Millisecond), c.Config.Host)
			return c
		}
		// freePorts' race: another process (a test package's control plane running beside
		// this one) bound a port between its pick and its use. Start again on other ports.
		if attempt < 3 && c.portTaken() {
			t.Logf("test control plane: a port was taken before it was bound (%v); starting again on others", err)
			c.stopAll()
			continue
		}
		t.Fatalf("test control plane: %v", err)
	}
}

// portTaken reports whether a process of the cluster failed to bind a port.
func (c *Cluster) portTaken() bool {
	for _, p := range c.procs {
		if p.exited() && strings.Contains(p.logTail(40), "address already in use") {
			return true
		}
	}
	return false
}

// stopAll stops the cluster's processes (a failed start's, before the next attempt).
func (c *Cluster) stopAll() {
	for _, p := range c.procs {
		p.stop()
	}
}

func (c *Cluster) start(ctx context.Context, opts Options) error {
	var err error
	if c.pki, err = newPKI(c.Dir); err != nil {
		return err
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort, kcmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]
	c.KwokPort = ports[5]

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	if err := c.run("etcd", nil,
		"--name=testcluster", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=testcluster="+peerURL,
		"--unsafe-no-fsync", // the data dies with the test; fsync only costs time
	); err != nil {
		return err
	}

	if err := c.run("kube-apiserver", nil,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+strconv.Itoa(apiPort),
		"--cert-dir="+filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file="+c.pki.servingCert, "--tls-private-key-file="+c.pki.servKey,
		"--client-ca-file="+c.pki.caCert,
		"--requestheader-client-ca-file="+c.pki.caCert, "--requestheader-allowed-names="+frontProxyName,
		"--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+c.pki.proxyCert, "--proxy-client-key-file="+c.pki.proxyKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+c.pki.saPub, "--service-account-signing-key-file="+c.pki.saKey,
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=RBAC",
		// The default reconciler publishes the advertise address in the `kubernetes`
		// Endpoints and logs errors because 127.0.0.1 is a loopback address.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		// kwok nodes have only an InternalIP (127.0.0.1); never dial a node's hostname.
		"--kubelet-preferred-address-types=InternalIP",
	); err != nil {
		return err
	}
	if err := c.writeKubeconfig("https://127.0.0.1:" + strconv.Itoa(apiPort)); err != nil {
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}

	if err := c.run("kube-controller-manager", nil,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcmPort),
		"--cert-dir="+filepath.Join(c.Dir, "kcm-certs"),
		"--leader-elect=false",
		// No pod CIDRs to hand out: kwok assigns pod IPs itself.
		"--controllers=*,-nodeipam",
		"--service-account-private-key-file="+c.pki.saKey,
		"--root-ca-file="+c.pki.caCert,
		"--cluster-signing-cert-file="+c.pki.caCert, "--cluster-signing-key-file="+c.pki.caKey,
	); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", nil,
		"--kubeconfig="+c.Kubeconfig,
		"--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--cert-dir="+filepath.Join(c.Dir, "scheduler-certs"),
		"--leader-elect=false",
	); err != nil {
		return err
	}
	if err := c.startKwok(ctx, opts); err != nil {
		return err
	}
	if err := c.createNodes(ctx, opts.Nodes); err != nil {
		return err
	}
	return c.waitUsable(ctx)
}

// run starts one binary of BinDir; see runBin.
func (c *Cluster) run(name string, env []string, args ...string) error {
	return c.runBin(filepath.Join(c.BinDir, name), name, env, args...)
}

// runBin starts bin and remembers it for the readiness loops' crash checks. A test's
// process stops with the test (and dies with the test binary); a detached cluster's runs
// in a session of its own and is recorded for StopDetached.
func (c *Cluster) runBin(bin, name string, env []string, args ...string) error {
	attr := sysProcAttr()
	if c.detached {
		attr = detachedProcAttr()
	}
	p, err := startProcess(c.Dir, bin, name, env, attr, args...)
	if err != nil {
		return err
	}
	c.procs[name] = p
	if !c.detached {
		p.stopOnCleanup(c.t)
		return nil
	}
	if err := recordPID(c.Dir, p); err != nil {
		p.stop() // not recorded: StopDetached could not find it
		return err
	}
	return nil
}

// crashed returns an error for the first process that has exited: the control plane
// programs all run until stopped, so any exit is a failure worth reporting at once.
func (c *Cluster) crashed() error {
	for _, p := range c.procs {
		if err := p.exitError(); err != nil {
			return err
		}
	}
	return nil
}

// writeKubeconfig writes an admin kubeconfig with embedded credentials and builds the
// clients from it, so tests, kubectl and kwok all use the same identity.
func (c *Cluster) writeKubeconfig(server string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.pki.adminCert, ClientKeyData: c.pki.adminKey,
	}
	cfg.Contexts["testcluster"] = &clientcmdapi.Context{Cluster: "testcluster", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "testcluster"
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return err
	}
	rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 100, 200 // client-go's 5/10 would throttle bulk set-up
	c.Config = rc
	if c.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	c.Dynamic, err = dynamic.NewForConfig(rc)
	return err
}

// UserConfig returns a rest.Config that authenticates as user in groups, with only the
// permissions RBAC grants them: for tests of what the tool does when exec, port-forward
// or a CRD read is forbidden.
func (c *Cluster) UserConfig(user string, groups ...string) (*rest.Config, error) {
	cert, key, err := c.pki.clientCert(user, groups)
	if err != nil {
		return nil, err
	}
	rc := rest.AnonymousClientConfig(c.Config)
	rc.CertData, rc.KeyData = cert, key
	return rc, nil
}

// UserKubeconfig writes a kubeconfig that authenticates as user in groups (see UserConfig)
// and returns its path: for running the built commands as a user with only what RBAC grants.
func (c *Cluster) UserKubeconfig(user string, groups ...string) (string, error) {
	cert, key, err := c.pki.clientCert(user, groups)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testcluster"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["testcluster"] = &clientcmdapi.Context{Cluster: "testcluster", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "testcluster"
	path := filepath.Join(c.Dir, "kubeconfig-"+user)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. Another program
// could take one before the control plane binds it; that race is rare and shows up as a
// bind error in the failing process's log.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // held until all are picked, so the n ports differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// KubectlEnv returns the environment for running kubectl (or `kubectl mesh`) against
// the cluster: KUBECONFIG set and the harness's kubectl first on PATH.
func (c *Cluster) KubectlEnv() []string {
	return append(os.Environ(), "KUBECONFIG="+c.Kubeconfig,
		"PATH="+c.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// poll calls f every interval until it returns true, an error, a control plane process
// exits, or ctx ends.
func (c *Cluster) poll(ctx context.Context, what string, interval time.Duration, f func(context.Context) (bool, error)) error {
	var last error
	for {
		if err := c.crashed(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		done, err := f(ctx)
		if err != nil {
			last = err
		} else if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}
