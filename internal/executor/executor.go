// Package executor gives the router an instance of a function to serve a
// request. Provisioning strategies (poolmgr, newdeploy) decide how many
// instances exist and when; runtimes (in-process WebAssembly, local
// processes speaking Fission's environment protocol, Kubernetes pods)
// decide what an instance is. The two axes are separate interfaces.
package executor

import (
	"context"
	"errors"
	"net/http"

	v1 "isotope.dev/isotope/api/v1"
)

// Executor hands out leases on function instances.
type Executor interface {
	// Acquire returns a lease on an instance able to serve one request to
	// fn, creating or specializing one if needed. It blocks (bounded by
	// ctx) while the function is at its concurrency limit and queueing is
	// allowed, and fails with an *Error of code 429 when it is not.
	Acquire(ctx context.Context, fn *v1.Function) (Lease, error)
}

// Lease is one request's use of an instance.
type Lease interface {
	// ServeHTTP serves the request: in-process for WebAssembly, a reverse
	// proxy for process and pod instances. The request's path has already
	// been rewritten by the router.
	http.Handler
	// Release returns the instance; err is the request's outcome (a
	// transport failure marks the instance bad).
	Release(err error)
	// ColdStart reports whether this request had to create or specialize
	// the instance.
	ColdStart() bool
}

// Error is an executor failure with the HTTP status the router answers.
type Error struct {
	Code    int // 429 concurrency limit, 404 unknown function/package, 503 not ready, 500/502 …
	Message string
}

func (e *Error) Error() string { return e.Message }

// CodeOf returns the HTTP status for err (500 when it is not an *Error).
func CodeOf(err error) int {
	var e *Error
	if errors.As(err, &e) && e.Code != 0 {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}
