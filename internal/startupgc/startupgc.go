// Package startupgc keeps the garbage collector from running before a kubectl-mesh process has
// built what every command builds at start-up. Import it for its init, from main only:
//
//	import _ "github.com/kubectl-mesh/kubectl-mesh/internal/startupgc"
//
// Package initialization allocates 3.4 MB that stays live until exit (protobuf's registry of
// go-control-plane's types, client-go's scheme, their validation patterns), and Go's first
// collection is due when the heap reaches about 3.4 MB of its 4 MB goal at GOGC=100. So `version`,
// completion and every other short command ran one collection during init that found almost
// nothing to free, beside the inits it slowed: about 2 ms of CPU in a 12 ms `version`
// (GODEBUG=gctrace=1 shows it; the start-up baseline, 2.0 MB at init, runs none).
//
// init sets GOGC=200 until that first collection, whose goal is then 8 MB: a command that never
// holds that much runs none, and one that does starts collecting at twice the heap. The first
// collection's end puts GOGC back to 100, so a long command (a 500-pod sweep) paces its heap as
// Go's default does, and its peak memory is not raised. GOGC set in the environment is obeyed
// as it is.
//
// This is a package init because main runs after every package's init, where the collection
// came. Go runs package inits in import-path order as soon as their imports' have run, so this
// one does not run first, but it runs before the bulk: in kubectl-mesh, after 0.47 MB of the
// 3.0 MB that inits allocate (GODEBUG=inittrace=1), before client-go's scheme and every
// go-control-plane package. cmd/kubectl-mesh's TestVersionRunsNoCollection keeps it so.
package startupgc

import (
	"os"
	"runtime"
	"runtime/debug"
)

// Percent is GOGC until the first collection; Go's default applies after it.
const Percent = 200

func init() {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	old := debug.SetGCPercent(Percent)
	// The first collection finds this unreachable, and its cleanup restores the default. It is
	// 32 bytes so that it has an allocation of its own (the tiny allocator, which packs objects
	// under 16 bytes together, could keep it alive with a neighbour).
	runtime.AddCleanup(new([32]byte), func(gogc int) { debug.SetGCPercent(gogc) }, old)
}
