// Package instance defines the runtime axis of the executor: what an
// instance of a function is and how one is made. A Runtime creates
// generic instances of an environment; an Instance is specialized once
// for one function and then serves its requests. Provisioning strategies
// (poolmgr, newdeploy, in package executor) decide how many instances
// exist and when; they see runtimes only through these interfaces.
//
// Implementations: package procrt (local processes speaking Fission's
// environment protocol) and package wasmrt (in-process WebAssembly).
package instance

import (
	"context"
	"net/http"

	v1 "isotope.dev/isotope/api/v1"
)

// Function is everything a runtime needs to specialize an instance: the
// function and the environment and package it names, as read from the
// store when the specialization began.
type Function struct {
	Fn  *v1.Function
	Env *v1.Environment
	Pkg *v1.Package
	// Secrets and ConfigMaps are those fn names, in its order, which
	// the runtime shows to the function as files (package fnconfig).
	Secrets    []*v1.Secret
	ConfigMaps []*v1.ConfigMap
}

// Runtime makes instances of environments.
type Runtime interface {
	// Name is the runtime's label in metrics and logs ("process", "wasm").
	Name() string
	// Start creates a generic instance of env, ready to be specialized.
	// It returns once the instance accepts specialization, or fails.
	Start(ctx context.Context, env *v1.Environment) (Instance, error)
	// Pooled reports whether generic instances are worth keeping warm
	// (poolmgr's pool): true when starting one costs real time.
	Pooled() bool
}

// ConfigReader is implemented by runtimes whose instances read their
// function's secrets and config maps themselves: Kubernetes pods, whose
// fetcher reads them as the pod's ServiceAccount (Fission's design). The
// executor then leaves Function.Secrets and ConfigMaps empty and needs no
// right to read them.
type ConfigReader interface {
	ReadsConfig() bool
}

// Instance is one instance of an environment, specialized at most once.
type Instance interface {
	// Specialize loads fn into the instance; ctx bounds the whole step
	// (fetching the deploy archive, loading it). A failed instance must be
	// closed, not specialized again.
	Specialize(ctx context.Context, fn Function) error
	// ServeHTTP serves one request to the specialized function. Transport
	// failures are answered 502 and make Alive report false.
	http.Handler
	// Alive reports whether the instance can still serve: false once it
	// exited, failed a request at the transport level, or was closed.
	Alive() bool
	// Close stops the instance and frees what it holds (process, files).
	// It is idempotent and returns once everything is gone.
	Close() error
}

// Fetcher places a package's deploy archive under a directory: at
// dir/filename, extracted into a directory of that name when the archive
// is a zip and keepArchive is false, the file itself otherwise. It fails
// with a clear error when the archive is missing or its checksum differs.
type Fetcher interface {
	FetchDeployment(ctx context.Context, pkg *v1.Package, dir, filename string, keepArchive bool) error
}

// Multiplexer is implemented by runtimes whose one instance serves many
// requests at once by itself (in-process WebAssembly: a loaded module
// with its own pool of guest instances). Strategies then keep a single
// instance per function and give it Slots(fn) concurrent requests in
// place of concurrency × requestsPerPod.
type Multiplexer interface {
	Slots(fn *v1.Function) int
}

// Preparer is implemented by runtimes that can ready a package's code
// before any function of it starts (in-process WebAssembly: fetch and
// compile it), so that the package's first instance starts from
// compiled code.
type Preparer interface {
	Prepare(ctx context.Context, pkg *v1.Package) error
}
