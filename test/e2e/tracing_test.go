package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/testing/otlptest"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// spanTree checks parent/child links in the spans of one trace.
type spanTree struct {
	t     *testing.T
	spans []otlptest.Span
}

// one returns the only span named name, failing when there is not
// exactly one.
func (s spanTree) one(name string) otlptest.Span {
	s.t.Helper()
	got := otlptest.Named(s.spans, name)
	if len(got) != 1 {
		s.t.Fatalf("%d spans named %q, want 1:\n%s", len(got), name, otlptest.Dump(s.spans))
	}
	return got[0]
}

// child returns the only span named name whose parent is parent.
func (s spanTree) child(parent otlptest.Span, name string) otlptest.Span {
	s.t.Helper()
	var got []otlptest.Span
	for _, c := range otlptest.Named(s.spans, name) {
		if c.ParentID == parent.SpanID && c.TraceID == parent.TraceID {
			got = append(got, c)
		}
	}
	if len(got) != 1 {
		s.t.Fatalf("%d spans %q under %q, want 1:\n%s", len(got), name, parent.Name, otlptest.Dump(s.spans))
	}
	return got[0]
}

// attr checks one attribute of sp.
func (s spanTree) attr(sp otlptest.Span, key string, want any) {
	s.t.Helper()
	if got := sp.Attrs[key]; got != want {
		s.t.Errorf("span %s: %s = %v (%T), want %v", sp.Name, key, got, got, want)
	}
}

// specializationOf returns the executor.specialize span of a cold
// acquire: its child when the request started the specialization, else
// the span it links to (a preload, or another request's cold start,
// begun before it came).
func specializationOf(t *testing.T, spans []otlptest.Span, acq otlptest.Span) otlptest.Span {
	t.Helper()
	for _, s := range otlptest.Named(spans, "executor.specialize") {
		if s.ParentID == acq.SpanID && s.TraceID == acq.TraceID {
			return s
		}
	}
	for _, s := range otlptest.Linked(spans, acq) {
		if s.Name == "executor.specialize" {
			return s
		}
	}
	t.Fatalf("cold acquire span %s has no executor.specialize child or link:\n%s", acq.SpanID, otlptest.Dump(spans))
	return otlptest.Span{}
}

// tracedGet sends GET path to the router with a traceparent of trace id
// traceID until it answers 200, and returns the body.
func (p *platform) tracedGet(t *testing.T, path, traceID string) string {
	t.Helper()
	var body string
	waitFor(t, 2*time.Minute, "GET "+path+" to answer 200", func() error {
		code, b := p.get(t, "GET", path, map[string]string{"Traceparent": "00-" + traceID + "-00f067aa0ba902b7-01", "Tracestate": "up=1"})
		body = b
		if code != 200 {
			return fmt.Errorf("status %d: %.300s", code, b)
		}
		return nil
	})
	return body
}

// TestTracing runs `isotope server` with OTEL_EXPORTER_OTLP_ENDPOINT
// pointing at a real OTLP/HTTP receiver and checks the span trees of a
// build (fetch source → build → upload, through the builder process and
// the storage service) and of cold requests to a Go function, a WAGI
// module and a local process, each continuing the caller's trace, and
// that the function receives the trace context.
func TestTracing(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	p := startPlatformEnv(t, "", rcv.Env())
	if !strings.Contains(p.logs.String(), "tracing on") {
		t.Errorf("the server did not log that tracing is on:\n%s", p.logs)
	}

	// One build.
	p.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	p.ok("pkg", "create", "--name", "hello", "--env", "go", "--src", exampleSource(t))
	spans := rcv.WaitFor(t, time.Minute, "a build's spans", func(s []otlptest.Span) bool {
		return otlptest.Has(s, "build") && otlptest.Has(s, "storagesvc.upload")
	})
	build := spanTree{t, spans}.one("build")
	bt := spanTree{t, otlptest.Trace(spans, build.TraceID)}
	if build.ParentID != "" || build.Service != "isotope" {
		t.Errorf("build span: parent %q service %q, want a root of service isotope", build.ParentID, build.Service)
	}
	bt.attr(build, "isotope.package.name", "hello")
	bt.attr(build, "isotope.package.namespace", "default")
	bt.attr(build, "isotope.build.status", "succeeded")
	// The source is small enough to be inlined in the Package: no
	// download.
	fetch := bt.child(bt.child(build, "build.fetch"), "fetcher.fetch")
	bt.attr(fetch, "isotope.fetch.type", "source")
	// The builder is its own process: the trace crossed into it over HTTP.
	run := bt.child(build, "build.run")
	if b := bt.child(run, "POST /"); b.Service != "isotope-builder" {
		t.Errorf("builder span of service %q, want isotope-builder", b.Service)
	}
	up := bt.child(bt.child(build, "build.upload"), "fetcher.upload")
	bt.attr(bt.child(up, "storagesvc.upload"), "http.response.status_code", int64(200))

	// One cold request to the built function, continuing a caller's trace.
	p.ok("fn", "create", "--name", "hello", "--env", "go", "--pkg", "hello", "--entrypoint", "Handler")
	p.ok("route", "create", "--name", "hello", "--function", "hello", "--url", "/hello", "--method", "GET")
	const goTrace = "11111111111111111111111111111111"
	if body := p.tracedGet(t, "/hello?name=Traced", goTrace); !strings.Contains(body, "Hello, Traced!") {
		t.Fatalf("function answered %q", body)
	}
	spans = rcv.WaitFor(t, 30*time.Second, "the cold request's spans", func(s []otlptest.Span) bool {
		tr := otlptest.Trace(s, goTrace) // the router's span ends last: wait for it too
		return otlptest.Has(tr, "wasm.call") && otlptest.Has(tr, "GET /hello") && otlptest.Has(s, "executor.specialize")
	})
	rt := spanTree{t, otlptest.Trace(spans, goTrace)}
	root := rt.one("GET /hello")
	if root.ParentID != "00f067aa0ba902b7" || root.Kind != 2 {
		t.Errorf("router span: parent %s kind %v, want the caller's span, server kind", root.ParentID, root.Kind)
	}
	rt.attr(root, "http.route", "/hello")
	rt.attr(root, "faas.name", "hello")
	rt.attr(root, "faas.coldstart", true)
	rt.attr(root, "http.response.status_code", int64(200))
	acq := rt.child(root, "executor.acquire")
	rt.attr(acq, "faas.coldstart", true)
	rt.attr(acq, "isotope.executor.type", "poolmgr")
	spec := specializationOf(t, spans, acq)
	rt.attr(spec, "isotope.runtime", "wasm")
	rt.attr(spec, "isotope.package.name", "hello")
	rt.child(root, "wasm.call")
	// The deploy archive came from the storage service, the trace
	// carried over HTTP into its handler.
	var downloaded bool
	for _, f := range otlptest.Named(spans, "fetcher.fetch") {
		if f.Attrs["isotope.fetch.type"] == "deployment" && f.Attrs["isotope.package.name"] == "hello" {
			spanTree{t, spans}.child(f, "storagesvc.download")
			downloaded = true
		}
	}
	if !downloaded {
		t.Errorf("no fetcher.fetch of hello's deployment:\n%s", otlptest.Dump(spans))
	}

	// A WAGI guest gets the trace context as HTTP_TRACEPARENT, which
	// net/http/cgi turns back into a Traceparent header.
	wagi, err := wasmtest.BuildWAGI()
	if err != nil {
		t.Fatalf("build WAGI module: %v", err)
	}
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "wagi", "--env", "wasm", "--deploy", wagi, "--url", "/wagi", "--method", "GET")
	const wagiTrace = "22222222222222222222222222222222"
	var echo struct{ Headers map[string][]string }
	if err := json.Unmarshal([]byte(p.tracedGet(t, "/wagi", wagiTrace)), &echo); err != nil {
		t.Fatal(err)
	}
	tp := strings.Join(echo.Headers["Traceparent"], ",")
	if !strings.HasPrefix(tp, "00-"+wagiTrace+"-") || len(tp) != 55 {
		t.Fatalf("the WAGI guest saw Traceparent %q, want the caller's trace %s", tp, wagiTrace)
	}
	if got := strings.Join(echo.Headers["Tracestate"], ","); got != "up=1" {
		t.Errorf("the WAGI guest saw Tracestate %q, want the caller's up=1", got)
	}
	if got := echo.Headers["X-Fission-Function-Name"]; len(got) != 1 || got[0] != "wagi" {
		t.Errorf("X-Fission-Function-Name = %v beside the trace headers", got)
	}
	spans = rcv.WaitFor(t, 30*time.Second, "the WAGI request's spans", func(s []otlptest.Span) bool {
		tr := otlptest.Trace(s, wagiTrace)
		return otlptest.Has(tr, "wasm.call") && otlptest.Has(tr, "GET /wagi")
	})
	wt := spanTree{t, otlptest.Trace(spans, wagiTrace)}
	call := wt.child(wt.one("GET /wagi"), "wasm.call")
	if tp[36:52] != call.SpanID {
		t.Errorf("the guest's parent span is %s, want the wasm.call span %s:\n%s", tp[36:52], call.SpanID, otlptest.Dump(wt.spans))
	}

	// Garbage trace headers do not break routing.
	for _, garbage := range []string{"garbage", "00-" + strings.Repeat("g", 32) + "-00f067aa0ba902b7-01", strings.Repeat("-", 4000)} {
		code, body := p.get(t, "GET", "/wagi", map[string]string{"Traceparent": garbage, "Tracestate": ",,=;garbage=="})
		if code != 200 || strings.Contains(body, garbage) {
			t.Errorf("traceparent %.40q: %d, guest saw %.200s", garbage, code, body)
		}
	}

	// A local process function gets the process.call span's context over
	// HTTP.
	envserver := proctest.EnvServer(t)
	code := writeFile(t, t.TempDir(), "greeting.txt", []byte("hi"))
	p.ok("env", "create", "--name", "proc", "--image", "example.com/proc-env:1", "--runtime-command", envserver, "--poolsize", "1")
	p.ok("fn", "create", "--name", "greet", "--env", "proc", "--code", code)
	const procTrace = "33333333333333333333333333333333"
	tp = p.tracedGet(t, "/fission-function/greet?header=Traceparent", procTrace)
	spans = rcv.WaitFor(t, 30*time.Second, "the process request's spans", func(s []otlptest.Span) bool {
		tr := otlptest.Trace(s, procTrace)
		return otlptest.Has(tr, "process.call") && otlptest.Has(tr, "GET /fission-function/default/greet")
	})
	pt := spanTree{t, otlptest.Trace(spans, procTrace)}
	pc := pt.child(pt.one("GET /fission-function/default/greet"), "process.call")
	if tp != "00-"+procTrace+"-"+pc.SpanID+"-01" {
		t.Errorf("the process saw traceparent %q, want the process.call span %s of trace %s", tp, pc.SpanID, procTrace)
	}
	pt.attr(pc, "isotope.runtime", "process")
}

// TestTracingGRPC exports over OTLP/gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc)
// and checks that a request's spans arrive; then that a server without
// OTEL_* (tracing off) passes the caller's trace headers through
// untouched.
func TestTracingGRPC(t *testing.T) {
	rcv := otlptest.NewGRPC(t)
	wagi, err := wasmtest.BuildWAGI()
	if err != nil {
		t.Fatalf("build WAGI module: %v", err)
	}
	p := startPlatformEnv(t, "", rcv.Env())
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "wagi", "--env", "wasm", "--deploy", wagi, "--url", "/wagi", "--method", "GET")
	const id = "44444444444444444444444444444444"
	p.tracedGet(t, "/wagi", id)
	// The router's span ends after the response is written, so it may
	// come in a later export than its children: wait for it too.
	spans := rcv.WaitFor(t, 30*time.Second, "spans over gRPC", func(s []otlptest.Span) bool {
		tr := otlptest.Trace(s, id)
		return otlptest.Has(tr, "wasm.call") && otlptest.Has(tr, "GET /wagi")
	})
	st := spanTree{t, otlptest.Trace(spans, id)}
	specializationOf(t, spans, st.child(st.one("GET /wagi"), "executor.acquire"))

	// Off: a server without OTEL_* exports nothing and forwards the
	// caller's traceparent as it came.
	off := startPlatform(t, "")
	off.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	off.ok("fn", "create", "--name", "wagi", "--env", "wasm", "--deploy", wagi, "--url", "/wagi", "--method", "GET")
	const offID = "55555555555555555555555555555555"
	var echo struct{ Headers map[string][]string }
	json.Unmarshal([]byte(off.tracedGet(t, "/wagi", offID)), &echo)
	if got := strings.Join(echo.Headers["Traceparent"], ","); got != "00-"+offID+"-00f067aa0ba902b7-01" {
		t.Errorf("tracing off: the guest saw Traceparent %q, want the caller's unchanged", got)
	}
}
