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
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
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

// meta is the routing context the host sent with a request (the meta
// entries of the request frame that this SDK knows; others are ignored).
type meta struct {
	matchedRoute, fullURL, scriptName string
	warmup                            bool
}

// reqContext is a request's context: the background context carrying the
// request's meta, in one allocation (a map in a context.WithValue took
// several on every request, each a noticeable cost inside WebAssembly).
type reqContext struct {
	context.Context
	md meta
}

func (c *reqContext) Value(key any) any {
	if _, ok := key.(metaKey); ok {
		return &c.md
	}
	return c.Context.Value(key)
}

func metaOf(r *http.Request) *meta {
	if m, ok := r.Context().Value(metaKey{}).(*meta); ok {
		return m
	}
	return &meta{}
}

// MatchedRoute is the route pattern of the trigger that selected the
// function, e.g. "/hello/...", or "" if the host did not say.
func MatchedRoute(r *http.Request) string { return metaOf(r).matchedRoute }

// FullURL is the URL the client asked for, as seen at the platform edge.
func FullURL(r *http.Request) string { return metaOf(r).fullURL }

// ScriptName is the path prefix that selected the function (CGI
// SCRIPT_NAME), or "".
func ScriptName(r *http.Request) string { return metaOf(r).scriptName }

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

// handleFrame decodes one framed request, runs the handler and appends
// the framed response to dst. A malformed frame or a panicking handler
// answers 500.
func handleFrame(dst, frame []byte) []byte {
	req, err := decodeRequest(frame)
	if err != nil {
		return encodeResponse(dst, http.StatusInternalServerError, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, []byte("isotope sdk: bad request frame: "+err.Error()+"\n"))
	}
	w := &responseWriter{header: make(http.Header, 2)}
	if metaOf(req).warmup {
		// The host's warm-up: resolve the entry point and exercise the
		// framing, but run no user code.
		handler()
		w.WriteHeader(http.StatusNoContent)
		w.finish()
		return encodeResponse(dst, w.status, w.header, nil)
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
	return encodeResponse(dst, w.status, w.header, w.body.Bytes())
}

// responseWriter buffers the handler's answer; it is sent when the
// handler returns.
type responseWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
	over   int64 // bytes refused past the host's limit
}

// ErrResponseTooLarge is what Write returns once the response body would
// pass the host's limit (the function's MaxResponseBody, given to the
// guest in ISOTOPE_MAX_RESPONSE_BODY). The client then gets 502 with a
// message that says so, instead of the instance running out of memory
// buffering it.
var ErrResponseTooLarge = errors.New("isotope: response body above the host's limit")

// EnvMaxResponseBody names the environment variable in which the host
// gives the response body limit, in bytes.
const EnvMaxResponseBody = "ISOTOPE_MAX_RESPONSE_BODY"

// responseLimit is the host's response body limit; 0 when it gave none.
var responseLimit = sync.OnceValue(func() int64 {
	n, _ := strconv.ParseInt(os.Getenv(EnvMaxResponseBody), 10, 64)
	return max(n, 0)
})

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
	if lim := responseLimit(); w.over > 0 || (lim > 0 && int64(w.body.Len()+len(p)) > lim) {
		w.over += int64(len(p))
		return 0, ErrResponseTooLarge
	}
	return w.body.Write(p)
}

// Flush is accepted for compatibility; the response is sent as a whole.
func (w *responseWriter) Flush() {}

func (w *responseWriter) finish() {
	if w.over > 0 {
		msg := fmt.Sprintf("function response body above the limit of %d bytes (%d bytes more were refused)\n", responseLimit(), w.over)
		fmt.Fprint(os.Stderr, msg)
		// Marked as the platform's answer, not the function's own: the
		// router logs it and tells the caller the response was too large.
		w.header = http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Isotope-Error": {"response-too-large"}}
		w.status = http.StatusBadGateway
		w.body.Reset()
		w.body.WriteString(msg)
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if _, ok := w.header["Content-Type"]; !ok && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
}

// decodeRequest decodes a request frame. Every string of the request
// (method, URI, header names and values, meta) is a substring of one copy
// of the frame's head, and the header values share one backing array:
// a handful of allocations per request instead of two per header.
func decodeRequest(frame []byte) (*http.Request, error) {
	// First pass: check the frame and find where its strings end.
	r := &reader{b: frame}
	if v := r.u32(); r.err == nil && v != abiVersion {
		return nil, fmt.Errorf("request frame version %d, this SDK speaks %d", v, abiVersion)
	}
	for range 5 {
		r.bytes()
	}
	nh := r.u32()
	for n := nh; n > 0 && r.err == nil; n-- {
		r.bytes()
		r.bytes()
	}
	nm := r.u32()
	for n := nm; n > 0 && r.err == nil; n-- {
		r.bytes()
		r.bytes()
	}
	headLen := len(frame) - len(r.b)
	body := r.bytes()
	if r.err != nil {
		return nil, r.err
	}

	s := &sreader{s: string(frame[:headLen])}
	s.u32()
	method, uri, host, remote, proto := s.str(), s.str(), s.str(), s.str(), s.str()
	s.u32()
	h := make(http.Header, nh)
	vals := make([]string, nh)
	prev, names := "", 0
	for i := range vals {
		k, v := s.str(), s.str()
		vals[i] = v
		if i > 0 && k == prev {
			// Values of one name come one after the other (the Isotope
			// host sends them so): no map lookup per header, which is a
			// software hash inside WebAssembly.
			h[k] = append(h[k], v)
			continue
		}
		prev = k
		names++
		h[k] = vals[i : i+1 : i+1]
	}
	if len(h) != names {
		// A name came back after another one: its first values were
		// overwritten above. Rare enough to decode the headers again.
		h = decodeHeaderMap(frame, nh)
	}
	s.u32()
	ctx := &reqContext{Context: context.Background()}
	for range nm {
		switch k, v := s.str(), s.str(); k {
		case metaMatchedRoute:
			ctx.md.matchedRoute = v
		case metaFullURL:
			ctx.md.fullURL = v
		case metaScriptName:
			ctx.md.scriptName = v
		case metaWarmup:
			ctx.md.warmup = v != ""
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("request URI %q: %v", uri, err)
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		major, minor = 1, 1
	}
	base := http.Request{
		Method:        method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    major,
		ProtoMinor:    minor,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: int64(len(body)),
		Host:          host,
		RemoteAddr:    remote,
		RequestURI:    uri,
	}
	if len(body) > 0 {
		base.Body = readCloser{bytes.NewReader(body)}
	}
	// WithContext copies base (which stays on the stack) once.
	return base.WithContext(ctx), nil
}

// decodeHeaderMap decodes the headers of a frame already checked by
// decodeRequest, looking every name up: any order of names is fine.
func decodeHeaderMap(frame []byte, nh uint32) http.Header {
	r := &reader{b: frame}
	r.u32()
	for range 5 {
		r.bytes()
	}
	r.u32()
	h := make(http.Header, nh)
	for range nh {
		k := r.str()
		h[k] = append(h[k], r.str())
	}
	return h
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
