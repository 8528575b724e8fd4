package e2e

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// exampleSource is examples/hello/hello.go.
func exampleSource(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "examples", "hello", "hello.go")
}

// processesMentioning lists PIDs whose command line contains s.
func processesMentioning(s string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestSeedFlow is the seed's Builder Manager workflow end to end: an
// environment with the go-wasm builder, a package built from Go source on
// the platform, a function and a route, and an HTTP request answered by
// the WebAssembly build of the handler.
func TestSeedFlow(t *testing.T) {
	dir := t.TempDir()
	data := t.TempDir()
	p := startPlatform(t, data)
	p.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")

	// The build runs on the platform and its log streams to the CLI.
	out := p.ok("pkg", "create", "--name", "hello", "--env", "go", "--src", exampleSource(t))
	info := p.ok("pkg", "info", "--name", "hello")
	if !strings.Contains(info, "succeeded") {
		t.Fatalf("package not succeeded:\n%s\ncreate printed:\n%s", info, out)
	}

	// The deploy archive is downloadable and holds a wasm module.
	deploy := filepath.Join(dir, "deploy.zip")
	p.ok("pkg", "getdeploy", "--name", "hello", "-o", deploy)
	zr, err := zip.OpenReader(deploy)
	if err != nil {
		t.Fatalf("deploy archive: %v", err)
	}
	var wasmOK bool
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, ".wasm") {
			rc, _ := f.Open()
			magic := make([]byte, 4)
			rc.Read(magic)
			rc.Close()
			wasmOK = bytes.Equal(magic, []byte("\x00asm"))
		}
	}
	zr.Close()
	if !wasmOK {
		t.Fatalf("deploy archive holds no valid .wasm")
	}

	p.ok("fn", "create", "--name", "hello", "--env", "go", "--pkg", "hello", "--entrypoint", "Handler")
	p.ok("route", "create", "--name", "hello", "--function", "hello", "--url", "/hello", "--method", "GET")
	if body := p.waitServes(t, "/hello?name=Isotope", 200); !strings.Contains(body, "Hello, Isotope!") {
		t.Fatalf("function answered %q", body)
	}

	// Updating the package's source rebuilds it, and the function serves
	// the new code.
	v2 := filepath.Join(dir, "hello.go")
	src, _ := os.ReadFile(exampleSource(t))
	os.WriteFile(v2, bytes.Replace(src, []byte("Hello, %s!"), []byte("Howdy, %s!"), 1), 0o644)
	p.ok("pkg", "update", "--name", "hello", "--src", v2)
	waitFor(t, 2*time.Minute, "the rebuilt function to answer", func() error {
		code, body := p.get(t, "GET", "/hello?name=v2", nil)
		if code != 200 || !strings.Contains(body, "Howdy, v2!") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})

	// A broken source fails the build with the compiler's message, both
	// in the CLI's exit and in pkg info.
	broken := filepath.Join(dir, "broken.go")
	os.WriteFile(broken, []byte("package main\n\nimport \"net/http\"\n\nfunc Handler(w http.ResponseWriter, r *http.Request) {\n\tundefinedThing()\n}\n"), 0o644)
	r := p.run("pkg", "create", "--name", "broken", "--env", "go", "--src", broken)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "undefined: undefinedThing") {
		t.Errorf("broken build: %s", r)
	}
	if info := p.ok("pkg", "info", "--name", "broken"); !strings.Contains(info, "failed") || !strings.Contains(info, "undefined: undefinedThing") {
		t.Errorf("pkg info of the broken package:\n%s", info)
	}
	if out := p.ok("pkg", "list", "--status", "failed"); !strings.Contains(out, "broken") || strings.Contains(out, "hello") {
		t.Errorf("pkg list --status failed:\n%s", out)
	}

	// Stopping the server leaves no builder process behind.
	if len(processesMentioning(data)) == 0 {
		t.Fatalf("no process mentions the data dir: expected the server and its builder")
	}
	p.stop()
	waitFor(t, 10*time.Second, "no process left using the data dir", func() error {
		if pids := processesMentioning(data); len(pids) > 0 {
			return fmt.Errorf("still running: %v", pids)
		}
		return nil
	})
}
