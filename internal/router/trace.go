package router

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/tracing"
)

// serveTraced serves a matched request under the router's span (named
// "METHOD route", the HTTP semantic conventions' server span), which
// continues the caller's trace when the request carries a valid W3C
// traceparent and starts one otherwise. The function receives the
// trace context as traceparent/tracestate, beside the X-Fission-*
// headers; runtimes that make a span of their own (wasm.call,
// process.call) replace it with theirs. Only called while tracing is on.
func (rt *Router) serveTraced(w http.ResponseWriter, r *http.Request, fn *v1.Function, m *match) {
	route := m.pattern()
	if m.route == nil {
		route = "/fission-function/" + fn.Namespace + "/" + fn.Name
	}
	attrs := []attribute.KeyValue{
		tracing.KeyHTTPRoute.String(route),
		tracing.KeyTrigger.String("http"),
		tracing.KeyFunctionNamespace.String(fn.Namespace),
		tracing.KeyFunctionName.String(fn.Name),
	}
	tracing.Serve(w, r, r.Method+" "+route, attrs, func(w http.ResponseWriter, r *http.Request) {
		// The request's header map becomes the function's (rewrite).
		tracing.Inject(r.Context(), r.Header)
		rt.serveFunction(w, r, fn, m)
	})
}

// traceCold marks the request's span as a cold start.
func traceCold(ctx context.Context) {
	if !tracing.Enabled() {
		return
	}
	trace.SpanFromContext(ctx).SetAttributes(tracing.KeyColdStart.Bool(true))
}
