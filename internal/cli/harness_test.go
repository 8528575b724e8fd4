package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

// testAPI is a real API server on loopback over a real bbolt file, with
// the storage service mounted at /v1/archive as `isotope server` does.
type testAPI struct {
	t   *testing.T
	URL string
	// Store is the server's own store, for assertions that do not go
	// through the CLI.
	Store store.Store
	// extra routes a test adds (e.g. a fake /v1/buildlogs).
	mu    sync.Mutex
	extra map[string]http.Handler
}

func newTestAPI(t *testing.T) *testAPI { return newTestAPIWithToken(t, "") }

// newTestAPIWithToken is newTestAPI with a server that requires token.
func newTestAPIWithToken(t *testing.T, token string) *testAPI {
	t.Helper()
	dir := t.TempDir()
	bs, err := boltstore.Open(filepath.Join(dir, "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := storagesvc.NewLocalBackend(filepath.Join(dir, "archives"), storagesvc.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &testAPI{t: t, Store: bs, extra: map[string]http.Handler{}}
	mux := http.NewServeMux()
	mux.Handle(storagesvc.ArchivePath, storagesvc.NewServer(backend, storagesvc.Options{Token: token, Logger: slog.New(slog.DiscardHandler)}))
	mux.HandleFunc("/v1/buildlogs", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		h := a.extra["/v1/buildlogs"]
		a.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.Handle("/", apiserver.New(bs, apiserver.Options{Token: token, Logger: slog.New(slog.DiscardHandler)}))
	srv := httptest.NewServer(mux)
	a.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		bs.Close()
	})
	return a
}

func (a *testAPI) handle(path string, h http.Handler) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.extra[path] = h
}

// result is what one CLI run printed and returned.
type result struct {
	Stdout, Stderr string
	Err            error
}

// run executes the CLI with args against the test server.
func (a *testAPI) run(args ...string) result {
	a.t.Helper()
	return a.runCtx(context.Background(), args...)
}

func (a *testAPI) runCtx(ctx context.Context, args ...string) result {
	root := NewRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"--server", a.URL}, args...))
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return result{Stdout: out.String(), Stderr: errb.String(), Err: err}
}

// ok runs the CLI and fails the test if the command failed.
func (a *testAPI) ok(args ...string) result {
	a.t.Helper()
	r := a.run(args...)
	if r.Err != nil {
		a.t.Fatalf("isotope %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r
}

// fails runs the CLI, expects a failure whose one-line message contains
// every want, and returns it.
func (a *testAPI) fails(args []string, want ...string) result {
	a.t.Helper()
	r := a.run(args...)
	if r.Err == nil {
		a.t.Fatalf("isotope %s: succeeded, want failure\nstdout: %s", strings.Join(args, " "), r.Stdout)
	}
	msg := r.Err.Error()
	if strings.Contains(msg, "\n") {
		a.t.Errorf("isotope %s: error is not one line: %q", strings.Join(args, " "), msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			a.t.Errorf("isotope %s: error %q does not contain %q", strings.Join(args, " "), msg, w)
		}
	}
	return r
}
