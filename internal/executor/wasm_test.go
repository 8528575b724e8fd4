package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// wasmFixture is a fixture whose executor has a WebAssembly runtime and a
// wasm-env environment named "wasm".
func wasmFixture(t *testing.T) (*fixture, *wasm.Runtime) {
	t.Helper()
	// The compile cache is shared with the wasm package's tests: a Go
	// guest takes a minute to compile under the race detector.
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{CacheDir: wasmtest.CompileCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	f := newFixture(t, func(c *Config) { c.Wasm = rt })
	f.env = f.create(&v1.Environment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wasm"},
		Spec:       v1.EnvironmentSpec{Version: 3, Runtime: v1.Runtime{Image: "ghcr.io/acme/isotope/wasm-env:0.1"}},
	}).(*v1.Environment)
	return f, rt
}

func TestWasmLiteralArchiveServedInProcessWithOneLoadUnderABurst(t *testing.T) {
	f, rt := wasmFixture(t)
	f.pkg("hello", string(wasmtest.WAGIStatic("Content-Type: text/plain\n\nhello wasm\n")), v1.BuildStatusNone)
	fn := f.fn("hello", "hello", nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := f.m.Acquire(context.Background(), fn)
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Release(nil)
			rec := httptest.NewRecorder()
			l.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != 200 || rec.Body.String() != "hello wasm\n" {
				t.Errorf("got %d %q", rec.Code, rec.Body)
			}
		}()
	}
	wg.Wait()
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 1 || s.SharedLoads != 0 {
		t.Fatalf("runtime stats %+v: want exactly one compile and load", s)
	}
	if got := counterValue(f.m.metrics.specializations.WithLabelValues("poolmgr", "wasm", "success")); got != 1 {
		t.Fatalf("specializations = %v, want 1", got)
	}
}

func TestWasmURLArchiveFromStorageWithStderrInTheLog(t *testing.T) {
	path, err := wasmtest.BuildWAGI()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(mod)
	storage := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(path))))
	defer storage.Close()

	f, _ := wasmFixture(t)
	f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wagi"},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: "wasm"},
			Deployment: v1.Archive{Type: v1.ArchiveTypeURL, URL: storage.URL + "/" + filepath.Base(path),
				Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
	})
	fn := f.fn("wagi", "wagi", func(s *v1.FunctionSpec) { s.FunctionTimeout = 10 })
	l, err := f.m.Acquire(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("POST", "/items?x=1", strings.NewReader("payload")))
	l.Release(nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"body":"payload"`) || !strings.Contains(rec.Body.String(), `"method":"POST"`) {
		t.Fatalf("WAGI answer %d: %s", rec.Code, rec.Body)
	}
	var found bool
	for _, ln := range f.logs.Tail("default", "wagi", 0) {
		found = found || (ln.Stream == "stderr" && strings.Contains(ln.Text, "serving POST"))
	}
	if !found {
		t.Fatalf("guest stderr not in the function log: %v", f.logs.Tail("default", "wagi", 0))
	}
}

// A WebAssembly package stored while the executor runs is fetched and
// compiled before any function of it exists, and its archive directory
// is let go again; its first function then loads the compiled code.
func TestPackagePreparedBeforeItsFunctions(t *testing.T) {
	f, rt := wasmFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	code := wasmtest.WAGIStatic(fmt.Sprintf("Content-Type: text/plain\n\nprepared %d\n", time.Now().UnixNano()))
	sum := sha256.Sum256(code)
	before := rt.Stats()
	f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "prep"},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: f.env.Name},
			Deployment: v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: code,
				Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
	})
	waitFor(t, "the package's module to be compiled", func() bool {
		s := rt.Stats()
		return s.Compiles+s.DiskCacheHits > before.Compiles+before.DiskCacheHits
	})
	waitFor(t, "the prepared archive directory to be let go", func() bool {
		_, err := os.Stat(filepath.Join(f.m.cfg.WorkDir, "wasm", "default", "_sha256"))
		return os.IsNotExist(err)
	})
	prepared := rt.Stats()
	if body, _ := acquireServe(t, f, f.fn("prep", "prep", nil), "/"); !strings.HasPrefix(body, "prepared ") {
		t.Fatalf("first function of the package answered %q", body)
	}
	if s := rt.Stats(); s.Compiles != prepared.Compiles || s.DiskCacheHits != prepared.DiskCacheHits || s.SharedLoads != prepared.SharedLoads+1 {
		t.Fatalf("after the first function's load: %+v, prepared: %+v; want the prepared code shared, nothing compiled", s, prepared)
	}
}
