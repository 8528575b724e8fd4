package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/testing/otlptest"
	"isotope.dev/isotope/internal/tracing"
)

// startTracing turns tracing on for the test against a real OTLP/HTTP
// receiver; it is turned off (and flushed) when the test ends.
func startTracing(t *testing.T) *otlptest.Receiver {
	t.Helper()
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	shutdown, err := tracing.Setup(context.Background(), "isotope-router")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(context.Background()) })
	return rcv
}

// TestTraceRoutedRequest: with tracing on, a routed request is a server
// span named after its route that continues the caller's trace, the
// function receives that span's traceparent beside the X-Fission-*
// headers, and a garbage traceparent neither breaks routing nor reaches
// the function.
func TestTraceRoutedRequest(t *testing.T) {
	rcv := startTracing(t)
	e := newTestEnv(t)
	e.exec.setCold("default", "users")
	e.create(function("default", "users"))
	e.create(trigger("default", "users-route", v1.HTTPTriggerSpec{
		RelativeURL: "/users/{id}", Methods: []string{"GET"}, FunctionReference: ref("users"),
	}))
	e.waitStatus("GET", "/users/1", 200)

	const upstream = "4bf92f3577b34da6a3ce929d0e0e4736"
	ec := e.echoOf("GET", "/users/42", "Traceparent", "00-"+upstream+"-00f067aa0ba902b7-01", "Tracestate", "congo=t61rcWkgMzE")
	tp := ec.Header.Get("Traceparent")
	if !strings.HasPrefix(tp, "00-"+upstream+"-") || strings.Contains(tp, "00f067aa0ba902b7") {
		t.Fatalf("function saw traceparent %q, want the upstream trace with the router's span as parent", tp)
	}
	if ec.Header.Get("Tracestate") != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate = %q, want the caller's kept", ec.Header.Get("Tracestate"))
	}
	if ec.Header.Get("X-Fission-Function-Name") != "users" {
		t.Errorf("X-Fission-Function-Name = %q with tracing on", ec.Header.Get("X-Fission-Function-Name"))
	}
	routerSpan := tp[36:52]

	for _, garbage := range []string{"garbage", "00-" + upstream + "-0000000000000000-01", "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01", "00-" + upstream + "-00f067aa0ba902b7-zz"} {
		ec := e.echoOf("GET", "/users/7", "Traceparent", garbage)
		if got := ec.Header.Get("Traceparent"); len(got) != 55 || got == garbage {
			t.Fatalf("after traceparent %q the function saw %q, want a fresh one", garbage, got)
		}
	}
	code, _, _ := e.do("GET", "/users/8", "Traceparent", strings.Repeat("x", 8<<10))
	if code != 200 {
		t.Fatalf("an 8 KiB garbage traceparent got %d, want 200", code)
	}

	spans := rcv.WaitFor(t, 10*time.Second, "the router span of the upstream trace", func(s []otlptest.Span) bool {
		return len(otlptest.Trace(s, upstream)) > 0
	})
	s := otlptest.Trace(spans, upstream)[0]
	if s.Name != "GET /users/{id}" || s.SpanID != routerSpan || s.ParentID != "00f067aa0ba902b7" {
		t.Fatalf("router span = %s (span %s parent %s), want GET /users/{id} under the caller:\n%s", s.Name, s.SpanID, s.ParentID, otlptest.Dump(spans))
	}
	for k, v := range map[string]any{
		"http.route": "/users/{id}", "faas.name": "users", "isotope.function.namespace": "default",
		"http.response.status_code": int64(200), "url.path": "/users/42", "faas.trigger": "http",
	} {
		if s.Attrs[k] != v {
			t.Errorf("router span %s = %v, want %v", k, s.Attrs[k], v)
		}
	}
	// The first request after setCold was the cold one.
	var cold int
	for _, s := range spans {
		if s.Attrs["faas.coldstart"] == true {
			cold++
		}
	}
	if cold != 1 {
		t.Errorf("%d spans marked cold, want 1:\n%s", cold, otlptest.Dump(spans))
	}
}

// TestTraceFailures: a failed acquire and a 5xx mark the router span as
// an error, with the status the caller got.
func TestTraceFailures(t *testing.T) {
	rcv := startTracing(t)
	e := newTestEnv(t)
	e.create(function("default", "down"))
	e.exec.fail("default", "down", &executor.Error{Code: http.StatusServiceUnavailable, Message: "not ready"})
	e.waitStatus("GET", "/fission-function/default/down", http.StatusServiceUnavailable)
	spans := rcv.WaitFor(t, 10*time.Second, "the failed request's span", func(s []otlptest.Span) bool {
		return otlptest.Has(s, "GET /fission-function/default/down")
	})
	s := otlptest.Named(spans, "GET /fission-function/default/down")[0]
	if !s.Error || s.Attrs["http.response.status_code"] != int64(503) {
		t.Fatalf("span of a 503 = error %v, status %v", s.Error, s.Attrs["http.response.status_code"])
	}
}

// BenchmarkServeHTTPTracing measures the router's cost of tracing: off
// (the default: nothing installed) against on with every span sampled
// and recorded in memory (no export, so the SDK's own cost).
func BenchmarkServeHTTPTracing(b *testing.B) {
	fn := function("default", "fn")
	tr := trigger("default", "t", v1.HTTPTriggerSpec{RelativeURL: "/fn", Methods: []string{"GET"}, FunctionReference: ref("fn")})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi\n")) })
	rt := New(Config{Executor: handlerExec{hello}})
	rt.table.Store(buildTable([]*v1.HTTPTrigger{tr}, []*v1.Function{fn}))
	req := httptest.NewRequest("GET", "/fn", nil)
	run := func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req.Header = http.Header{}
			rt.ServeHTTP(httptest.NewRecorder(), req)
		}
	}
	b.Run("off", run)
	b.Run("on", func(b *testing.B) {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		restore := tracing.Install(tp)
		defer restore()
		run(b)
	})
}

// TestTracingOffAddsNoAllocations: with tracing off a routed request
// allocates no more than the router did without tracing code at all:
// the same count as with the tracing hook bypassed.
func TestTracingOffAddsNoAllocations(t *testing.T) {
	if tracing.Enabled() {
		t.Fatal("tracing on by default")
	}
	fn := function("default", "fn")
	tr := trigger("default", "t", v1.HTTPTriggerSpec{RelativeURL: "/fn", Methods: []string{"GET"}, FunctionReference: ref("fn")})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi\n")) })
	rt := New(Config{Executor: handlerExec{hello}})
	rt.table.Store(buildTable([]*v1.HTTPTrigger{tr}, []*v1.Function{fn}))
	req := httptest.NewRequest("GET", "/fn", nil)
	m, _, _ := rt.table.Load().lookup("GET", req.Host, "/fn")
	w := httptest.NewRecorder()
	viaServeHTTP := testing.AllocsPerRun(200, func() {
		req.Header = http.Header{}
		w.Body.Reset()
		rt.ServeHTTP(w, req)
	})
	direct := testing.AllocsPerRun(200, func() {
		req.Header = http.Header{}
		w.Body.Reset()
		rt.serveFunction(w, req, fn, &m)
	})
	// ServeHTTP adds only the table lookup's own allocations.
	lookup := testing.AllocsPerRun(200, func() { rt.table.Load().lookup("GET", req.Host, "/fn") })
	if viaServeHTTP > direct+lookup {
		t.Fatalf("ServeHTTP with tracing off: %.0f allocs, want at most serveFunction's %.0f + lookup's %.0f", viaServeHTTP, direct, lookup)
	}
}
