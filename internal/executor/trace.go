package executor

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/tracing"
)

// Spans of the executor (package tracing): executor.acquire around each
// Acquire, executor.specialize around each cold start. A specialization
// runs in the background, outliving the request that asked for it, so it
// is parented by that request's acquire span explicitly.

// traceAcquire starts the executor.acquire span of a request to fn.
func traceAcquire(ctx context.Context, fn *v1.Function) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracing.Start(ctx, "executor.acquire", trace.WithAttributes(tracing.Function(fn.Namespace, fn.Name)...),
		trace.WithAttributes(tracing.KeyExecutorType.String(string(executorType(fn)))))
}

// endAcquire ends an acquire span with the lease's outcome.
func endAcquire(span trace.Span, l *lease, err error) {
	if l != nil && span.IsRecording() {
		span.SetAttributes(tracing.KeyColdStart.Bool(l.cold))
	}
	tracing.End(span, err)
}

// parentOf is the span a specialization started for the request in ctx
// hangs under (invalid while tracing is off or for background starts).
func parentOf(ctx context.Context) trace.SpanContext {
	if !tracing.Enabled() {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(ctx)
}

// traceSpecialize starts the executor.specialize span of res on rt
// under parent (a new trace when parent is invalid).
func traceSpecialize(ctx context.Context, parent trace.SpanContext, res instance.Function, rt string) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	if parent.IsValid() {
		ctx = trace.ContextWithSpanContext(ctx, parent)
	}
	return tracing.Start(ctx, "executor.specialize",
		trace.WithAttributes(tracing.Function(res.Fn.Namespace, res.Fn.Name)...),
		trace.WithAttributes(
			tracing.KeyExecutorType.String(string(executorType(res.Fn))),
			tracing.KeyRuntime.String(rt),
			tracing.KeyEnvironment.String(res.Env.Namespace+"/"+res.Env.Name),
			tracing.KeyPackageName.String(res.Pkg.Name),
		))
}

// linkSpecialization links the acquire span in ctx to spec, the span of
// a specialization the request waited for but did not start (a preload,
// or another request's cold start): that specialization's trace is not
// the request's, so it cannot be a child.
func linkSpecialization(ctx context.Context, spec trace.SpanContext) {
	if !tracing.Enabled() || !spec.IsValid() {
		return
	}
	span := trace.SpanFromContext(ctx)
	if span.SpanContext().TraceID() == spec.TraceID() {
		return // its own: already a child
	}
	span.AddLink(trace.Link{SpanContext: spec})
}
