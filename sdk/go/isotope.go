// Package isotope is the Go guest SDK of Isotope's reactor ABI
// (docs/reactor-abi.md). A function is written exactly as for Fission's Go
// environment:
//
//	package main
//
//	func Handler(w http.ResponseWriter, r *http.Request) { ... }
//
// and built with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
// The go-wasm builder adds a file that calls Register for each handler
// from an init func and declares an empty main. Programs written by hand
// call Register or Serve themselves.
//
// The handler that serves requests is the one named by the environment
// variable ISOTOPE_ENTRYPOINT (the Function's entrypoint); when it is unset
// or empty, the handler passed to Serve, else the one registered as
// "Handler", else the only registered one. A name that matches nothing
// makes every request answer 500 naming it and the registered names.
//
// The package uses the standard library only.
package isotope

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
)

var (
	mu       sync.Mutex
	handlers = map[string]http.Handler{}
	served   http.Handler
	chosen   http.Handler // resolved on the first request
)

// Register makes h callable as the entry point name. Registering a name
// twice keeps the last handler.
func Register(name string, h func(http.ResponseWriter, *http.Request)) {
	mu.Lock()
	defer mu.Unlock()
	handlers[name] = http.HandlerFunc(h)
	chosen = nil
}

// Serve sets h as the function's handler, used when no entry point is
// named (or the default name "Handler" is not registered).
func Serve(h http.Handler) {
	mu.Lock()
	defer mu.Unlock()
	served = h
	chosen = nil
}

// EntrypointEnv is the environment variable naming the handler to run.
const EntrypointEnv = "ISOTOPE_ENTRYPOINT"

// Meta keys the host sends with a request; read them with MatchedRoute,
// FullURL and ScriptName.
const (
	metaMatchedRoute = "matched_route"
	metaFullURL      = "full_url"
	metaScriptName   = "script_name"
	metaWarmup       = "isotope_warmup"
)

type metaKey struct{}

func meta(r *http.Request, k string) string {
	m, _ := r.Context().Value(metaKey{}).(map[string]string)
	return m[k]
}

// MatchedRoute is the route pattern of the trigger that selected the
// function, e.g. "/hello/...", or "" if the host did not say.
func MatchedRoute(r *http.Request) string { return meta(r, metaMatchedRoute) }

// FullURL is the URL the client asked for, as seen at the platform edge.
func FullURL(r *http.Request) string { return meta(r, metaFullURL) }

// ScriptName is the path prefix that selected the function (CGI
// SCRIPT_NAME), or "".
func ScriptName(r *http.Request) string { return meta(r, metaScriptName) }

// handler resolves the entry point (see the package doc).
func handler() http.Handler {
	mu.Lock()
	defer mu.Unlock()
	if chosen != nil {
		return chosen
	}
	chosen = choose(os.Getenv(EntrypointEnv))
	return chosen
}

func choose(name string) http.Handler {
	if name != "" {
		if h, ok := handlers[name]; ok {
			return h
		}
		if name == "Handler" && served != nil {
			return served
		}
		return errorHandler(fmt.Sprintf("entrypoint %q is not a handler of this function; registered: %s", name, registered()))
	}
	if served != nil {
		return served
	}
	if h, ok := handlers["Handler"]; ok {
		return h
	}
	if len(handlers) == 1 {
		for _, h := range handlers {
			return h
		}
	}
	if len(handlers) == 0 {
		return errorHandler("no handler: the function registered none (isotope.Register or isotope.Serve)")
	}
	return errorHandler(fmt.Sprintf("no entrypoint named and no handler called \"Handler\"; set the function's entrypoint to one of: %s", registered()))
}

func registered() string {
	if len(handlers) == 0 && served == nil {
		return "(none)"
	}
	var names []string
	for n := range handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	if served != nil {
		names = append(names, "(isotope.Serve)")
	}
	return strings.Join(names, ", ")
}

func errorHandler(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, msg, http.StatusInternalServerError)
	})
}

// handleFrame decodes one framed request, runs the handler and returns the
// framed response. A malformed frame or a panicking handler answers 500.
func handleFrame(frame []byte) []byte {
	req, err := decodeRequest(frame)
	if err != nil {
		return encodeResponse(nil, http.StatusInternalServerError, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte("isotope sdk: bad request frame: "+err.Error()+"\n"))
	}
	w := &responseWriter{header: http.Header{}}
	if md, _ := req.Context().Value(metaKey{}).(map[string]string); md[metaWarmup] != "" {
		// The host's warm-up: resolve the entry point and exercise the
		// framing, but run no user code.
		handler()
		w.WriteHeader(http.StatusNoContent)
		w.finish()
		return encodeResponse(nil, w.status, w.header, nil)
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(os.Stderr, "panic serving %s %s: %v\n%s", req.Method, req.URL, p, debug.Stack())
				if !w.wrote {
					w.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
					w.status = http.StatusInternalServerError
					w.body.Reset()
					fmt.Fprintf(&w.body, "handler panic: %v\n", p)
				}
			}
		}()
		handler().ServeHTTP(w, req)
	}()
	w.finish()
	return encodeResponse(nil, w.status, w.header, w.body.Bytes())
}

// responseWriter buffers the handler's answer; it is sent when the
// handler returns.
type responseWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.body.Write(p)
}

// Flush is accepted for compatibility; the response is sent as a whole.
func (w *responseWriter) Flush() {}

func (w *responseWriter) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if _, ok := w.header["Content-Type"]; !ok && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
}

func decodeRequest(frame []byte) (*http.Request, error) {
	r := &reader{b: frame}
	if v := r.u32(); r.err == nil && v != abiVersion {
		return nil, fmt.Errorf("request frame version %d, this SDK speaks %d", v, abiVersion)
	}
	method := r.str()
	uri := r.str()
	host := r.str()
	remote := r.str()
	proto := r.str()
	h := http.Header{}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		k := r.str()
		h[k] = append(h[k], r.str())
	}
	md := map[string]string{}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		k := r.str()
		md[k] = r.str()
	}
	body := r.bytes()
	if r.err != nil {
		return nil, r.err
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("request URI %q: %v", uri, err)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		major, minor = 1, 1
	}
	req := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        h,
		Body:          readCloser{bytes.NewReader(body)},
		ContentLength: int64(len(body)),
		Host:          host,
		RemoteAddr:    remote,
		RequestURI:    uri,
	}
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	return req.WithContext(context.WithValue(context.Background(), metaKey{}, md)), nil
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
