package sdk_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
	"isotope.dev/isotope/sdk"
)

// The builder's path: the embedded SDK written out as a standalone module,
// a user function plus the generated wrapper, built for wasip1 and run.
func TestWriteGoModuleBuildsStandalone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	sdkDir := filepath.Join(t.TempDir(), "isotope-sdk")
	if err := sdk.WriteGoModule(sdkDir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "sdk", "go", "isotope_test.go")); err == nil {
		t.Error("test files were written")
	}
	src := t.TempDir()
	files := map[string]string{
		"go.mod":             "module userfunc\n\ngo 1.26\n\nrequire isotope.dev/isotope v0.0.0\n\nreplace isotope.dev/isotope => " + sdkDir + "\n",
		"handler.go":         "package main\n\nimport \"net/http\"\n\nfunc Handler(w http.ResponseWriter, r *http.Request) { w.Write([]byte(\"standalone \" + r.URL.Query().Get(\"n\"))) }\n",
		"isotope_wrapper.go": "package main\n\nimport isotope \"isotope.dev/isotope/sdk/go\"\n\nfunc init() { isotope.Register(\"Handler\", Handler) }\n\nfunc main() {}\n",
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(src, n), []byte(c), 0o644)
	}
	out := filepath.Join(t.TempDir(), "fn.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = src
	// No module proxy: the SDK needs nothing but the standard library.
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=mod", "GOPROXY=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: wasmtest.CompileCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	m, err := rt.Load(ctx, wasm.LoadRequest{Path: out, Entrypoint: "Handler"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := httptest.NewRecorder()
	m.ServeHTTP(w, httptest.NewRequest("GET", "/?n=7", nil))
	if b, _ := io.ReadAll(w.Body); w.Code != 200 || string(b) != "standalone 7" {
		t.Errorf("%d %q", w.Code, b)
	}
}
