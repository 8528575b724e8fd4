// Package buildtest holds what the tests of the C and Rust builders
// share: serving a built deploy directory with the real WebAssembly
// runtime, and writing source trees.
package buildtest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"isotope.dev/isotope/internal/wasm"
)

// One runtime for the whole test binary, as the server has one.
var (
	rtOnce sync.Once
	rt     *wasm.Runtime
	rtErr  error
)

// Serve loads the module in deploy into Isotope's runtime, checks that
// the runtime serves it as WAGI, and returns the status and body of a GET
// of path.
func Serve(t *testing.T, deploy, path string) (int, string) {
	t.Helper()
	return ServeAs(t, deploy, path, wasm.ABIWAGI)
}

// ServeAs is Serve for a module that must speak abi.
func ServeAs(t *testing.T, deploy, path string, abi wasm.ABI) (int, string) {
	t.Helper()
	ctx := context.Background()
	rtOnce.Do(func() { rt, rtErr = wasm.NewRuntime(ctx, wasm.Config{}) })
	if rtErr != nil {
		t.Fatal(rtErr)
	}
	mod, err := rt.Load(ctx, wasm.LoadRequest{Path: deploy, Name: "default/test"})
	if err != nil {
		t.Fatalf("runtime load: %v", err)
	}
	defer mod.Close()
	if mod.ABI() != abi {
		t.Errorf("runtime sees ABI %v, want %v", mod.ABI(), abi)
	}
	srv := httptest.NewServer(mod)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// WriteFiles writes files (slash-separated names relative to dir).
func WriteFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
