// Package apiserver serves a store.Store over HTTP in the Kubernetes
// style: REST/JSON CRUD and streaming watches for every Isotope kind
// under /apis/isotope.dev/v1, errors as Kubernetes Status objects,
// /healthz and /metrics.
//
// The same objects are served as Fission's group under
// /apis/fission.io/v1 (answered with apiVersion fission.io/v1), with
// the discovery a client-go client reads (/version, /api, /api/v1,
// /apis, /apis/<group>, /apis/<group>/v1, aggregated discovery v2 when
// asked for) and read-only namespaces under /api/v1, so that Fission's
// own CLI and other Kubernetes clients work against it through a
// kubeconfig (docs/fission-cli.md).
//
// Server is an http.Handler that claims only /apis/, /api/, /version,
// /healthz and /metrics. The composing server (isotope server) mounts it at "/" of
// its API listener next to its other handlers, e.g.
//
//	mux := http.NewServeMux()
//	mux.Handle("/v1/archive", archives) // storage service
//	mux.Handle("/", apiserver.New(st, opts))
//
// Paths (plural may also be any name v1.LookupKind accepts: fn, env …;
// fission.io may replace isotope.dev in each):
//
//	GET    /apis/isotope.dev/v1/namespaces/{ns}/{plural}              list (?labelSelector=) or watch (?watch=true&resourceVersion=)
//	POST   /apis/isotope.dev/v1/namespaces/{ns}/{plural}              create
//	GET    /apis/isotope.dev/v1/namespaces/{ns}/{plural}/{name}       get
//	PUT    /apis/isotope.dev/v1/namespaces/{ns}/{plural}/{name}       update
//	DELETE /apis/isotope.dev/v1/namespaces/{ns}/{plural}/{name}       delete (?resourceVersion= precondition)
//	PUT    /apis/isotope.dev/v1/namespaces/{ns}/{plural}/{name}/status update status
//	GET    /apis/isotope.dev/v1/{plural}                              list or watch across namespaces
//
// A watch answers newline-delimited JSON events
// {"type":"ADDED","object":{…}}, each flushed as it happens; while idle
// it writes a bare newline every Options.HeartbeatInterval so that both
// ends notice a dead connection. The stream ends when the client goes
// away, after ?timeoutSeconds=, or when the store closes the watch (the
// client then watches again from the last resourceVersion it saw).
package apiserver

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// PathPrefix is the root of the resource API; FissionPathPrefix serves
// the same objects as Fission's group, fission.io/v1.
const (
	PathPrefix        = "/apis/" + v1.APIVersion + "/"
	FissionPathPrefix = "/apis/" + v1.FissionAPIVersion + "/"
)

// Options configures a Server. The zero value serves without auth.
type Options struct {
	// Token, when non-empty, is required as "Authorization: Bearer
	// <token>" on every request except /healthz and /metrics.
	Token string
	// Registry receives the request metrics and is served at /metrics;
	// nil makes a new one with the Go and process collectors.
	Registry *prometheus.Registry
	// Logger gets one line per failed request (debug for the rest);
	// nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies (default 8 MiB); more is a 413.
	MaxBodyBytes int64
	// HeartbeatInterval is how often an idle watch stream gets a bare
	// newline (default 10s).
	HeartbeatInterval time.Duration
}

// Server is the API's http.Handler.
type Server struct {
	st      store.Store
	opts    Options
	log     *slog.Logger
	metrics *metrics
	promh   http.Handler

	stopping chan struct{} // closed by StopWatches
	stopOnce sync.Once
}

// New returns a Server over st.
func New(st store.Store, opts Options) *Server {
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 8 << 20
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 10 * time.Second
	}
	return &Server{
		st:      st,
		opts:    opts,
		log:     opts.Logger,
		metrics: newMetrics(opts.Registry),
		promh:   promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{Registry: opts.Registry}),

		stopping: make(chan struct{}),
	}
}

// StopWatches ends every open watch stream and refuses new ones with 503,
// so that http.Server.Shutdown, which waits for in-flight requests, is
// not held up by long-lived watches. Register it with
// http.Server.RegisterOnShutdown. Clients re-watch elsewhere or later.
func (s *Server) StopWatches() { s.stopOnce.Do(func() { close(s.stopping) }) }

// Registry returns the registry served at /metrics, for the composing
// server to add its own collectors to.
func (s *Server) Registry() *prometheus.Registry { return s.opts.Registry }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
		return
	case "/metrics":
		s.promh.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	rt, rerr := parseRoute(r)
	rec := &recorder{ResponseWriter: w, code: http.StatusOK}
	defer func() {
		s.metrics.observe(rt, rec.code, time.Since(start))
		if rec.code >= 500 {
			s.log.Warn("api request failed", "method", r.Method, "path", r.URL.Path, "code", rec.code)
		} else {
			s.log.Debug("api request", "method", r.Method, "path", r.URL.Path, "code", rec.code)
		}
	}()
	if err := s.authorize(r); err != nil {
		rec.Header().Set("WWW-Authenticate", `Bearer realm="isotope"`)
		writeError(rec, err, rt)
		return
	}
	if s.serveDiscovery(rec, r) || s.serveCore(rec, r) {
		return
	}
	if rerr != nil {
		if rerr.Reason == store.ReasonMethodNotAllowed {
			rec.Header().Set("Allow", rt.allow)
		}
		writeError(rec, rerr, rt)
		return
	}
	s.serve(rec, r, rt)
}

// authorize checks the bearer token when one is configured.
func (s *Server) authorize(r *http.Request) error {
	if s.opts.Token == "" {
		return nil
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if h == "" || !ok {
		return store.Errorf(store.ReasonUnauthorized, "unauthorized: this API requires \"Authorization: Bearer <token>\" (set ISOTOPE_TOKEN)")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.opts.Token)) != 1 {
		return store.Errorf(store.ReasonUnauthorized, "unauthorized: invalid bearer token")
	}
	return nil
}

// route is a parsed request path.
type route struct {
	apiVersion string // of the path: v1.APIVersion or v1.FissionAPIVersion
	ki         v1.KindInfo
	known      bool   // ki is set
	namespace  string // "" for the all-namespaces collection
	name       string // "" for collections
	status     bool   // the /status subresource
	verb       string // list, watch, get, create, update, updatestatus, delete
	allow      string // methods the path accepts, for 405
	// fissionOnly is set (and ki not) for a Fission kind Isotope lacks.
	fissionOnly *v1.FissionOnlyKind
}

// parseRoute maps a request to a route; the returned error is a
// NotFound for paths outside the API, a MethodNotAllowed for a wrong
// method (rt.allow says which are right) or a BadRequest.
func parseRoute(r *http.Request) (route, *store.Error) {
	var rt route
	rt.apiVersion = v1.APIVersion
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(r.URL.Path, FissionPathPrefix)
		rt.apiVersion = v1.FissionAPIVersion
	}
	if !ok {
		return rt, &store.Error{Reason: store.ReasonNotFound, Message: "the server could not find the requested resource " + r.URL.Path}
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	var plural string
	switch {
	case len(segs) == 1 && segs[0] != "":
		plural = segs[0]
	case len(segs) >= 3 && len(segs) <= 5 && segs[0] == "namespaces" && segs[1] != "" && segs[2] != "":
		rt.namespace, plural = segs[1], segs[2]
		if len(segs) >= 4 {
			rt.name = segs[3]
			if rt.name == "" {
				return rt, &store.Error{Reason: store.ReasonNotFound, Message: "empty name in path " + r.URL.Path}
			}
		}
		if len(segs) == 5 {
			if segs[4] != "status" {
				return rt, &store.Error{Reason: store.ReasonNotFound, Message: "unknown subresource " + segs[4]}
			}
			rt.status = true
		}
	default:
		return rt, &store.Error{Reason: store.ReasonNotFound, Message: "the server could not find the requested resource " + r.URL.Path}
	}
	ki, err := v1.LookupKind(plural)
	switch fo, ok := fissionOnly(plural); {
	case err == nil:
		rt.ki, rt.known = ki, true
	case ok && rt.apiVersion == v1.FissionAPIVersion:
		rt.fissionOnly = &fo
	default:
		return rt, &store.Error{Reason: store.ReasonNotFound, Message: "the server could not find the requested resource: " + err.Error()}
	}

	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	watch := r.URL.Query().Get("watch")
	isWatch := watch == "true" || watch == "1"
	switch {
	case rt.namespace == "": // all namespaces: read only
		rt.allow = "GET"
		if method == http.MethodGet {
			rt.verb = map[bool]string{true: "watch", false: "list"}[isWatch]
		}
	case rt.name == "":
		rt.allow = "GET, POST"
		switch method {
		case http.MethodGet:
			rt.verb = map[bool]string{true: "watch", false: "list"}[isWatch]
		case http.MethodPost:
			rt.verb = "create"
		}
	case rt.status:
		rt.allow = "GET, PUT"
		switch method {
		case http.MethodGet:
			rt.verb = "get"
		case http.MethodPut:
			rt.verb = "updatestatus"
		}
	default:
		rt.allow = "GET, PUT, DELETE"
		switch method {
		case http.MethodGet:
			rt.verb = "get"
		case http.MethodPut:
			rt.verb = "update"
		case http.MethodDelete:
			rt.verb = "delete"
		}
	}
	if rt.verb == "" {
		return rt, &store.Error{Reason: store.ReasonMethodNotAllowed, Message: "method " + r.Method + " is not allowed on " + r.URL.Path + " (allowed: " + rt.allow + ")"}
	}
	return rt, nil
}

// recorder remembers the status code for metrics and logs.
type recorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
