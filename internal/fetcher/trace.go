package fetcher

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	"isotope.dev/isotope/internal/tracing"
)

// traceFetch starts the fetcher.fetch span of req: which archive of
// which package, into which file.
func traceFetch(ctx context.Context, req FunctionFetchRequest) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracing.Start(ctx, "fetcher.fetch",
		trace.WithAttributes(tracing.Package(req.Package.Namespace, req.Package.Name)...),
		trace.WithAttributes(tracing.KeyFetchType.String(req.FetchType.String())))
}
