// Package router sends HTTP requests to functions, as Fission's router
// does (reference: fission.md §3e): HTTPTriggers (relativeurl with
// {param} variables, prefix with keepPrefix, methods, host, canary
// weights) and the internal routes /fission-function/[<ns>/]<name>[/...].
//
// The route table is an immutable value rebuilt from a mirror of the
// store's HTTPTriggers and Functions whenever they change (at once after
// a quiet spell, coalesced under bursts) and swapped in atomically, so a request never waits for a rebuild and
// never sees half a table. Matching uses maps and segment comparison,
// not a regexp per route, except for patterns that need one.
//
// A matched request gets a lease on a function instance from the
// executor, with a deadline of the function's functionTimeout, and the
// lease serves it with the rewritten request. Bodies stream both ways:
// the router neither buffers nor retries them. Retries on connection
// errors belong to the lease, the only part that knows whether a byte
// has left (a dial that failed sent nothing, so it can be retried; a
// request that reached a function cannot).
//
// Graceful drain: serve the Router from an http.Server and call its
// Shutdown, which stops accepting and waits for in-flight requests
// (each bounded by its function's timeout); Router has no state of its
// own to drain.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/mirror"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/tracing"
)

// DefaultFunctionTimeout is the per-request deadline of a function whose
// spec.functionTimeout is unset, as in Fission.
const DefaultFunctionTimeout = 60 * time.Second

// statusClientClosed is nginx's and Fission's code for a client that
// went away before the response: logged and counted, never seen.
const statusClientClosed = 499

// Fixed paths the router answers itself, before any trigger.
const (
	HealthzPath = "/router-healthz"
	VersionPath = "/_version"
	MetricsPath = "/metrics"
)

// AdminPath reports whether the router answers path itself with facts
// about the platform (metrics, version) rather than with a function:
// these are the paths a web page must not read through DNS rebinding
// (package webguard). The health check stays open for probes.
func AdminPath(path string) bool {
	return path == MetricsPath || path == VersionPath || path == StatsPath
}

// Config configures a Router.
type Config struct {
	// Store is where HTTPTriggers and Functions are read from (Run).
	Store store.Store
	// Executor provides instances of functions.
	Executor executor.Executor
	// Logger receives the router's logs; nil discards them.
	Logger *slog.Logger
	// Registry gets the router's metrics and is served at /metrics; nil
	// makes a private registry.
	Registry *prometheus.Registry
	// Version is answered at /_version.
	Version string
	// AccessLog logs one line per function request.
	AccessLog bool
	// Debounce paces route table rebuilds under a burst of changes: one
	// per Debounce once a few have run back to back (default 20 ms,
	// Fission's fixed delay). A change after a quiet spell is served at
	// once.
	Debounce time.Duration
	// Rand picks canary targets; nil uses the process-wide source. Tests
	// pass a seeded one. It is used under a lock.
	Rand *rand.Rand
	// DebugErrors shows callers the detail of the platform's failures
	// (executor errors, runtimes' failure answers), which otherwise go
	// only to the log under a request id (Fission's DEBUG_ENV).
	DebugErrors bool
}

// Router is an http.Handler that routes requests to functions.
type Router struct {
	cfg      Config
	log      *slog.Logger
	exec     executor.Executor
	table    atomic.Pointer[table]
	metrics  *metrics
	stats    *stats
	registry *prometheus.Registry
	metricsH http.Handler
	randMu   sync.Mutex
	// ready is closed once the route table has been built from a
	// complete list of triggers and functions.
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a Router with an empty route table; Run fills it.
func New(cfg Config) *Router {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	r := &Router{
		cfg:      cfg,
		log:      cfg.Logger,
		exec:     cfg.Executor,
		registry: cfg.Registry,
		metrics:  newMetrics(cfg.Registry),
		stats:    newStats(),
		metricsH: promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}),
		ready:    make(chan struct{}),
	}
	r.table.Store(buildTable(nil, nil))
	return r
}

// Synced reports whether the route table has been built from a complete
// list of triggers and functions at least once.
func (rt *Router) Synced() bool {
	select {
	case <-rt.ready:
		return true
	default:
		return false
	}
}

// Ready is closed once Synced is true: callers that must not see the
// router's answers before its routes are loaded (the embedded trigger
// manager) wait on it.
func (rt *Router) Ready() <-chan struct{} { return rt.ready }

// Run mirrors HTTPTriggers and Functions from the store and rebuilds the
// route table after each batch of changes, until ctx ends.
func (rt *Router) Run(ctx context.Context) error {
	if rt.cfg.Store == nil {
		return errors.New("router: Config.Store is nil")
	}
	triggers := mirror.New(rt.cfg.Store, v1.KindHTTPTrigger, store.ListOptions{}, rt.log)
	functions := mirror.New(rt.cfg.Store, v1.KindFunction, store.ListOptions{}, rt.log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range []*mirror.Mirror{triggers, functions} {
		wg.Add(1)
		go func() { defer wg.Done(); m.Run(ctx) }()
	}
	defer wg.Wait()

	// Rebuilds are paced by a token bucket: up to burstRebuilds at once,
	// then one per Debounce. A change that finds a token is served at
	// once (a function stored and routed, two changes a round trip
	// apart, in about a millisecond); one that finds none waits for the
	// next token, and every change until then rides along. A burst of a
	// hundred updates in 200 ms rebuilds the table about fourteen times,
	// not a hundred, and never more often than Fission's fixed debounce.
	tokens := float64(burstRebuilds)
	last := time.Now()
	refill := func() {
		now := time.Now()
		tokens = min(burstRebuilds, tokens+float64(now.Sub(last))/float64(rt.cfg.Debounce))
		last = now
	}
	var wait *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if wait != nil {
				wait.Stop()
			}
			return ctx.Err()
		case <-triggers.Changed():
		case <-functions.Changed():
		case <-fire:
			fire = nil
			refill()
			tokens = max(tokens-1, 0)
			rt.rebuild(triggers, functions)
			continue
		}
		if fire != nil {
			continue // the rebuild already waiting will include it
		}
		refill()
		if tokens >= 1 {
			tokens--
			rt.rebuild(triggers, functions)
			continue
		}
		wait = time.NewTimer(time.Duration((1 - tokens) * float64(rt.cfg.Debounce)))
		fire = wait.C
	}
}

// burstRebuilds is how many route table rebuilds may follow each other
// at once before they are paced one per Config.Debounce (see Run).
const burstRebuilds = 4

// rebuild builds a table from the mirrors' snapshots and swaps it in.
func (rt *Router) rebuild(triggers, functions *mirror.Mirror) {
	synced := triggers.Synced() && functions.Synced()
	var trs []*v1.HTTPTrigger
	for _, o := range triggers.Snapshot() {
		if t, ok := o.(*v1.HTTPTrigger); ok {
			trs = append(trs, t)
		}
	}
	var fns []*v1.Function
	for _, o := range functions.Snapshot() {
		if f, ok := o.(*v1.Function); ok {
			fns = append(fns, f)
		}
	}
	t := buildTable(trs, fns)
	rt.table.Store(t)
	if synced {
		rt.readyOnce.Do(func() { close(rt.ready) })
	}
	rt.metrics.rebuilds.Inc()
	rt.metrics.routes.Set(float64(len(trs) - len(t.skipped)))
	for _, s := range t.skipped {
		rt.log.Warn("trigger skipped", "reason", s)
	}
	rt.log.Debug("route table rebuilt", "triggers", len(trs), "functions", len(fns), "skipped", len(t.skipped))
}

// ServeHTTP routes one request.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch path {
	case HealthzPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		return
	case VersionPath:
		writeJSON(w, http.StatusOK, map[string]string{"version": rt.cfg.Version})
		return
	case MetricsPath:
		rt.metricsH.ServeHTTP(w, r)
		return
	case StatsPath:
		rt.serveStats(w, r)
		return
	}
	if path == "" || path[0] != '/' {
		rt.notFound(w, r)
		return
	}
	t := rt.table.Load()
	m, ok, allow := t.lookup(r.Method, r.Host, path)
	if !ok {
		switch {
		case path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !t.rootTaken:
			// A load balancer's health check (GKE probes GET /).
			w.WriteHeader(http.StatusOK)
		case len(allow) > 0:
			rt.metrics.unmatched.Inc()
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed for %s", r.Method, path))
		case !rt.Synced():
			// A table not yet loaded cannot say a route does not exist
			// (a server that has just started).
			w.Header().Set("Retry-After", "1")
			writeError(w, r, http.StatusServiceUnavailable, fmt.Sprintf("no route for %s %s yet: the router is still loading its routes; try again", r.Method, r.URL.Path))
		default:
			rt.notFound(w, r)
		}
		return
	}
	fn := m.fn
	if fn == nil {
		fn = rt.pick(m.route)
	}
	if tracing.Enabled() {
		rt.serveTraced(w, r, fn, &m)
		return
	}
	rt.serveFunction(w, r, fn, &m)
}

func (rt *Router) notFound(w http.ResponseWriter, r *http.Request) {
	rt.metrics.unmatched.Inc()
	writeError(w, r, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
}

// pick chooses a route's function: the only one, or a weighted random
// choice among a canary's (function-weights), made per request.
func (rt *Router) pick(r *route) *v1.Function {
	if len(r.targets) == 1 {
		return r.targets[0].fn
	}
	n := r.total
	uniform := n <= 0 // all weights zero: choose evenly
	if uniform {
		n = len(r.targets)
	}
	var x int
	if rt.cfg.Rand != nil {
		rt.randMu.Lock()
		x = rt.cfg.Rand.IntN(n)
		rt.randMu.Unlock()
	} else {
		x = rand.IntN(n)
	}
	if uniform {
		return r.targets[x].fn
	}
	for _, t := range r.targets {
		if x < t.weight {
			return t.fn
		}
		x -= t.weight
	}
	return r.targets[len(r.targets)-1].fn
}

// functionTimeout is fn's per-request deadline.
func functionTimeout(fn *v1.Function) time.Duration {
	if s := fn.Spec.FunctionTimeout; s > 0 {
		return time.Duration(s) * time.Second
	}
	return DefaultFunctionTimeout
}

// writeError answers with a short error: JSON when the client asks for
// it, text otherwise.
func writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, code, map[string]any{"code": code, "error": msg})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
