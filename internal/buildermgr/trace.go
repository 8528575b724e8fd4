package buildermgr

import (
	"context"

	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/tracing"
)

// Spans of a build (package tracing): "build", the root of its own trace
// (a build follows a watch event, not a request), with one child per
// step: build.fetch (the source archive into the builder), build.run
// (the build command) and build.upload (the deploy archive to storage).
// The fetcher's and storage service's spans hang under the steps.

// traceBuild starts the span of one build of pkg.
func traceBuild(ctx context.Context, pkg *v1.Package) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracing.Start(ctx, "build", trace.WithNewRoot(),
		trace.WithAttributes(tracing.Package(pkg.Namespace, pkg.Name)...),
		trace.WithAttributes(tracing.KeyEnvironment.String(pkg.Spec.Environment.Namespace+"/"+pkg.Spec.Environment.Name)))
}

// buildOutcome records the build's result on its span.
func buildOutcome(span trace.Span, status v1.BuildStatus, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(tracing.KeyBuildStatus.String(string(status)))
	tracing.Fail(span, err)
}

// step runs one step of a build under a span named name.
func step(ctx context.Context, name string, f func(context.Context) error) error {
	ctx, span := tracing.Start(ctx, name)
	err := f(ctx)
	tracing.End(span, err)
	return err
}
