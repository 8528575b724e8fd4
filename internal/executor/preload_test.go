package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// urlArchive serves the file at path over loopback HTTP (a stand-in for
// the storage service) and returns it as a deploy archive with its
// checksum.
func urlArchive(t *testing.T, path string) v1.Archive {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(path))))
	t.Cleanup(srv.Close)
	return v1.Archive{Type: v1.ArchiveTypeURL, URL: srv.URL + "/" + filepath.Base(path),
		Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}}
}

// acquireServe acquires fn, serves one GET / and reports the body and
// whether the request was a cold start.
func acquireServe(t *testing.T, f *fixture, fn *v1.Function, path string) (body string, cold bool) {
	t.Helper()
	l, err := f.m.Acquire(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(nil)
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		t.Fatalf("%s: status %d: %s", fn.Name, rec.Code, rec.Body)
	}
	return rec.Body.String(), l.ColdStart()
}

// A WebAssembly function whose package exists when the executor starts
// is fetched and compiled at start-up, not on its first request.
func TestWasmFunctionsArePreloadedAtStartUp(t *testing.T) {
	f, rt := wasmFixture(t)
	f.pkg("hello", string(wasmtest.WAGIStatic("Content-Type: text/plain\n\npreloaded\n")), v1.BuildStatusNone)
	fn := f.fn("hello", "hello", nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	waitForWithin(t, compileWait, "the function to be preloaded", func() bool { return f.instances(fn) == 1 })
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 1 {
		t.Fatalf("runtime stats %+v before any request: want the module compiled (or read from the disk cache) once", s)
	}
	body, cold := acquireServe(t, f, fn, "/")
	if body != "preloaded\n" || cold {
		t.Fatalf("first request: %q, cold start %v; want a warm instance", body, cold)
	}
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 1 || s.SharedLoads != 0 {
		t.Fatalf("runtime stats %+v after the first request: want no second load", s)
	}
}

// A Go reactor function created before its package is built is loaded,
// and its reactor instance warmed, as soon as the package becomes ready:
// its first request does not wait for a Go runtime to start.
func TestWasmFunctionIsPreloadedWhenItsPackageBecomesReady(t *testing.T) {
	reactor, err := wasmtest.BuildReactor()
	if err != nil {
		t.Fatal(err)
	}
	f, rt := wasmFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)

	pkg := f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "go"},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: "wasm"},
			Source:      v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: []byte("package main")},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusPending},
	}).(*v1.Package)
	fn := f.fn("hello", "go", func(s *v1.FunctionSpec) { s.Package.FunctionName = "Hello" })
	// A pending first build: nothing to load, and a request says why.
	if _, err := f.m.Acquire(ctx, fn); CodeOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("before the build: %v (code %d), want 503", err, CodeOf(err))
	}
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 0 {
		t.Fatalf("compiled before the package had a deployment: %+v", s)
	}

	// The build succeeds: deployment, then status, as the builder manager
	// writes them.
	pkg.Spec.Deployment = urlArchive(t, reactor)
	pkg, err = update(ctx, f.st, pkg)
	if err != nil {
		t.Fatal(err)
	}
	pkg.Status.BuildStatus = v1.BuildStatusSucceeded
	if _, err := f.st.UpdateStatus(ctx, pkg); err != nil {
		t.Fatal(err)
	}
	waitForWithin(t, compileWait, "the function to be preloaded", func() bool { return f.instances(fn) == 1 })
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 1 {
		t.Fatalf("runtime stats %+v before any request: want one compile", s)
	}
	body, cold := acquireServe(t, f, fn, "/")
	if body != "hello" || cold {
		t.Fatalf("first request: %q, cold start %v; want a warm instance", body, cold)
	}
}

// A preload that fails (here the storage service is down) is logged,
// and the next request loads the function.
func TestFailedPreloadIsRetriedByTheNextRequest(t *testing.T) {
	mod := wasmtest.WAGIStatic("Content-Type: text/plain\n\nback\n")
	sum := sha256.Sum256(mod)
	var up atomic.Bool
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "storage is down", http.StatusServiceUnavailable)
			return
		}
		w.Write(mod)
	}))
	defer storage.Close()

	f, _ := wasmFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "flaky"},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: "wasm"},
			Deployment: v1.Archive{Type: v1.ArchiveTypeURL, URL: storage.URL + "/flaky.wasm",
				Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
	})
	fn := f.fn("flaky", "flaky", nil)
	go f.m.Run(ctx)
	waitFor(t, "the failed preload in the function log", func() bool {
		for _, ln := range f.logs.Tail("default", "flaky", 0) {
			if ln.Stream == "host" && strings.Contains(ln.Text, "storage is down") {
				return true
			}
		}
		return false
	})
	if n := f.instances(fn); n != 0 {
		t.Fatalf("%d instances after a failed preload", n)
	}
	up.Store(true)
	// A preload started by another watch event may still be failing
	// against the storage that was down; a request after it loads the
	// function.
	waitFor(t, "a request to load the function once storage is back", func() bool {
		l, err := f.m.Acquire(context.Background(), fn)
		if err != nil {
			return false
		}
		defer l.Release(nil)
		rec := httptest.NewRecorder()
		l.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		return rec.Code == 200 && rec.Body.String() == "back\n"
	})
}
