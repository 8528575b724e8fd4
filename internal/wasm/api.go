// Package wasm runs WebAssembly functions in-process on wazero.
//
// A Runtime owns a wazero runtime (modules are rewritten at load to yield
// to the host after bounded work, so a runaway guest is always stopped at
// its deadline and never freezes the process; see schedule.go and
// internal/wasm/rewrite) and an optional on-disk cache of compiled
// code. Runtime.Load validates and compiles a function's module once, detects
// its ABI from its exports and returns a Module, which is an http.Handler:
//
//   - WAGI (CGI 1.1 over WASI preview 1): a module exporting _start. Every
//     request gets a fresh instance; the request is passed in CGI environment
//     variables and on stdin, the CGI response is read from stdout, stderr
//     goes to the function log.
//   - Reactor (Isotope's own ABI, docs/reactor-abi.md): a module exporting
//     _initialize and isotope_handle. Instances are initialized once, kept in
//     a per-function pool and serve one request at a time.
//
// Limits (memory, deadline, body sizes) apply to every request; a trap or a
// timeout only ever costs the instance that caused it.
package wasm

import (
	"context"
	"io"
	"time"
)

// ABI is the calling convention a module was detected to speak.
type ABI int

const (
	// ABIUnknown is the zero value; no loaded Module has it.
	ABIUnknown ABI = iota
	// ABIWAGI is CGI over WASI preview 1: _start per request.
	ABIWAGI
	// ABIReactor is Isotope's reactor ABI: _initialize once, then
	// isotope_handle per request on pooled instances.
	ABIReactor
)

func (a ABI) String() string {
	switch a {
	case ABIWAGI:
		return "wagi"
	case ABIReactor:
		return "reactor"
	}
	return "unknown"
}

// Config configures a Runtime.
type Config struct {
	// CacheDir keeps compiled machine code across restarts, keyed by the
	// module's sha256 and the wazero version. "" keeps it in memory only.
	CacheDir string
	// CompilationWorkers is the number of goroutines one compile may use
	// (wazero experimental.WithCompilationWorkers). 0 means 2.
	CompilationWorkers int
	// MaxMemoryPages is the hard ceiling of any function's linear memory in
	// 64 KiB pages (wazero WithMemoryLimitPages). 0 means 65536 (4 GiB);
	// per-function Limits.MemoryPages are enforced below it.
	MaxMemoryPages uint32
	// KeepIdleCompiled is how many compiled modules no Module uses any
	// more stay in memory for a later Load (a function scaled to zero and
	// back). 0 means 8; negative frees code with its last Module.
	KeepIdleCompiled int
	// GuestSlots is how many guest calls run at once, process-wide
	// (schedule.go). 0 means GOMAXPROCS: guests never hold every P, and
	// the API, the router and timers keep their turn however many
	// guests loop.
	GuestSlots int
	// GuestQueue is how many guest calls may wait for a slot; past it a
	// request is answered 429. 0 means DefaultGuestQueue.
	GuestQueue int
}

// Limits bound what one function may use. Zero fields take the defaults
// documented on each field (see Limits.WithDefaults).
type Limits struct {
	// MemoryPages caps each instance's linear memory in 64 KiB pages.
	// Default 2048 (128 MiB). A memory.grow past it fails inside the guest.
	MemoryPages uint32
	// Timeout is the deadline of one request (Fission functionTimeout).
	// Default 60s. Past it the instance is stopped and the client gets 504.
	Timeout time.Duration
	// MaxRequestBody is the largest request body accepted (else 413).
	// Default 32 MiB.
	MaxRequestBody int64
	// MaxResponseBody is the largest response body a guest may produce
	// (else 502). Default 32 MiB.
	MaxResponseBody int64
	// MaxInstances caps the live instances of a reactor function, that is
	// its concurrency; more requests wait for a free instance until their
	// deadline. Default 16. For WAGI it caps concurrent requests likewise.
	MaxInstances int
	// WarmInstances is how many reactor instances are initialized at Load
	// and kept ready afterwards. Default 1; negative means none.
	WarmInstances int
	// MaxRequestsPerInstance recycles a reactor instance after this many
	// requests. Default 10000.
	MaxRequestsPerInstance int
	// MaxMemoryBytes recycles a reactor instance whose linear memory has
	// grown past this size after a request. Default 64 MiB.
	MaxMemoryBytes uint64
}

// Default limits.
const (
	DefaultMemoryPages            = 2048
	DefaultTimeout                = 60 * time.Second
	DefaultMaxRequestBody         = 32 << 20
	DefaultMaxResponseBody        = 32 << 20
	DefaultMaxInstances           = 16
	DefaultWarmInstances          = 1
	DefaultMaxRequestsPerInstance = 10000
	DefaultMaxMemoryBytes         = 64 << 20
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxRequestBody <= 0 {
		l.MaxRequestBody = DefaultMaxRequestBody
	}
	if l.MaxResponseBody <= 0 {
		l.MaxResponseBody = DefaultMaxResponseBody
	}
	if l.MaxInstances <= 0 {
		l.MaxInstances = DefaultMaxInstances
	}
	if l.WarmInstances == 0 {
		l.WarmInstances = DefaultWarmInstances
	}
	if l.WarmInstances < 0 {
		l.WarmInstances = 0
	}
	if l.WarmInstances > l.MaxInstances {
		l.WarmInstances = l.MaxInstances
	}
	if l.MaxRequestsPerInstance <= 0 {
		l.MaxRequestsPerInstance = DefaultMaxRequestsPerInstance
	}
	if l.MaxMemoryBytes == 0 {
		l.MaxMemoryBytes = DefaultMaxMemoryBytes
	}
	return l
}

// LoadRequest names one function's module and how to run it.
type LoadRequest struct {
	// Key identifies the module bytes, normally the deploy archive's
	// sha256. Loads with the same Key share one compile. "" means the
	// sha256 of the module bytes.
	Key string
	// Wasm is the module. If nil, Path is read.
	Wasm []byte
	// Path is a .wasm file, or a directory holding exactly one .wasm file
	// (searched recursively). Used when Wasm is nil.
	Path string
	// Name is the function's "namespace/name", used in log lines and errors.
	Name string
	// Entrypoint is the function's entry point. Reactors receive it as the
	// ISOTOPE_ENTRYPOINT environment variable (the Go SDK picks the handler
	// registered under that name). For WAGI, an exported function of that
	// name is called instead of _start; otherwise _start runs.
	Entrypoint string
	// Env is the function's environment; nothing of the host's is inherited.
	Env map[string]string
	// ArchiveDir, if not "", is mounted read-only as the guest's "/"
	// directory. With Mounts, it is the only host directory the guest
	// can see.
	ArchiveDir string
	// Mounts are more host directories mounted read-only, by guest path
	// ("/secrets" → a host directory). A guest path must be absolute and
	// not "/".
	Mounts map[string]string
	// Limits bound each request; zero fields take defaults.
	Limits Limits
	// Log receives the guest's stderr and the host's lines about the
	// function (traps, timeouts), one timestamped line per write. nil
	// discards them. It must be safe for concurrent use by several
	// functions only if shared; the Module serializes its own writes.
	Log io.Writer
}

// Stats are a Module's counters since Load.
type Stats struct {
	ABI                ABI
	Requests           uint64 // requests served (any status)
	Errors             uint64 // requests answered 5xx by the host
	Traps              uint64 // guest traps or unexpected exits
	Timeouts           uint64 // requests past their deadline
	InstancesStarted   uint64 // instances created (WAGI: one per request)
	InstancesDiscarded uint64 // reactor instances thrown away or recycled
	Idle               int    // reactor instances ready now
	Busy               int    // instances serving a request now
	// InterruptChecks is true when the module runs with Isotope's own
	// budget checks and yields to the host (package rewrite, schedule.go), false when it could not be
	// rewritten and runs on wazero's slower close-on-context-done.
	InterruptChecks bool
}

// RuntimeStats are a Runtime's compile counters.
type RuntimeStats struct {
	// Compiles counts modules compiled to machine code by this Runtime
	// (no usable on-disk cache entry existed).
	Compiles uint64
	// DiskCacheHits counts modules whose machine code came from CacheDir.
	DiskCacheHits uint64
	// SharedLoads counts Loads that reused a module already compiled or
	// being compiled in this Runtime (single-flight).
	SharedLoads uint64
	// Modules is the number of distinct compiled modules held now
	// (in use or kept idle).
	Modules int
	// ReactorStarts counts reactor guest instances started (each one a
	// language runtime's start, tens of milliseconds for Go), and
	// ReactorLive the reactor instances alive now, idle or serving.
	ReactorStarts uint64
	ReactorLive   int
}

// InvokeOptions carry per-request routing context into a Module, set by the
// router or executor with WithInvokeOptions.
type InvokeOptions struct {
	// MatchedRoute is the trigger's route pattern, e.g. "/hello/...";
	// WAGI's X_MATCHED_ROUTE. Default "/...".
	MatchedRoute string
	// FullURL is the URL the client asked for, as seen at the edge; WAGI's
	// X_FULL_URL. Default: reconstructed from the request.
	FullURL string
	// ScriptName is the path prefix that selected the function (CGI
	// SCRIPT_NAME); PATH_INFO is the request path after it. Default: the
	// MatchedRoute without its "/..." suffix when the path starts with it,
	// else "".
	ScriptName string
}

type invokeKey struct{}

// WithInvokeOptions returns ctx carrying o for Module.ServeHTTP.
func WithInvokeOptions(ctx context.Context, o InvokeOptions) context.Context {
	return context.WithValue(ctx, invokeKey{}, o)
}

// WithRouteInfo is WithInvokeOptions with the two common fields.
func WithRouteInfo(ctx context.Context, matchedRoute, fullURL string) context.Context {
	return WithInvokeOptions(ctx, InvokeOptions{MatchedRoute: matchedRoute, FullURL: fullURL})
}

func invokeOptionsFrom(ctx context.Context) InvokeOptions {
	o, _ := ctx.Value(invokeKey{}).(InvokeOptions)
	return o
}
