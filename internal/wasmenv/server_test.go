package wasmenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

func newServer(t *testing.T, userfunc string) *httptest.Server {
	t.Helper()
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{CacheDir: wasmtest.CompileCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Runtime: rt, UserfuncDir: userfunc, Env: map[string]string{"GREETING": "from-env"}})
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
		rt.Close(context.Background())
	})
	return hs
}

func call(t *testing.T, method, url, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSpecializeV1(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user"), wasmtest.WAGIHello(), 0o644); err != nil {
		t.Fatal(err)
	}
	hs := newServer(t, dir)
	if code, _ := call(t, "GET", hs.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, body := call(t, "GET", hs.URL+"/", "", ""); code != 500 || !strings.Contains(body, "Generic container") {
		t.Errorf("before specialize: %d %q", code, body)
	}
	if code, body := call(t, "POST", hs.URL+"/specialize", "text/plain", ""); code != 200 {
		t.Fatalf("specialize: %d %q", code, body)
	}
	if code, body := call(t, "GET", hs.URL+"/any/path?x=1", "", ""); code != 200 || body != "hello\n" {
		t.Errorf("after specialize: %d %q", code, body)
	}
	if code, _ := call(t, "GET", hs.URL+"/healthz", "", ""); code != 200 {
		t.Errorf("healthz after specialize = %d", code)
	}
	for _, p := range []string{"/specialize", "/v2/specialize"} {
		if code, body := call(t, "POST", hs.URL+p, "application/json", `{"filepath":"`+dir+`/user"}`); code != 400 || !strings.Contains(body, "Not a generic container") {
			t.Errorf("second %s: %d %q", p, code, body)
		}
	}
}

func TestSpecializeV2(t *testing.T) {
	p, err := wasmtest.BuildReactor()
	if err != nil {
		t.Fatal(err)
	}
	wasmBytes, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	userfunc := t.TempDir()
	archive := filepath.Join(userfunc, "deployarchive")
	os.MkdirAll(archive, 0o755)
	os.WriteFile(filepath.Join(archive, "function.wasm"), wasmBytes, 0o644)
	hs := newServer(t, userfunc)

	// A bad load leaves the container generic and says what is wrong.
	code, body := call(t, "POST", hs.URL+"/v2/specialize", "application/json", `{"filepath":"`+userfunc+`/missing","functionName":"Handler"}`)
	if code != 500 || !strings.Contains(body, "missing") {
		t.Errorf("bad filepath: %d %q", code, body)
	}
	if code, body := call(t, "POST", hs.URL+"/v2/specialize", "application/json", `{"functionName":"Handler"}`); code != 400 || !strings.Contains(body, `"filepath"`) {
		t.Errorf("no filepath: %d %q", code, body)
	}

	req := `{"filepath":"` + archive + `","functionName":"Handler","url":"/","FunctionMetadata":{"name":"hello","namespace":"default","uid":"u1"},"envVersion":2}`
	if code, body := call(t, "POST", hs.URL+"/v2/specialize", "application/json", req); code != 200 {
		t.Fatalf("v2 specialize: %d %q", code, body)
	}
	code, body = call(t, "PATCH", hs.URL+"/items/7?verbose=1", "text/plain", "payload")
	if code != 200 {
		t.Fatalf("request: %d %q", code, body)
	}
	var e struct {
		Method, Path, Query, Body, Greeting string
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if e.Method != "PATCH" || e.Path != "/items/7" || e.Query != "verbose=1" || e.Body != "payload" || e.Greeting != "from-env" {
		t.Errorf("echo = %+v", e)
	}
	if code, _ := call(t, "POST", hs.URL+"/specialize", "text/plain", ""); code != 400 {
		t.Errorf("second specialize = %d", code)
	}
}

// A specialize filepath naming the container path (/userfunc/...) is
// found where Config.Mounts says that mount really is, the longest
// mount winning; without Mounts paths are taken as they are.
func TestSpecializeThroughMounts(t *testing.T) {
	real := t.TempDir()
	if err := os.WriteFile(filepath.Join(real, "deployarchive"), wasmtest.WAGIHello(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Mounts: map[string]string{"/userfunc": real, "/user": "/nowhere"}})
	for in, want := range map[string]string{
		"/userfunc/deployarchive": filepath.Join(real, "deployarchive"),
		"/userfunc":               real,
		"/userfuncs/x":            "/userfuncs/x",
		"/user/x":                 "/nowhere/x",
		"/elsewhere/x":            "/elsewhere/x",
	} {
		if got := s.hostPath(in); got != want {
			t.Errorf("hostPath(%q) = %q, want %q", in, got, want)
		}
	}
	if got := New(Config{}).hostPath("/userfunc/x"); got != "/userfunc/x" {
		t.Errorf("without mounts: %q", got)
	}

	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{CacheDir: wasmtest.CompileCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	srv := New(Config{Runtime: rt, Mounts: map[string]string{"/userfunc": real}})
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	if code, body := call(t, "POST", hs.URL+"/v2/specialize", "application/json", `{"filepath":"/userfunc/deployarchive"}`); code != 200 {
		t.Fatalf("specialize through the mount: %d %q", code, body)
	}
	if code, body := call(t, "GET", hs.URL+"/", "", ""); code != 200 || body != "hello\n" {
		t.Errorf("after specialize: %d %q", code, body)
	}
}

// A function that fails (here: traps) gets an answer marked for the
// router to scrub; a function's own 500 passes unmarked.
func TestFailuresAreMarkedForTheRouter(t *testing.T) {
	if HostErrorHeader != router.HostErrorHeader {
		t.Fatalf("HostErrorHeader %q differs from the router's %q", HostErrorHeader, router.HostErrorHeader)
	}
	for _, c := range []struct {
		name   string
		module []byte
		code   int
		marked bool
	}{
		{"trap", wasmtest.Trap(), 502, true},
		{"own 500", wasmtest.WAGIStatic("Status: 500\nContent-Type: text/plain; charset=utf-8\nX-Content-Type-Options: nosniff\n\nmine\n"), 500, false},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "user"), c.module, 0o644); err != nil {
			t.Fatal(err)
		}
		hs := newServer(t, dir)
		if code, body := call(t, "POST", hs.URL+"/specialize", "text/plain", ""); code != 200 {
			t.Fatalf("%s: specialize: %d %q", c.name, code, body)
		}
		resp, err := http.Get(hs.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code || (resp.Header.Get(HostErrorHeader) != "") != c.marked {
			t.Errorf("%s: %d, %s=%q; want %d, marked %v", c.name, resp.StatusCode, HostErrorHeader, resp.Header.Get(HostErrorHeader), c.code, c.marked)
		}
	}
}

// The pod's /secrets and /configs (filled by the fetcher) are the
// guest's /secrets and /configs, read-only preopens as in the embedded
// runtime; found through Config.Mounts under the node agent. A
// directory that is not there is not mounted.
func TestGuestSeesSecretsAndConfigs(t *testing.T) {
	p, err := wasmtest.BuildReactor()
	if err != nil {
		t.Fatal(err)
	}
	wasmBytes, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	userfunc, secrets := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(userfunc, "deployarchive"), wasmBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(secrets, "default", "db"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "default", "db", "password"), []byte("s3cret"), 0o640); err != nil {
		t.Fatal(err)
	}
	rt, err := wasm.NewRuntime(context.Background(), wasm.Config{CacheDir: wasmtest.CompileCacheDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	srv := New(Config{Runtime: rt, Mounts: map[string]string{"/userfunc": userfunc, "/secrets": secrets, "/configs": filepath.Join(secrets, "absent")}})
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	if code, body := call(t, "POST", hs.URL+"/v2/specialize", "application/json", `{"filepath":"/userfunc/deployarchive","functionName":"Files"}`); code != 200 {
		t.Fatalf("specialize: %d %q", code, body)
	}
	if code, body := call(t, "GET", hs.URL+"/?f=/secrets/default/db/password", "", ""); code != 200 || body != "s3cret" {
		t.Errorf("the guest read /secrets/default/db/password: %d %q, want s3cret", code, body)
	}
	if code, body := call(t, "GET", hs.URL+"/?f=/configs/default/app/mode", "", ""); code != 404 {
		t.Errorf("a config map directory that is not there: %d %q, want 404", code, body)
	}
	if code, body := call(t, "GET", hs.URL+"/?f=/secrets/../../etc/passwd", "", ""); code != 404 {
		t.Errorf("escaping /secrets: %d %q", code, body)
	}
}
