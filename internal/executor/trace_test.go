package executor

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/testing/otlptest"
	"isotope.dev/isotope/internal/tracing"
)

// TestColdStartTrace: with tracing on, a cold request to a local process
// function is request → executor.acquire (cold) → executor.specialize,
// and request → process.call, whose span is the parent the process sees
// in traceparent.
func TestColdStartTrace(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	shutdown, err := tracing.Setup(context.Background(), "isotope-executor")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	f := newFixture(t, nil)
	f.pkg("code", "hello", v1.BuildStatusNone)
	fn := f.fn("traced", "code", nil)

	ctx, req := tracing.Start(context.Background(), "request")
	l, err := f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("GET", "/?header=Traceparent", nil).WithContext(ctx))
	l.Release(nil)
	req.End()
	tp := rec.Body.String()

	spans := rcv.WaitFor(t, 20*time.Second, "the cold request's spans", func(s []otlptest.Span) bool {
		return otlptest.Has(s, "request") && otlptest.Has(s, "process.call") && otlptest.Has(s, "executor.specialize")
	})
	for child, parent := range map[string]string{
		"executor.acquire": "request", "executor.specialize": "executor.acquire", "process.call": "request",
	} {
		c := otlptest.Named(spans, child)
		if len(c) != 1 {
			t.Fatalf("%d %s spans:\n%s", len(c), child, otlptest.Dump(spans))
		}
		if p, ok := otlptest.Parent(spans, c[0]); !ok || p.Name != parent {
			t.Errorf("%s is not under %s:\n%s", child, parent, otlptest.Dump(spans))
		}
	}
	acq := otlptest.Named(spans, "executor.acquire")[0]
	if acq.Attrs["faas.coldstart"] != true || acq.Attrs["faas.name"] != "traced" {
		t.Errorf("executor.acquire attributes %v", acq.Attrs)
	}
	spec := otlptest.Named(spans, "executor.specialize")[0]
	if spec.Attrs["isotope.runtime"] != "process" || spec.Attrs["isotope.executor.type"] != "poolmgr" {
		t.Errorf("executor.specialize attributes %v", spec.Attrs)
	}
	call := otlptest.Named(spans, "process.call")[0]
	if want := "00-" + call.TraceID + "-" + call.SpanID + "-01"; tp != want {
		t.Errorf("the process saw traceparent %q, want %q", tp, want)
	}
}
