package wasm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The Go guests are built once per test binary (and cached across runs by
// wasmtest).
var (
	wagiOnce, reactorOnce   sync.Once
	wagiBytes, reactorBytes []byte
	wagiErr, reactorErr     error
)

func wagiModule(t testing.TB) []byte {
	t.Helper()
	wagiOnce.Do(func() {
		var p string
		if p, wagiErr = wasmtest.BuildWAGI(); wagiErr == nil {
			wagiBytes, wagiErr = os.ReadFile(p)
		}
	})
	if wagiErr != nil {
		t.Fatalf("building the WAGI guest: %v", wagiErr)
	}
	return wagiBytes
}

func reactorModule(t testing.TB) []byte {
	t.Helper()
	reactorOnce.Do(func() {
		var p string
		if p, reactorErr = wasmtest.BuildReactor(); reactorErr == nil {
			reactorBytes, reactorErr = os.ReadFile(p)
		}
	})
	if reactorErr != nil {
		t.Fatalf("building the reactor guest: %v", reactorErr)
	}
	return reactorBytes
}

var (
	sharedOnce sync.Once
	shared     *Runtime
)

// sharedRuntime is one Runtime for the tests that need no special
// Config, so each guest is compiled once per test binary at most (the
// disk cache spares even that on later runs; compiling a Go guest takes
// a minute under the race detector on a busy machine).
func sharedRuntime(t testing.TB) *Runtime {
	t.Helper()
	sharedOnce.Do(func() {
		var err error
		if shared, err = NewRuntime(context.Background(), Config{CacheDir: wasmtest.CompileCacheDir()}); err != nil {
			t.Fatal(err)
		}
	})
	return shared
}

func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	rt, err := NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	return rt
}

func load(t testing.TB, rt *Runtime, req LoadRequest) *Module {
	t.Helper()
	m, err := rt.Load(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// serve puts m behind a real loopback HTTP server, with route info.
func serve(t testing.TB, m http.Handler, matchedRoute string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := WithRouteInfo(r.Context(), matchedRoute, "https://edge.example"+r.RequestURI)
		m.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type result struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, method, url, body string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}
