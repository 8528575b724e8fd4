// Package otlptest is an OTLP trace receiver for tests: a real OTLP/HTTP
// (POST /v1/traces, protobuf) or OTLP/gRPC (TraceService) server on
// loopback that decodes the ExportTraceServiceRequests an exporter sends
// and keeps their spans, so tests can check the span tree a process
// exported.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span is one received span, flattened.
type Span struct {
	Name     string
	Service  string // the resource's service.name
	TraceID  string // hex
	SpanID   string // hex
	ParentID string // hex, "" for a root span
	Kind     tracepb.Span_SpanKind
	Attrs    map[string]any // string, int64, bool or float64 values
	Error    bool           // status code ERROR
	Resource map[string]any
	Links    []Link
}

// Link is a span's link to another span.
type Link struct{ TraceID, SpanID string }

// Receiver collects the spans exported to it.
type Receiver struct {
	// Endpoint is the URL to give an exporter
	// (OTEL_EXPORTER_OTLP_ENDPOINT).
	Endpoint string
	// Protocol is "http/protobuf" or "grpc"
	// (OTEL_EXPORTER_OTLP_PROTOCOL).
	Protocol string

	mu       sync.Mutex
	spans    []Span
	requests int
}

// NewHTTP starts an OTLP/HTTP receiver, stopped when t ends.
func NewHTTP(t testing.TB) *Receiver {
	r := &Receiver{Protocol: "http/protobuf"}
	srv := httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	t.Cleanup(srv.Close)
	r.Endpoint = srv.URL
	return r
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "want application/x-protobuf, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, "not an ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// NewGRPC starts an OTLP/gRPC receiver, stopped when t ends.
func NewGRPC(t testing.TB) *Receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Protocol: "grpc", Endpoint: "http://" + ln.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, traceService{r: r})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r
}

type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Env is the environment that points an Isotope process's exporter at
// r, with a short batch delay so spans arrive within a test's patience.
func (r *Receiver) Env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.Endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=" + r.Protocol,
		"OTEL_EXPORTER_OTLP_INSECURE=true",
		"OTEL_BSP_SCHEDULE_DELAY=50",
	}
}

// Setenv sets Env in the test's own environment (t.Setenv).
func (r *Receiver) Setenv(t testing.TB) {
	for _, kv := range r.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func (r *Receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		svc, _ := res["service.name"].(string)
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Name: s.GetName(), Service: svc, Kind: s.GetKind(),
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Attrs: attrs(s.GetAttributes()), Resource: res,
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				if len(s.GetParentSpanId()) > 0 && !bytes.Equal(s.GetParentSpanId(), make([]byte, 8)) {
					sp.ParentID = hex.EncodeToString(s.GetParentSpanId())
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.requests++
	r.mu.Unlock()
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = x.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = x.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = x.DoubleValue
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitFor polls until ok holds for the spans received, or fails t after
// timeout listing what did arrive.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, ok func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans := r.Spans()
		if ok(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("OTLP receiver: no %s within %s; received:\n%s", what, timeout, Dump(spans))
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// Named returns the spans named name.
func Named(spans []Span, name string) []Span {
	var out []Span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// Has reports whether spans hold one named name.
func Has(spans []Span, name string) bool { return len(Named(spans, name)) > 0 }

// Trace returns the spans of one trace.
func Trace(spans []Span, traceID string) []Span {
	var out []Span
	for _, s := range spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// Parent returns s's parent among spans.
func Parent(spans []Span, s Span) (Span, bool) {
	for _, p := range spans {
		if p.SpanID == s.ParentID && p.TraceID == s.TraceID {
			return p, true
		}
	}
	return Span{}, false
}

// Linked returns the spans s links to, among spans.
func Linked(spans []Span, s Span) []Span {
	var out []Span
	for _, l := range s.Links {
		for _, o := range spans {
			if o.TraceID == l.TraceID && o.SpanID == l.SpanID {
				out = append(out, o)
			}
		}
	}
	return out
}

// Dump renders spans as an indented tree per trace, for failure
// messages.
func Dump(spans []Span) string {
	var b strings.Builder
	byParent := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.TraceID+s.SpanID] = true
	}
	var roots []Span
	for _, s := range spans {
		if s.ParentID == "" || !ids[s.TraceID+s.ParentID] {
			roots = append(roots, s)
			continue
		}
		byParent[s.TraceID+s.ParentID] = append(byParent[s.TraceID+s.ParentID], s)
	}
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s [%s] trace=%s span=%s parent=%s links=%v %v\n", strings.Repeat("  ", depth), s.Name, s.Service, s.TraceID[:8], s.SpanID, s.ParentID, s.Links, s.Attrs)
		for _, c := range byParent[s.TraceID+s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, s := range roots {
		walk(s, 0)
	}
	return b.String()
}
