package isotope

import (
	"fmt"
	"net/http"
	"testing"
)

// routedFrame is a request as the router hands it to a function: the
// client's headers plus the X-Fission-* ones and the routing meta.
func routedFrame() []byte {
	hdr := [][2]string{
		{"Accept-Encoding", "gzip"},
		{"User-Agent", "Go-http-client/1.1"},
		{"X-Fission-Full-Url", "/hello?name=bench"},
		{"X-Fission-Function-Name", "hello"},
		{"X-Fission-Function-Namespace", "default"},
		{"X-Fission-Function-Resourceversion", "1234"},
		{"X-Fission-Function-Uid", "6b9b1d6e-7a4f-4a36-9a53-0c1d2e3f4a5b"},
		{"X-Forwarded-For", "127.0.0.1"},
	}
	meta := [][2]string{{metaMatchedRoute, "/hello"}, {metaFullURL, "http://example.com/hello?name=bench"}}
	return frame("GET", "/hello?name=bench", hdr, meta, "")
}

// helloHandler is examples/hello's handler.
func helloHandler(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "world"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello, %s! (from WebAssembly, %s %s)\n", name, r.Method, r.URL.Path)
}

// BenchmarkHandleFrame is the SDK's own cost per request (plus the hello
// handler's), natively: a Go guest pays the same allocations, each
// several times slower in WebAssembly.
func BenchmarkHandleFrame(b *testing.B) {
	mu.Lock()
	handlers, served, chosen = map[string]http.Handler{"Handler": http.HandlerFunc(helloHandler)}, nil, nil
	mu.Unlock()
	b.Setenv(EntrypointEnv, "")
	f := routedFrame()
	b.ReportAllocs()
	for b.Loop() {
		handleFrame(nil, f)
	}
}
