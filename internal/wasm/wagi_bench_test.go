package wasm_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// BenchmarkWAGIHello serves one request to the hand-assembled WAGI
// module in-process: the runtime's own cost per request, with its
// allocations (go test -bench WAGIHello -benchmem ./internal/wasm).
func BenchmarkWAGIHello(b *testing.B) {
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, wasm.LoadRequest{Wasm: wasmtest.WAGIHello(), Name: "bench/wagi"})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/hello", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("WAGI answered %d %q", w.Code, w.Body.String())
		}
	}
}
