// Package wasmrt is the executor's in-process WebAssembly runtime: an
// instance of an isotope/wasm-env environment is a module loaded into
// the process's wasm.Runtime. Starting one costs nothing; specializing
// fetches the deploy archive and loads (compiles once per archive,
// warms the reactor pool) the module.
package wasmrt

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/wasm"
)

// Config configures the runtime.
type Config struct {
	Wasm         *wasm.Runtime
	WorkDir      string
	Fetcher      instance.Fetcher
	Logs         *fnlog.Store
	MaxInstances int
}

// Runtime is the in-process WebAssembly runtime.
type Runtime struct{ cfg Config }

// New returns a runtime.
func New(cfg Config) *Runtime {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 64
	}
	return &Runtime{cfg: cfg}
}

func (r *Runtime) Name() string { return "wasm" }
func (r *Runtime) Pooled() bool { return false }

// Slots implements instance.Multiplexer.
func (r *Runtime) Slots(fn *v1.Function) int { return r.cfg.MaxInstances }

func (r *Runtime) Start(ctx context.Context, env *v1.Environment) (instance.Instance, error) {
	return &wasmInstance{rt: r, env: env}, nil
}

type wasmInstance struct {
	rt     *Runtime
	env    *v1.Environment
	mod    *wasm.Module
	closed atomic.Bool
}

func (w *wasmInstance) Specialize(ctx context.Context, f instance.Function) error {
	return errors.New("not yet")
}

func (w *wasmInstance) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.mod.ServeHTTP(rw, r) }
func (w *wasmInstance) Alive() bool                                       { return !w.closed.Load() }
func (w *wasmInstance) Close() error {
	if w.closed.CompareAndSwap(false, true) && w.mod != nil {
		return w.mod.Close()
	}
	return nil
}
