package gowasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasmbuild"
)

// testOpts is shared by every build of this test binary: a temporary
// cache dir (SDK module), and the machine's own GOCACHE and GOMODCACHE,
// so the wasip1 standard library is compiled once per machine rather
// than once per test run, and github.com/google/uuid comes from the
// module cache the repository's own build filled.
var testOpts Options

func TestMain(m *testing.M) {
	cache, err := os.MkdirTemp("", "gowasm-test-cache-")
	if err != nil {
		panic(err)
	}
	env := os.Environ()
	for _, v := range []string{"GOCACHE", "GOMODCACHE"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			panic(err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	testOpts = Options{CacheDir: cache, Env: env}
	code := m.Run()
	if rt != nil {
		rt.Close(context.Background())
	}
	os.RemoveAll(cache)
	os.Exit(code)
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
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

// buildIt runs Build and returns the deploy dir and the log.
func buildIt(t *testing.T, src string, opts Options) (string, string, error) {
	t.Helper()
	deploy := filepath.Join(t.TempDir(), "src-abcdef")
	var log bytes.Buffer
	err := Build(context.Background(), src, deploy, opts, &log)
	return deploy, log.String(), err
}

// checkReactor asserts the module is a reactor with the SDK's exports,
// reading its export section.
func checkReactor(t *testing.T, wasmPath string) {
	t.Helper()
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatal(err)
	}
	exports, err := wasmExports(bin)
	if err != nil {
		t.Fatalf("%s: %v", wasmPath, err)
	}
	for _, name := range []string{"_initialize", "isotope_handle", "isotope_alloc"} {
		if !exports[name] {
			t.Errorf("module lacks export %s (has %v)", name, exports)
		}
	}
	if exports["_start"] {
		t.Errorf("module exports _start: a command, not a reactor")
	}
}

// wasmExports returns the names of a module's exported functions.
func wasmExports(bin []byte) (map[string]bool, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || bin[4] != 1 {
		return nil, errors.New("not a wasm binary module (version 1)")
	}
	r := bytes.NewReader(bin[8:])
	name := func() (string, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return "", err
		}
		b := make([]byte, n)
		_, err = io.ReadFull(r, b)
		return string(b), err
	}
	for r.Len() > 0 {
		id, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		if id != 7 { // not the export section
			if _, err := r.Seek(int64(size), io.SeekCurrent); err != nil {
				return nil, err
			}
			continue
		}
		count, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, err
		}
		out := map[string]bool{}
		for range count {
			n, err := name()
			if err != nil {
				return nil, err
			}
			kind, err := r.ReadByte()
			if err != nil {
				return nil, err
			}
			if _, err := binary.ReadUvarint(r); err != nil {
				return nil, err
			}
			if kind == 0 { // function
				out[n] = true
			}
		}
		return out, nil
	}
	return nil, errors.New("no export section")
}

// runtime is one real wasm runtime for the whole test binary, so each
// distinct module is compiled once (compiling a Go module takes seconds,
// many more under -race). Its compiled-code cache lives in the user cache
// dir so later runs reuse it, the way the machine's GOCACHE is reused.
var (
	rtOnce sync.Once
	rt     *wasm.Runtime
	rtErr  error
)

// serve loads the deploy dir into the real runtime and does one GET.
func serve(t *testing.T, deploy, entrypoint string) (int, string) {
	t.Helper()
	ctx := context.Background()
	rtOnce.Do(func() {
		cfg := wasm.Config{}
		if dir, err := os.UserCacheDir(); err == nil {
			cfg.CacheDir = filepath.Join(dir, "isotope-test", "wasm-compiled")
		}
		rt, rtErr = wasm.NewRuntime(ctx, cfg)
	})
	if rtErr != nil {
		t.Fatal(rtErr)
	}
	mod, err := rt.Load(ctx, wasm.LoadRequest{Path: deploy, Name: "default/test", Entrypoint: entrypoint})
	if err != nil {
		t.Fatalf("runtime load: %v", err)
	}
	defer mod.Close()
	if mod.ABI() != wasm.ABIReactor {
		t.Errorf("runtime sees ABI %v, want reactor", mod.ABI())
	}
	srv := httptest.NewServer(mod)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/hello?x=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const helloSource = `package main

import (
	"fmt"
	web "net/http"
)

// Handler is the default entry point.
func Handler(w web.ResponseWriter, r *web.Request) {
	fmt.Fprintf(w, "hello from wasm, query %s", r.URL.RawQuery)
}

func Other(w web.ResponseWriter, _ *web.Request) { w.Write([]byte("other")) }

func notAHandler(w web.ResponseWriter) {}
`

func TestBuildSingleFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "hello.go")
	writeFiles(t, filepath.Dir(src), map[string]string{"hello.go": helloSource})
	deploy, log, err := buildIt(t, src, testOpts)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "handlers: Handler, Other") {
		t.Errorf("log does not list the handlers:\n%s", log)
	}
	ents, _ := os.ReadDir(deploy)
	if len(ents) != 1 || ents[0].Name() != "main.wasm" {
		t.Fatalf("deploy dir holds %v, want main.wasm only", ents)
	}
	checkReactor(t, filepath.Join(deploy, "main.wasm"))
	if code, body := serve(t, deploy, "Handler"); code != 200 || body != "hello from wasm, query x=1" {
		t.Errorf("Handler: %d %q", code, body)
	}
	if code, body := serve(t, deploy, "Other"); code != 200 || body != "other" {
		t.Errorf("Other: %d %q", code, body)
	}
	// The source was not touched.
	if b, _ := os.ReadFile(src); string(b) != helloSource {
		t.Error("Build modified the source file")
	}
}

const uuidModule = `module example.com/fn

go 1.22

require github.com/google/uuid v1.6.0
`

const uuidSum = `github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=
github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=
`

const uuidHandler = `package main

import (
	"net/http"

	"github.com/google/uuid"
)

func Handler(w http.ResponseWriter, r *http.Request) {
	id := uuid.New()
	w.Write([]byte("id:" + id.String()))
}
`

func checkUUIDResponse(t *testing.T, deploy string) {
	t.Helper()
	checkReactor(t, filepath.Join(deploy, "main.wasm"))
	code, body := serve(t, deploy, "Handler")
	if code != 200 || !strings.HasPrefix(body, "id:") || len(body) != 3+36 {
		t.Errorf("uuid handler: %d %q", code, body)
	}
}

func TestBuildModuleWithDependency(t *testing.T) {
	// Zipped folders arrive as a directory holding one directory.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"fn/go.mod": uuidModule, "fn/go.sum": uuidSum, "fn/main.go": uuidHandler,
	})
	deploy, log, err := buildIt(t, root, testOpts)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	checkUUIDResponse(t, deploy)
	if b, _ := os.ReadFile(filepath.Join(root, "fn", "go.mod")); string(b) != uuidModule {
		t.Error("Build modified the user's go.mod")
	}
}

func TestBuildVendored(t *testing.T) {
	// vendor/ holds uuid copied from the module cache; the build runs
	// with the network off (GOPROXY=off) and an empty module cache.
	modcache := wasmbuild.Getenv(testOpts.Env, "GOMODCACHE")
	uuidDir := filepath.Join(modcache, "github.com", "google", "uuid@v1.6.0")
	ents, err := os.ReadDir(uuidDir)
	if err != nil {
		t.Skipf("github.com/google/uuid@v1.6.0 not in the module cache: %v", err)
	}
	root := t.TempDir()
	files := map[string]string{
		"go.mod": uuidModule, "go.sum": uuidSum, "main.go": uuidHandler,
		"vendor/modules.txt": "# github.com/google/uuid v1.6.0\n## explicit\ngithub.com/google/uuid\n",
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			b, err := os.ReadFile(filepath.Join(uuidDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			files["vendor/github.com/google/uuid/"+e.Name()] = string(b)
		}
	}
	writeFiles(t, root, files)
	opts := testOpts
	opts.ModCache = t.TempDir()
	opts.Env = append(append([]string{}, testOpts.Env...), "GOPROXY=off", "GOFLAGS=-mod=mod")
	deploy, log, err := buildIt(t, root, opts)
	if err != nil {
		t.Fatalf("vendored build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "-mod=vendor") {
		t.Errorf("log does not say vendor mode:\n%s", log)
	}
	checkUUIDResponse(t, deploy)
}

func TestCompileErrorIsInTheLog(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"hello.go": `package main

import "net/http"

func Handler(w http.ResponseWriter, r *http.Request) {
	w.Write([]byte(undefinedThing))
}
`})
	deploy, log, err := buildIt(t, dir, testOpts)
	if err == nil || !strings.Contains(err.Error(), "go build failed") {
		t.Fatalf("build of broken code: %v", err)
	}
	if !strings.Contains(log, "hello.go:6:17: undefined: undefinedThing") {
		t.Errorf("log lacks the compiler's message:\n%s", log)
	}
	if _, err := os.Stat(deploy); !os.IsNotExist(err) {
		t.Errorf("failed build left %s", deploy)
	}
}
