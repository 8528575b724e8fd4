// Package tracing is Isotope's OpenTelemetry tracing: a TracerProvider
// set up from the standard OTEL_* environment variables, W3C trace
// context carried over HTTP, and spans that cost nothing while tracing
// is off.
//
// Tracing is off unless the environment names an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// asks for the OTLP exporter (OTEL_TRACES_EXPORTER=otlp);
// OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none keep it off. While
// it is off, Start returns the context it was given and a no-op span, and
// Inject and Extract do nothing: no allocation, one atomic load. Code on a
// hot path checks Enabled before building attributes.
//
// Every process role calls Setup once at start and the shutdown function
// it returns on exit, which flushes the spans still queued.
package tracing

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentationName names Isotope's tracer (the instrumentation scope
// of every span it makes).
const InstrumentationName = "isotope.dev/isotope"

// The protocols OTEL_EXPORTER_OTLP_PROTOCOL may name.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Config is what the environment asks of tracing.
type Config struct {
	// Enabled is true when spans are to be exported.
	Enabled bool
	// Protocol is ProtocolHTTP or ProtocolGRPC.
	Protocol string
}

// ConfigFromEnv reads the OTEL_* variables through getenv (os.Getenv when
// nil). It fails, naming the variable, on a value it cannot honour.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	var c Config
	if strings.EqualFold(get("OTEL_SDK_DISABLED"), "true") {
		return c, nil
	}
	switch exp := strings.ToLower(get("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return c, nil
	case "otlp":
		c.Enabled = true
	case "":
		c.Enabled = get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return c, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: Isotope exports traces only with \"otlp\" (or \"none\")", exp)
	}
	proto := get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if proto == "" {
		proto, name = get("OTEL_EXPORTER_OTLP_PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch proto {
	case "", ProtocolHTTP:
		c.Protocol = ProtocolHTTP
	case ProtocolGRPC:
		c.Protocol = ProtocolGRPC
	default:
		return c, fmt.Errorf("%s=%q: want %q or %q", name, proto, ProtocolHTTP, ProtocolGRPC)
	}
	return c, nil
}

var (
	on     atomic.Bool
	tracer atomic.Pointer[tracerBox]
	prop   = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
)

type tracerBox struct{ t trace.Tracer }

// Setup installs a TracerProvider made from the environment and returns
// the function that flushes and stops it. service is the default
// service.name (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
// it). When tracing is off, Setup installs nothing and the returned
// function does nothing.
func Setup(ctx context.Context, service string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	cfg, err := ConfigFromEnv(nil)
	if err != nil || !cfg.Enabled {
		return noop, err
	}
	var exp sdktrace.SpanExporter
	switch cfg.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return noop, fmt.Errorf("tracing: OTLP exporter (%s): %w", cfg.Protocol, err)
	}
	// Later sources win: the role's name, then what the environment says.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && res == nil {
		return noop, fmt.Errorf("tracing: resource from OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The sampler is the SDK's, from OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	restore := Install(tp)
	return func(ctx context.Context) error {
		restore()
		return tp.Shutdown(ctx)
	}, nil
}

// Install makes tp the provider of Isotope's spans (and the global one)
// and turns tracing on; the returned function turns it off again. Setup
// calls it; tests may call it with a provider of their own.
func Install(tp trace.TracerProvider) (restore func()) {
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(prop)
	tracer.Store(&tracerBox{tp.Tracer(InstrumentationName)})
	on.Store(true)
	return func() {
		on.Store(false)
		tracer.Store(nil)
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	}
}

// Enabled reports whether spans are recorded and exported.
func Enabled() bool { return on.Load() }

// Start begins a span named name as a child of the span in ctx. While
// tracing is off it returns ctx and the (no-op) span already in ctx.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !on.Load() {
		return ctx, trace.SpanFromContext(ctx)
	}
	b := tracer.Load()
	if b == nil {
		return ctx, trace.SpanFromContext(ctx)
	}
	return b.t.Start(ctx, name, opts...)
}

// Inject writes ctx's trace context into h as W3C traceparent and
// tracestate (and baggage), replacing what h carried. It does nothing
// while tracing is off.
func Inject(ctx context.Context, h http.Header) {
	if !on.Load() {
		return
	}
	// A caller's tracestate belongs to its traceparent: when that was
	// invalid (a new trace), it must not ride along with ours.
	h.Del("Tracestate")
	prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx carrying the remote trace context in h, if h holds
// a valid traceparent; a missing or malformed one leaves ctx as it is.
// It does nothing while tracing is off.
func Extract(ctx context.Context, h http.Header) context.Context {
	if !on.Load() {
		return ctx
	}
	return prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// End ends span, recording err (when not nil) as its error status.
func End(span trace.Span, err error) {
	Fail(span, err)
	span.End()
}

// Fail marks span as failed with err, without ending it.
func Fail(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}
