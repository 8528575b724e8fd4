package tracing

import (
	"fmt"
	"net/http"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Serve runs next under a server span named name that continues the
// trace in r's traceparent (a malformed one starts a new trace), and ends
// the span with the status next wrote: 5xx and a panic mark it failed.
// While tracing is off it is next(w, r).
func Serve(w http.ResponseWriter, r *http.Request, name string, attrs []attribute.KeyValue, next func(http.ResponseWriter, *http.Request)) {
	if !on.Load() {
		next(w, r)
		return
	}
	ctx := Extract(r.Context(), r.Header)
	ctx, span := Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		KeyHTTPMethod.String(r.Method), KeyURLPath.String(r.URL.Path), KeyServerAddress.String(r.Host),
	), trace.WithAttributes(attrs...))
	run(span, w, r.WithContext(ctx), next)
}

// Call runs next, a call into a function instance, under a span named
// name (a child of r's span) whose trace context the function receives
// in r's traceparent and tracestate headers; it ends the span with the
// status next wrote. While tracing is off it is next(w, r).
func Call(w http.ResponseWriter, r *http.Request, name string, kind trace.SpanKind, attrs []attribute.KeyValue, next func(http.ResponseWriter, *http.Request)) {
	if !on.Load() {
		next(w, r)
		return
	}
	ctx, span := Start(r.Context(), name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	Inject(ctx, r.Header)
	run(span, w, r.WithContext(ctx), next)
}

// run serves r with next and ends span with the outcome.
func run(span trace.Span, w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request)) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			span.SetStatus(codes.Error, fmt.Sprintf("handler aborted: %v", p))
			span.SetAttributes(KeyHTTPStatus.Int(sw.code))
			span.End()
			panic(p)
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		span.SetAttributes(KeyHTTPStatus.Int(code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
		span.End()
	}()
	next(sw, r)
}

// Handler serves h under a server span per request (Serve), named
// "METHOD path" for the paths in routes and "METHOD" for any other, as
// the HTTP semantic conventions name spans of unknown routes. Health and
// metrics probes are not traced.
func Handler(h http.Handler, routes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !on.Load() || isProbe(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		name := r.Method
		var attrs []attribute.KeyValue
		if slices.Contains(routes, r.URL.Path) {
			name += " " + r.URL.Path
			attrs = []attribute.KeyValue{KeyHTTPRoute.String(r.URL.Path)}
		}
		Serve(w, r, name, attrs, h.ServeHTTP)
	})
}

func isProbe(path string) bool {
	switch path {
	case "/healthz", "/readiness-healthz", "/metrics", "/router-healthz":
		return true
	}
	return false
}

// statusWriter records the status a handler writes. Unwrap keeps
// http.ResponseController (flush, full duplex, hijack) working through
// it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client now.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
