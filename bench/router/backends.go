package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
)

// A backend is what serves the function behind the router: the lease
// the executor hands out. The router and the load are the same for
// every backend, so backends compare directly. The lead wires the real
// executor and WebAssembly runtime in as further entries of backends
// (e.g. "wasm-reactor"), each returning an Executor for the function
// created by setup.
type backend struct {
	about string
	new   func(ctx context.Context) (executor.Executor, func(), error)
}

var backends = map[string]backend{
	"handler": {
		about: "an in-process Go hello handler as the lease: the router's own cost",
		new: func(context.Context) (executor.Executor, func(), error) {
			return handlerExecutor{h: helloHandler()}, func() {}, nil
		},
	},
}

func backendNames() string {
	names := make([]string, 0, len(backends))
	for n, b := range backends {
		names = append(names, fmt.Sprintf("%s (%s)", n, b.about))
	}
	sort.Strings(names)
	return strings.Join(names, "; ")
}

// helloHandler is the function and the baseline server alike.
func helloHandler() http.Handler {
	body := []byte("Hello, world!\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
}

// handlerExecutor leases one shared in-process handler: every request is
// warm, nothing is created, so the figure is the router's overhead.
type handlerExecutor struct{ h http.Handler }

func (e handlerExecutor) Acquire(context.Context, *v1.Function) (executor.Lease, error) {
	return handlerLease{e.h}, nil
}

type handlerLease struct{ http.Handler }

func (handlerLease) Release(error)   {}
func (handlerLease) ColdStart() bool { return false }
