package envoyadmin

import (
	"fmt"
	"iter"
	"runtime"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/kubectl-mesh/kubectl-mesh/envoyadmin/internal/unknownext"
)

// Config dumps come from every Envoy release since 2019 and from every control plane, so they
// hold types this binary does not link: v2 resources (envoy.api.v2.Cluster), and extension
// configs in Any fields (Istio's stats and metadata-exchange filters, Lua, Wasm, ...). protojson
// with the global registry fails on the first of those. dumpResolver instead maps v2 and v4alpha
// names onto the v3 types that replaced them, and resolves any other unknown type URL to an empty
// message, whose fields DiscardUnknown then skips.

// dumpTypeName returns the v3 full name for the message name of a type URL
// ("type.googleapis.com/envoy.api.v2.Cluster" -> "envoy.config.cluster.v3.Cluster").
func dumpTypeName(typeURL string) string {
	name := typeURL
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if v3, ok := dumpV2Resources[name]; ok {
		return v3
	}
	for _, p := range dumpV2Packages {
		if strings.HasPrefix(name, p[0]) {
			return p[1] + name[len(p[0]):]
		}
	}
	// v4alpha and v3alpha packages were renamed back to v3 with the same messages.
	if strings.Contains(name, ".v4alpha.") {
		return strings.Replace(name, ".v4alpha.", ".v3.", 1)
	}
	if strings.Contains(name, ".v3alpha.") {
		return strings.Replace(name, ".v3alpha.", ".v3.", 1)
	}
	return name
}

// dumpV2Resources maps the v2 top-level resources to their v3 types. Read-only.
var dumpV2Resources = map[string]string{
	"envoy.api.v2.Cluster":                  "envoy.config.cluster.v3.Cluster",
	"envoy.api.v2.Listener":                 "envoy.config.listener.v3.Listener",
	"envoy.api.v2.RouteConfiguration":       "envoy.config.route.v3.RouteConfiguration",
	"envoy.api.v2.ScopedRouteConfiguration": "envoy.config.route.v3.ScopedRouteConfiguration",
	"envoy.api.v2.ClusterLoadAssignment":    "envoy.config.endpoint.v3.ClusterLoadAssignment",
}

// dumpV2Packages maps v2 packages to the v3 packages that hold the same messages. Read-only.
var dumpV2Packages = [...][2]string{
	{"envoy.api.v2.auth.", "envoy.extensions.transport_sockets.tls.v3."},
	{"envoy.api.v2.core.", "envoy.config.core.v3."},
	{"envoy.api.v2.route.", "envoy.config.route.v3."},
	{"envoy.api.v2.listener.", "envoy.config.listener.v3."},
	{"envoy.api.v2.cluster.", "envoy.config.cluster.v3."},
	{"envoy.api.v2.endpoint.", "envoy.config.endpoint.v3."},
	{"envoy.config.filter.network.http_connection_manager.v2.", "envoy.extensions.filters.network.http_connection_manager.v3."},
	{"envoy.config.filter.network.tcp_proxy.v2.", "envoy.extensions.filters.network.tcp_proxy.v3."},
	{"envoy.admin.v2alpha.", "envoy.admin.v3."},
}

// dumpResolver is the protojson resolver for config dumps; see the comment at the top of the file.
type dumpResolver struct{}

// FindMessageByName implements protoregistry.MessageTypeResolver.
func (dumpResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return dumpResolver{}.FindMessageByURL(string(name))
}

// FindMessageByURL implements protoregistry.MessageTypeResolver.
func (dumpResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	name := protoreflect.FullName(dumpTypeName(url))
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
		return mt, nil
	}
	return dumpUnknownType, nil
}

// FindExtensionByName implements protoregistry.ExtensionTypeResolver; dumps use no extensions.
func (dumpResolver) FindExtensionByName(protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

// FindExtensionByNumber implements protoregistry.ExtensionTypeResolver.
func (dumpResolver) FindExtensionByNumber(protoreflect.FullName, protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return nil, protoregistry.NotFound
}

// dumpUnknownType is a message type without fields that stands for every type this binary does
// not link (generated, see package unknownext).
var dumpUnknownType = (*unknownext.UnknownExtension)(nil).ProtoReflect().Type()

// dumpDecoder decodes the parts of one resource; each worker has its own.
type dumpDecoder struct {
	pruner dumpPruner
	opts   protojson.UnmarshalOptions
	// warns collects the problems of the current job that did not stop it.
	warns []string
}

// warnf records a problem with part of the current resource.
func (d *dumpDecoder) warnf(format string, args ...any) {
	d.warns = append(d.warns, fmt.Sprintf(format, args...))
}

func newDumpDecoder() *dumpDecoder {
	// AllowPartial skips the required-field check, which proto3 messages never fail.
	return &dumpDecoder{opts: protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true, Resolver: dumpResolver{}}}
}

// decode unmarshals the members of raw that spec keeps into m.
func (d *dumpDecoder) decode(raw []byte, spec dumpSpec, m proto.Message) error {
	return d.decodeCapture(raw, spec, m, nil, nil)
}

// decodeCapture is decode that also returns, in got, the raw values of the top-level members
// named in capture (which spec must not keep), reading the resource once for both.
func (d *dumpDecoder) decodeCapture(raw []byte, spec dumpSpec, m proto.Message, capture []string, got [][]byte) error {
	d.pruner.capture, d.pruner.got = capture, got
	b, err := d.pruner.prune(raw, spec)
	d.pruner.capture, d.pruner.got = nil, nil
	if err != nil {
		return err
	}
	return d.opts.Unmarshal(b, m)
}

// dumpBatch is how many jobs the collector hands the workers at a time: enough to make the
// channel's cost negligible, few enough that work starts early and spreads evenly.
const dumpBatch = 32

// startWorkers starts GOMAXPROCS-1 decoding workers; the collector becomes the last one when it
// has read the whole dump (stopWorkers).
func (p *dumpParse) startWorkers() {
	p.work = make(chan []dumpJob, 64)
	for range max(1, runtime.GOMAXPROCS(0)-1) {
		p.workers.Add(1)
		go func() {
			defer p.workers.Done()
			dumpWork(p.work)
		}()
	}
}

// add queues a job.
func (p *dumpParse) add(j dumpJob) {
	if p.cur == nil {
		p.cur = make([]dumpJob, 0, dumpBatch)
	}
	p.cur = append(p.cur, j)
	if len(p.cur) == dumpBatch {
		p.flush()
	}
}

// flush hands the current batch to the workers. The collector never touches a batch again
// after handing it over; the workers write their results into it.
func (p *dumpParse) flush() {
	if len(p.cur) == 0 {
		return
	}
	p.batches = append(p.batches, p.cur)
	p.work <- p.cur
	p.cur = nil
}

// stopWorkers hands over the last batch, helps decode what is left, and waits for the workers.
func (p *dumpParse) stopWorkers() {
	p.flush()
	close(p.work)
	dumpWork(p.work)
	p.workers.Wait()
}

// jobs iterates over the jobs in dump order.
func (p *dumpParse) jobs() iter.Seq[*dumpJob] {
	return func(yield func(*dumpJob) bool) {
		for _, b := range p.batches {
			for i := range b {
				if !yield(&b[i]) {
					return
				}
			}
		}
	}
}

// dumpWork decodes the batches it receives until the channel is closed.
func dumpWork(work <-chan []dumpJob) {
	var d *dumpDecoder
	for batch := range work {
		if d == nil {
			d = newDumpDecoder()
		}
		for i := range batch {
			d.run(&batch[i])
		}
	}
}

// run decodes one job. A panic, which would otherwise kill the whole program from a worker
// goroutine, becomes a warning about that resource.
func (d *dumpDecoder) run(j *dumpJob) {
	d.warns = d.warns[:0]
	d.pruner.capture, d.pruner.got = nil, nil // in case a panic left them set
	defer func() {
		if r := recover(); r != nil {
			d.warnf("internal error, skipped: %v", r)
		}
		if len(d.warns) > 0 {
			where := j.where()
			for _, w := range d.warns {
				j.warns = append(j.warns, where+": "+w)
			}
		}
	}()
	var err error
	switch j.kind {
	case dumpKindCluster:
		j.cluster, err = d.cluster(j.raw)
		if j.cluster != nil {
			j.cluster.Source = j.source
			j.cluster.VersionInfo = j.version
		}
	case dumpKindListener:
		j.listener, j.routes, err = d.listener(j.raw)
	case dumpKindRoute:
		j.routes, err = d.routeConfig(j.raw, false)
	case dumpKindEndpoints:
		j.endpoints, err = d.endpoints(j.raw)
	case dumpKindBootstrap:
		j.bootstrap, err = d.bootstrap(j.raw)
	}
	if err != nil {
		d.warnf("skipped: %v", err)
	}
}
