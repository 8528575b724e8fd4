package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"isotope.dev/isotope/internal/cwasm"
	_ "isotope.dev/isotope/internal/gowasm" // registers the in-process go-wasm build
	"isotope.dev/isotope/internal/rustwasm"
	"isotope.dev/isotope/sdk"
)

var allCases = map[string]buildCase{"go": goCase(), "c": cCase(), "rust": rustCase()}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(out))
}

// goCaches are the machine's GOCACHE and GOMODCACHE, shared by both
// sides of the go-wasm case.
func goCaches() []string {
	return []string{"GOCACHE=" + goEnv("GOCACHE"), "GOMODCACHE=" + goEnv("GOMODCACHE")}
}

func goSource(v int) map[string]string {
	return map[string]string{"hello.go": fmt.Sprintf(`package main

import (
	"fmt"
	"net/http"
)

const version = %d

func Handler(w http.ResponseWriter, r *http.Request) {
	fmt.Fprintf(w, "hello, version %%d\n", version)
}
`, v)}
}

// goCase: the raw side builds the same files gowasm generates: the
// handler, the registering wrapper, go.mod and the SDK module.
func goCase() buildCase {
	return buildCase{
		name: "go-wasm", command: "isotope build go-wasm", rawName: "raw go build",
		prepare: func() error { return nil },
		source:  goSource,
		raw: func(dir string, v int) (time.Duration, error) {
			if err := sdk.WriteGoModule(filepath.Join(dir, ".isotope-sdk")); err != nil {
				return 0, err
			}
			files := goSource(v)
			files["isotope_generated_main.go"] = "package main\n\nimport isotopeguestsdk \"isotope.dev/isotope/sdk/go\"\n\n" +
				"func init() {\n\tisotopeguestsdk.Register(\"Handler\", Handler)\n}\n\nfunc main() {}\n"
			files["go.mod"] = "module function\n\ngo 1.24\n\nrequire isotope.dev/isotope v0.0.0\n\nreplace isotope.dev/isotope => ./.isotope-sdk\n"
			if err := writeFiles(dir, files); err != nil {
				return 0, err
			}
			start := time.Now()
			cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", filepath.Join(dir, "out", "main.wasm"), ".")
			cmd.Dir = dir
			cmd.Env = append(append(os.Environ(), goCaches()...), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				return 0, fmt.Errorf("raw go build: %v\n%s", err, out)
			}
			return time.Since(start), nil
		},
	}
}

// cCase: examples/hello-c, and the clang command the builder runs
// (cwasm.CompileArgs) on the same file.
func cCase() buildCase {
	var tc *cwasm.Toolchain
	var example map[string]string
	source := func(v int) map[string]string {
		return map[string]string{"hello.c": fmt.Sprintf("// version %d\n", v) + example["hello.c"]}
	}
	return buildCase{
		name: "c-wasm", command: cwasm.Command, rawName: "raw clang",
		prepare: func() error {
			var err error
			if example, err = readExample("hello-c", "hello.c"); err != nil {
				return err
			}
			tc, err = cwasm.Find(context.Background(), "", os.Environ(), false)
			return err
		},
		source: source,
		raw: func(dir string, v int) (time.Duration, error) {
			if err := writeFiles(dir, source(v)); err != nil {
				return 0, err
			}
			out := filepath.Join(dir, "out")
			if err := os.MkdirAll(out, 0o755); err != nil {
				return 0, err
			}
			return timeCommand(dir, os.Environ(), tc.CompileArgs(filepath.Join(out, "main.wasm"), []string{"hello.c"}, nil))
		},
	}
}

// rustCase: examples/hello-rust, a crate built with cargo as the builder
// builds it: offline, for the WASI target, a fresh CARGO_HOME and target
// directory, debug information stripped, the builder's guest stack.
func rustCase() buildCase {
	var tc *rustwasm.Toolchain
	var example map[string]string
	source := func(v int) map[string]string {
		files := map[string]string{}
		for k, b := range example {
			files[k] = b
		}
		files["src/lib.rs"] = fmt.Sprintf("// version %d\n", v) + example["src/lib.rs"]
		return files
	}
	return buildCase{
		name: "rust-wasm", command: rustwasm.Command, rawName: "raw cargo build",
		prepare: func() error {
			var err error
			if example, err = readExample("hello-rust", "Cargo.toml", "src/lib.rs", "src/isotope.rs"); err != nil {
				return err
			}
			tc, err = rustwasm.Find(context.Background(), "", os.Environ(), io.Discard)
			if err == nil && tc.Cargo == "" {
				err = fmt.Errorf("no cargo next to %s: apt-get install -y cargo", tc.Rustc)
			}
			return err
		},
		source: source,
		raw: func(dir string, v int) (time.Duration, error) {
			if err := writeFiles(dir, source(v)); err != nil {
				return 0, err
			}
			env := append(os.Environ(), "RUSTC="+tc.Rustc, "CARGO_HOME="+filepath.Join(dir, ".cargo-home"),
				"CARGO_TARGET_DIR="+filepath.Join(dir, "target"), "CARGO_NET_OFFLINE=true", "CARGO_PROFILE_RELEASE_STRIP=debuginfo",
				rustwasm.TargetRustflagsVar(tc.Target)+"="+strings.Join(rustwasm.StackFlags(rustwasm.DefaultStackSize), " "))
			return timeCommand(dir, env, []string{tc.Cargo, "build", "--release", "--offline", "--target", tc.Target})
		},
	}
}

// timeCommand runs argv in dir and returns how long it took.
func timeCommand(dir string, env, argv []string) (time.Duration, error) {
	start := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("raw %s: %v\n%s", filepath.Base(argv[0]), err, out)
	}
	return time.Since(start), nil
}
