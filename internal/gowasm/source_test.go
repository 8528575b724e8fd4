package gowasm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/wasmbuild"
)

func TestFindHandlers(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string // handler names joined by ",", or "error: <substring>"
	}{
		{"fission style", map[string]string{"a.go": "package main\nimport \"net/http\"\nfunc Handler(w http.ResponseWriter, r *http.Request) {}\n"}, "Handler"},
		{"unnamed and grouped params, several files", map[string]string{
			"a.go": "package main\nimport \"net/http\"\nfunc B(http.ResponseWriter, *http.Request) {}\n",
			"b.go": "package main\nimport h \"net/http\"\nfunc A(w h.ResponseWriter, r *h.Request) {}\nfunc lower(w h.ResponseWriter, r *h.Request) {}\n"}, "A,B,lower"},
		{"not handlers", map[string]string{"a.go": `package main
import "net/http"
type T struct{}
func (T) M(w http.ResponseWriter, r *http.Request) {}
func Ret(w http.ResponseWriter, r *http.Request) error { return nil }
func G[X any](w http.ResponseWriter, r *http.Request) {}
func ByValue(w http.ResponseWriter, r http.Request) {}
func Handler(w http.ResponseWriter, r *http.Request) {}
`}, "Handler"},
		{"other GOOS file ignored", map[string]string{
			"a.go":       "package main\nimport \"net/http\"\nfunc Handler(w http.ResponseWriter, r *http.Request) {}\n",
			"b_linux.go": "package main\nimport \"net/http\"\nfunc LinuxOnly(w http.ResponseWriter, r *http.Request) {}\n",
			"c_test.go":  "package main\nimport \"net/http\"\nfunc TestOnly(w http.ResponseWriter, r *http.Request) {}\n"}, "Handler"},
		{"no handler", map[string]string{"a.go": "package main\nfunc helper() {}\n"}, "error: no handler found"},
		{"not main", map[string]string{"a.go": "package hello\nimport \"net/http\"\nfunc Handler(w http.ResponseWriter, r *http.Request) {}\n"}, "error: package hello"},
		{"declares main", map[string]string{"a.go": "package main\nimport \"net/http\"\nfunc Handler(w http.ResponseWriter, r *http.Request) {}\n\nfunc main() {}\n"}, "error: a.go:5: func main is declared"},
		{"syntax error", map[string]string{"a.go": "package main\nfunc Handler( {\n"}, "error: a.go:2:"},
		{"no go files", map[string]string{"README": "hi"}, "error: no Go source files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, c.files)
			names, err := findHandlers(dir)
			got := strings.Join(names, ",")
			if err != nil {
				got = "error: " + err.Error()
			}
			if want, ok := strings.CutPrefix(c.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %q, want an error containing %q", got, want)
				}
				return
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestWrapperSource(t *testing.T) {
	got := string(wrapperSource([]string{"Handler", "Other"}))
	for _, want := range []string{"package main", `isotopeguestsdk "isotope.dev/isotope/sdk/go"`,
		`isotopeguestsdk.Register("Handler", Handler)`, `isotopeguestsdk.Register("Other", Other)`, "func main() {}"} {
		if !strings.Contains(got, want) {
			t.Errorf("wrapper lacks %q:\n%s", want, got)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"go1.24": true, "go1.24.0": true, "go1.26.8": true, "go1.25rc1": true, "go2.0": true,
		"devel go1.27-abcdef": true, "go1.23.9": false, "go1.22": false, "go1.9": false, "gibberish": false,
	} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q) = %v", v, err)
		}
	}
}

func TestToolchainErrors(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"a.go": helloSource})

	// No go at all: the error says how to install it.
	opts := testOpts
	opts.Env = append(append([]string{}, testOpts.Env...), "PATH="+t.TempDir())
	_, _, err := buildIt(t, src, opts)
	if err == nil || !strings.Contains(err.Error(), "Go toolchain was not found") || !strings.Contains(err.Error(), "install") {
		t.Errorf("missing go: %v", err)
	}
	// A go older than 1.24 (a script standing in for an old toolchain,
	// which is not installed here).
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "go"), []byte("#!/bin/sh\necho go1.22.5\n"), 0o755)
	opts.Env = append(append([]string{}, testOpts.Env...), "PATH="+bin)
	_, _, err = buildIt(t, src, opts)
	if err == nil || !strings.Contains(err.Error(), "go1.22.5") || !strings.Contains(err.Error(), "needs Go 1.24 or newer") {
		t.Errorf("old go: %v", err)
	}
}

// TestBuilderRunsGoWasm drives the real builder over HTTP with the
// go-wasm environment's default build command, which runs in-process.
func TestBuilderRunsGoWasm(t *testing.T) {
	shared := t.TempDir()
	writeFiles(t, shared, map[string]string{"hello-src/hello.go": helloSource, "broken-src/hello.go": "package main\nfunc Handler( {\n"})
	b := builder.New(builder.Config{SharedDir: shared, Env: []string{
		"GOCACHE=" + wasmbuild.Getenv(testOpts.Env, "GOCACHE"), "GOMODCACHE=" + wasmbuild.Getenv(testOpts.Env, "GOMODCACHE")}})
	srv := httptest.NewServer(b.Handler())
	defer srv.Close()

	post := func(body string) (int, builder.PackageBuildResponse) {
		resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out builder.PackageBuildResponse
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("response %q: %v", b, err)
		}
		return resp.StatusCode, out
	}
	code, resp := post(`{"srcPkgFilename":"hello-src","command":"isotope build go-wasm --cache-dir ` + testOpts.CacheDir + `"}`)
	if code != 200 {
		t.Fatalf("build: %d\n%s", code, resp.BuildLogs)
	}
	checkReactor(t, filepath.Join(shared, resp.ArtifactFilename, "main.wasm"))

	code, resp = post(`{"srcPkgFilename":"broken-src","command":"isotope build go-wasm --cache-dir ` + testOpts.CacheDir + `"}`)
	if code != 500 || !strings.Contains(resp.BuildLogs, "hello.go:2:") {
		t.Fatalf("broken build: %d\n%s", code, resp.BuildLogs)
	}
	if _, err := os.Stat(filepath.Join(shared, resp.ArtifactFilename)); !os.IsNotExist(err) {
		t.Errorf("failed build left its artifact")
	}
}

func TestRunArguments(t *testing.T) {
	var log bytes.Buffer
	err := Run(context.Background(), nil, []string{"PATH=/nonexistent"}, &log)
	if err == nil || !strings.Contains(err.Error(), "SRC_PKG and DEPLOY_PKG must be set") {
		t.Errorf("Run without SRC_PKG: %v", err)
	}
	err = Run(context.Background(), []string{"a", "b", "c"}, nil, &log)
	if err == nil || !strings.Contains(err.Error(), "too many arguments") {
		t.Errorf("Run with 3 args: %v", err)
	}
}
