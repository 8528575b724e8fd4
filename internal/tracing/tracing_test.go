package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"isotope.dev/isotope/internal/testing/otlptest"
	"isotope.dev/isotope/internal/tracing"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		proto   string
		errWant string
	}{
		{name: "nothing set: off", env: nil},
		{name: "endpoint: on over HTTP", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, on: true, proto: tracing.ProtocolHTTP},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, on: true, proto: tracing.ProtocolHTTP},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true, proto: tracing.ProtocolGRPC},
		{name: "traces protocol wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, on: true, proto: tracing.ProtocolGRPC},
		{name: "exporter otlp without endpoint: SDK default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true, proto: tracing.ProtocolHTTP},
		{name: "SDK disabled wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}},
		{name: "exporter none wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{name: "bad protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, errWant: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "bad traces protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, errWant: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, errWant: "OTEL_TRACES_EXPORTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tracing.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errWant) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Enabled != tc.on || (tc.on && c.Protocol != tc.proto) {
				t.Fatalf("config = %+v, want enabled=%v protocol=%q", c, tc.on, tc.proto)
			}
		})
	}
}

// TestSetupExports sets tracing up from the environment against a real
// OTLP receiver over each protocol and checks what arrives: the span
// tree, the service name and the resource attributes from the
// environment.
func TestSetupExports(t *testing.T) {
	for _, proto := range []string{"http", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlptest.NewHTTP(t)
			if proto == "grpc" {
				rcv = otlptest.NewGRPC(t)
			}
			rcv.Setenv(t)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,team=fn")
			shutdown, err := tracing.Setup(context.Background(), "isotope-test")
			if err != nil {
				t.Fatal(err)
			}
			if !tracing.Enabled() {
				t.Fatal("tracing is off with an endpoint set")
			}
			ctx, parent := tracing.Start(context.Background(), "outer")
			_, child := tracing.Start(ctx, "inner")
			child.End()
			parent.End()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tracing.Enabled() {
				t.Fatal("tracing still on after shutdown")
			}
			spans := rcv.WaitFor(t, 10*time.Second, "outer and inner", func(s []otlptest.Span) bool {
				return otlptest.Has(s, "outer") && otlptest.Has(s, "inner")
			})
			outer, inner := otlptest.Named(spans, "outer")[0], otlptest.Named(spans, "inner")[0]
			if inner.ParentID != outer.SpanID || inner.TraceID != outer.TraceID || outer.ParentID != "" {
				t.Fatalf("inner is not outer's child:\n%s", otlptest.Dump(spans))
			}
			if outer.Service != "isotope-test" || outer.Resource["team"] != "fn" || outer.Resource["deployment.environment.name"] != "test" {
				t.Fatalf("resource = %v, want service isotope-test and the OTEL_RESOURCE_ATTRIBUTES", outer.Resource)
			}
		})
	}
}

func TestServiceNameFromEnv(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	t.Setenv("OTEL_SERVICE_NAME", "edge-functions")
	shutdown, err := tracing.Setup(context.Background(), "isotope")
	if err != nil {
		t.Fatal(err)
	}
	_, s := tracing.Start(context.Background(), "x")
	s.End()
	shutdown(context.Background())
	spans := rcv.WaitFor(t, 10*time.Second, "span x", func(s []otlptest.Span) bool { return otlptest.Has(s, "x") })
	if got := spans[0].Service; got != "edge-functions" {
		t.Fatalf("service.name = %q, want OTEL_SERVICE_NAME's edge-functions", got)
	}
}

func TestSamplerFromEnv(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	shutdown, err := tracing.Setup(context.Background(), "isotope")
	if err != nil {
		t.Fatal(err)
	}
	ctx, s := tracing.Start(context.Background(), "dropped")
	if s.IsRecording() {
		t.Fatal("span recorded under always_off")
	}
	// A dropped span still propagates, flagged not sampled.
	h := http.Header{}
	tracing.Inject(ctx, h)
	if tp := h.Get("Traceparent"); !strings.HasSuffix(tp, "-00") {
		t.Fatalf("traceparent = %q, want one flagged not sampled", tp)
	}
	s.End()
	shutdown(context.Background())
	if spans := rcv.Spans(); len(spans) != 0 {
		t.Fatalf("spans exported under always_off:\n%s", otlptest.Dump(spans))
	}
}

// TestServeContinuesTrace sends requests through tracing.Serve on a real
// HTTP server: a valid traceparent continues the caller's trace, a
// garbage one starts a new trace and the request is served all the same.
func TestServeContinuesTrace(t *testing.T) {
	rcv := otlptest.NewHTTP(t)
	rcv.Setenv(t)
	shutdown, err := tracing.Setup(context.Background(), "isotope")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracing.Serve(w, r, "serve "+r.URL.Path, nil, func(w http.ResponseWriter, r *http.Request) {
			tracing.Call(w, r, "call", trace.SpanKindInternal, nil, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/fail" {
					w.WriteHeader(http.StatusBadGateway)
				}
				io.WriteString(w, r.Header.Get("Traceparent"))
			})
		})
	}))
	defer srv.Close()

	const upstream = "0af7651916cd43dd8448eb211c80319c"
	get := func(path, traceparent string) string {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
			req.Header.Set("Tracestate", "vendor=opaque")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	got := get("/ok", "00-"+upstream+"-b7ad6b7169203331-01")
	if !strings.HasPrefix(got, "00-"+upstream+"-") {
		t.Fatalf("handler saw traceparent %q, want the upstream trace %s continued", got, upstream)
	}
	for _, garbage := range []string{"garbage", "00-zz-yy-01", "ff-" + upstream + "-b7ad6b7169203331-01", strings.Repeat("0", 5000)} {
		got := get("/garbage", garbage)
		if len(got) != 55 || strings.Contains(got, upstream) {
			t.Fatalf("after traceparent %.40q the handler saw %q, want a fresh valid one", garbage, got)
		}
	}
	get("/fail", "")
	shutdown(context.Background())

	spans := rcv.Spans()
	serve := otlptest.Named(spans, "serve /ok")
	if len(serve) != 1 || serve[0].TraceID != upstream || serve[0].ParentID != "b7ad6b7169203331" || serve[0].Kind != 2 {
		t.Fatalf("server span does not continue the upstream trace:\n%s", otlptest.Dump(spans))
	}
	if serve[0].Attrs["http.response.status_code"] != int64(200) || serve[0].Attrs["http.request.method"] != "GET" {
		t.Fatalf("server span attributes = %v", serve[0].Attrs)
	}
	for _, c := range otlptest.Named(spans, "call") {
		if p, ok := otlptest.Parent(spans, c); !ok || !strings.HasPrefix(p.Name, "serve ") {
			t.Fatalf("call span without its server span parent:\n%s", otlptest.Dump(spans))
		}
	}
	if f := otlptest.Named(spans, "serve /fail"); len(f) != 1 || !f[0].Error {
		t.Fatalf("a 502 did not mark the server span failed:\n%s", otlptest.Dump(spans))
	}
}

// TestOffCostsNothing: with tracing off, the calls on the request path
// neither allocate nor touch the headers.
func TestOffCostsNothing(t *testing.T) {
	if tracing.Enabled() {
		t.Fatal("tracing on without configuration")
	}
	ctx := context.Background()
	h := http.Header{"Traceparent": {"garbage"}}
	allocs := testing.AllocsPerRun(100, func() {
		c, span := tracing.Start(ctx, "x")
		tracing.Inject(c, h)
		c = tracing.Extract(c, h)
		span.End()
		_ = c
	})
	if allocs != 0 {
		t.Fatalf("tracing off allocates %.1f per call, want 0", allocs)
	}
	if h.Get("Traceparent") != "garbage" {
		t.Fatal("tracing off changed the headers")
	}
}
