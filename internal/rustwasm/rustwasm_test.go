package rustwasm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasmbuild"
	"isotope.dev/isotope/internal/wasmbuild/buildtest"
)

// requireRust skips the test, naming the packages, when this machine has
// no rustc that builds for WASI; it returns the one it has.
func requireRust(t *testing.T, cargo bool) *Toolchain {
	t.Helper()
	tc, err := findRustc(context.Background(), "", os.Environ(), io.Discard)
	var me *wasmbuild.MissingError
	if errors.As(err, &me) {
		t.Skipf("no Rust toolchain for WebAssembly here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cargo && tc.Cargo == "" {
		t.Skipf("no cargo next to %s: %s", tc.Rustc, wasmbuild.AptInstall("cargo"))
	}
	return tc
}

func build(t *testing.T, src string, opts Options) (string, string, error) {
	t.Helper()
	deploy := filepath.Join(t.TempDir(), "src-abcdef")
	var log bytes.Buffer
	err := Build(context.Background(), src, deploy, opts, &log)
	return deploy, log.String(), err
}

const wantHello = "Hello, Ada L! (from Rust on WebAssembly, GET /)\n"

func TestBuildExample(t *testing.T) {
	tc := requireRust(t, true)
	deploy, log, err := build(t, filepath.Join(buildtest.RepoRoot(), "examples", "hello-rust"), Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	for _, want := range []string{"rust-wasm: rustc " + tc.Version + " (" + tc.Rustc, "target " + tc.Target, "cargo build --release --offline --target " + tc.Target, "main.wasm is "} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if code, body := buildtest.ServeAs(t, deploy, "/?name=Ada+L", wasm.ABIReactor); code != 200 || body != wantHello {
		t.Errorf("served %d %q", code, body)
	}
}

// The example's copy of the helper is the SDK's.
func TestExampleHelperIsSDK(t *testing.T) {
	root := buildtest.RepoRoot()
	sdk, err := os.ReadFile(filepath.Join(root, "sdk", "rust", "isotope.rs"))
	if err != nil {
		t.Fatal(err)
	}
	copied, err := os.ReadFile(filepath.Join(root, "examples", "hello-rust", "src", "isotope.rs"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sdk, copied) {
		t.Errorf("examples/hello-rust/src/isotope.rs differs from sdk/rust/isotope.rs: copy it again")
	}
}

// exampleFiles is the example's handler (lib.rs) and the helper: the
// layout of a source without Cargo.toml.
func exampleFiles(t *testing.T) map[string]string {
	t.Helper()
	root := filepath.Join(buildtest.RepoRoot(), "examples", "hello-rust", "src")
	files := map[string]string{}
	for _, n := range []string{"lib.rs", "isotope.rs"} {
		b, err := os.ReadFile(filepath.Join(root, n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	return files
}

// wagiMain is the example as a WAGI program: main serves one request
// with the helper's Request::from_env and Response::send.
const wagiMain = `mod isotope;

fn main() {
    let req = isotope::Request::from_env();
    let name = req.query("name").unwrap_or_else(|| "world".to_string());
    isotope::Response::new(200)
        .body(format!("Hello, {}! (from Rust on WebAssembly, {} {})\n", name, req.method, req.path))
        .send();
}
`

func TestBuildFiles(t *testing.T) {
	requireRust(t, false)
	t.Run("handler: lib.rs and the helper", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, exampleFiles(t))
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if !strings.Contains(log, "rustc --edition 2021 --crate-type cdylib --crate-name lib ") {
			t.Errorf("log:\n%s", log)
		}
		if code, body := buildtest.ServeAs(t, deploy, "/?name=Ada%20L", wasm.ABIReactor); code != 200 || body != wantHello {
			t.Errorf("served %d %q", code, body)
		}
	})
	t.Run("handler: the crate_type attribute", func(t *testing.T) {
		files := exampleFiles(t)
		files["main.rs"] = "#![crate_type = \"cdylib\"]\n" + files["lib.rs"]
		delete(files, "lib.rs")
		src := t.TempDir()
		buildtest.WriteFiles(t, src, files)
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if code, body := buildtest.ServeAs(t, deploy, "/?name=Ada%20L", wasm.ABIReactor); code != 200 || body != wantHello {
			t.Errorf("served %d %q", code, body)
		}
	})
	t.Run("program: main.rs and the helper", func(t *testing.T) {
		files := exampleFiles(t)
		delete(files, "lib.rs")
		files["main.rs"] = wagiMain
		src := t.TempDir()
		buildtest.WriteFiles(t, src, files)
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if !strings.Contains(log, "rustc --edition 2021 --crate-type bin --crate-name main ") {
			t.Errorf("log:\n%s", log)
		}
		if code, body := buildtest.Serve(t, deploy, "/?name=Ada%20L"); code != 200 || body != wantHello {
			t.Errorf("served %d %q", code, body)
		}
	})
	t.Run("single file", func(t *testing.T) {
		// Fission names a single-file source after the package, without
		// an extension.
		src := filepath.Join(t.TempDir(), "hello-pkg")
		buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{
			"hello-pkg": "fn main() { print!(\"Content-Type: text/plain\\n\\none file\\n\"); }\n",
		})
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "one file\n" {
			t.Errorf("served %d %q", code, body)
		}
	})
	// A handler written as a program, or a library that exports no
	// handler, fails saying how to declare one.
	t.Run("handler without a main", func(t *testing.T) {
		files := exampleFiles(t)
		files["main.rs"] = files["lib.rs"]
		delete(files, "lib.rs")
		src := t.TempDir()
		buildtest.WriteFiles(t, src, files)
		_, log, err := build(t, src, Options{})
		if err == nil || !strings.Contains(err.Error(), "E0601") || !strings.Contains(err.Error(), "a handler is a library crate: name its root lib.rs") {
			t.Errorf("error = %v\n%s", err, log)
		}
	})
	t.Run("library without a handler", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{"lib.rs": "pub fn unused() {}\n"})
		_, log, err := build(t, src, Options{})
		if err == nil || !strings.Contains(err.Error(), "exports neither _start") || !strings.Contains(err.Error(), "isotope::export_handler!") {
			t.Errorf("error = %v\n%s", err, log)
		}
	})
	t.Run("two roots", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{"a.rs": "fn main() {}\n", "b.rs": "fn main() {}\n"})
		if _, _, err := build(t, src, Options{}); err == nil || !strings.Contains(err.Error(), "2 .rs files at the top of the source (a.rs, b.rs) and none is main.rs or lib.rs") {
			t.Errorf("error = %v", err)
		}
	})
}

// A compile error fails the build with the compiler's message, and its
// file:line is in the error too.
func TestCompileError(t *testing.T) {
	tc := requireRust(t, false)
	broken := "mod wagi;\n\nfn main() {\n    let n: u32 = \"text\";\n}\n"
	src := t.TempDir()
	buildtest.WriteFiles(t, src, map[string]string{"main.rs": broken, "wagi.rs": ""})
	_, log, err := build(t, src, Options{})
	if err == nil || !strings.Contains(err.Error(), "rustc failed: main.rs:4:18: error[E0308]: mismatched types") {
		t.Errorf("error = %v\n%s", err, log)
	}
	if !strings.Contains(log, "--> main.rs:4:18") {
		t.Errorf("log lacks the compiler's message:\n%s", log)
	}
	if tc.Cargo == "" {
		return
	}
	crate := t.TempDir()
	buildtest.WriteFiles(t, crate, map[string]string{
		"Cargo.toml":  "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
		"src/main.rs": broken,
		"src/wagi.rs": "",
	})
	_, log, err = build(t, crate, Options{})
	if err == nil || !strings.Contains(err.Error(), "cargo failed: src/main.rs:4:18: error[E0308]: mismatched types") {
		t.Errorf("error = %v\n%s", err, log)
	}
}

// vendored is a crate with one dependency in vendor/, as cargo vendor
// lays it out.
var vendored = map[string]string{
	"Cargo.toml":                        "[package]\nname = \"uses-greet\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ngreet = \"0.1\"\n",
	"src/main.rs":                       "fn main() { print!(\"Content-Type: text/plain\\n\\n{}\\n\", greet::greet(\"vendor\")); }\n",
	"vendor/greet/Cargo.toml":           "[package]\nname = \"greet\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
	"vendor/greet/src/lib.rs":           "pub fn greet(who: &str) -> String { format!(\"hello from {}\", who) }\n",
	"vendor/greet/.cargo-checksum.json": `{"files":{},"package":null}`,
}

func TestBuildCargo(t *testing.T) {
	requireRust(t, true)
	t.Run("vendored dependency", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, vendored)
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if !strings.Contains(log, "vendor/ found") {
			t.Errorf("log:\n%s", log)
		}
		if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "hello from vendor\n" {
			t.Errorf("served %d %q", code, body)
		}
	})
	t.Run("dependency not vendored", func(t *testing.T) {
		src := t.TempDir()
		files := map[string]string{}
		for k, v := range vendored {
			if !strings.HasPrefix(k, "vendor/") {
				files[k] = v
			}
		}
		buildtest.WriteFiles(t, src, files)
		_, log, err := build(t, src, Options{})
		if err == nil || !strings.Contains(err.Error(), "vendor the dependencies (cargo vendor)") {
			t.Errorf("error = %v\n%s", err, log)
		}
	})
	t.Run("two binaries", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{
			"Cargo.toml":     "[package]\nname = \"two\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
			"src/main.rs":    "fn main() {}\n",
			"src/bin/sub.rs": "fn main() {}\n",
		})
		if _, log, err := build(t, src, Options{}); err == nil || !strings.Contains(err.Error(), "cargo built 2 modules") {
			t.Errorf("error = %v\n%s", err, log)
		}
	})
}

// toolDir is a directory standing in for a PATH: links to the programs
// named, found on this machine's PATH.
func toolDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		p, err := wasmbuild.LookPath(n, os.Environ())
		if err != nil {
			t.Skipf("%s is not installed: %v", n, err)
		}
		if err := os.Symlink(p, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Without cargo, a crate with no dependencies builds with rustc alone;
// one with dependencies fails, naming the package cargo.
func TestBuildWithoutCargo(t *testing.T) {
	tc := requireRust(t, false)
	dir := toolDir(t, "rust-lld")
	if err := os.Symlink(tc.Rustc, filepath.Join(dir, "rustc")); err != nil {
		t.Fatal(err)
	}
	env := wasmbuild.Setenv(os.Environ(), "PATH", dir)

	deploy, log, err := build(t, filepath.Join(buildtest.RepoRoot(), "examples", "hello-rust"), Options{Env: env})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "no cargo: building the crate's src/lib.rs with rustc") || !strings.Contains(log, "--crate-type cdylib --crate-name hello_rust") {
		t.Errorf("log:\n%s", log)
	}
	if code, body := buildtest.ServeAs(t, deploy, "/?name=Ada+L", wasm.ABIReactor); code != 200 || body != wantHello {
		t.Errorf("served %d %q", code, body)
	}

	// A program crate, and the crates cargo would refuse or misread.
	program := t.TempDir()
	buildtest.WriteFiles(t, program, map[string]string{"Cargo.toml": "[package]\nname = \"prog\"\nedition = \"2021\"\n", "src/main.rs": wagiMain, "src/isotope.rs": exampleFiles(t)["isotope.rs"]})
	deploy, log, err = build(t, program, Options{Env: env})
	if err != nil || !strings.Contains(log, "building the crate's src/main.rs") {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if code, body := buildtest.Serve(t, deploy, "/?name=Ada+L"); code != 200 || body != wantHello {
		t.Errorf("program served %d %q", code, body)
	}
	const cdylib = "[package]\nname = \"h\"\n[lib]\ncrate-type = [\"cdylib\"]\n"
	for _, c := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"Cargo.toml": cdylib, "src/main.rs": "fn main() {}\n", "src/lib.rs": ""}, "both a program (src/main.rs) and a cdylib library"},
		{map[string]string{"Cargo.toml": cdylib}, "declares a cdylib library but src/lib.rs is missing"},
		{map[string]string{"Cargo.toml": cdylib + "path = \"src/handler.rs\"\n", "src/handler.rs": ""}, `[lib] path "src/handler.rs": without cargo, the library's root must be named lib.rs`},
		{map[string]string{"Cargo.toml": "[package]\nname = \"l\"\n", "src/lib.rs": ""}, "src/lib.rs is not a cdylib: add [lib] crate-type"},
		{map[string]string{"Cargo.toml": "[package]\nname = \"e\"\n"}, "without src/main.rs or src/lib.rs"},
	} {
		dir := t.TempDir()
		buildtest.WriteFiles(t, dir, c.files)
		if _, log, err := build(t, dir, Options{Env: env}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error = %v, want %q\n%s", c.files, err, c.want, log)
		}
	}

	src := t.TempDir()
	buildtest.WriteFiles(t, src, vendored)
	_, log, err = build(t, src, Options{Env: env})
	var me *wasmbuild.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "Cargo.toml:7: it declares the dependency greet") || !strings.Contains(err.Error(), "apt-get install -y cargo") {
		t.Errorf("error = %v\n%s", err, log)
	}
}

// fakeRustc is a script that answers rustc's questions like a rustc
// whose sysroot is sysroot.
func fakeRustc(t *testing.T, dir, version, sysroot string) {
	t.Helper()
	script := "#!/bin/sh\ncase \"$1\" in\n--version) echo 'rustc " + version + " (fake)';;\n--print) echo '" + sysroot + "';;\n*) exit 1;;\nesac\n"
	if err := os.WriteFile(filepath.Join(dir, "rustc"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// A rustc without the WASI standard library (a rustup toolchain without
// the target) is passed over; with no other, the build fails naming the
// Debian packages and the reason.
func TestMissingRust(t *testing.T) {
	if _, err := wasmbuild.LookPath("sh", os.Environ()); err != nil {
		t.Skip("no sh for the fake rustc")
	}
	src := filepath.Join(t.TempDir(), "main.rs")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"main.rs": "fn main() {}\n"})

	_, _, err := build(t, src, Options{Env: wasmbuild.Setenv(os.Environ(), "PATH", t.TempDir())})
	var me *wasmbuild.MissingError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "apt-get install -y rustc libstd-rust-dev-wasm32 lld") {
		t.Errorf("no rustc at all: %v", err)
	}

	bin, sysroot := t.TempDir(), t.TempDir()
	fakeRustc(t, bin, "1.95.0", sysroot)
	_, log, err := build(t, src, Options{Env: wasmbuild.Setenv(os.Environ(), "PATH", bin)})
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "rustc 1.95.0 has no standard library for wasm32-wasip1 or wasm32-wasi in its sysroot "+sysroot) ||
		!strings.Contains(err.Error(), "apt-get install -y rustc libstd-rust-dev-wasm32 lld") {
		t.Errorf("rustc without the target: %v", err)
	}
	if !strings.Contains(log, "passing over "+filepath.Join(bin, "rustc")) {
		t.Errorf("log does not say which rustc it passed over:\n%s", log)
	}
}

// Debian's rustc is preferred over one earlier on PATH, and the log says
// which was used and which was passed over.
func TestPrefersDebian(t *testing.T) {
	tc := requireRust(t, false)
	if !tc.debian {
		t.Skip("the rustc found is not Debian's")
	}
	bin, sysroot := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(sysroot, "lib", "rustlib", "wasm32-wasip1", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	fakeRustc(t, bin, "1.99.0", sysroot)
	env := wasmbuild.Setenv(os.Environ(), "PATH", bin+string(os.PathListSeparator)+filepath.Dir(tc.Rustc))
	var log bytes.Buffer
	got, err := findRustc(context.Background(), "", env, &log)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rustc != tc.Rustc || !strings.Contains(log.String(), "passing over "+filepath.Join(bin, "rustc")+" (rustc 1.99.0, target wasm32-wasip1): Debian's rustc comes first") {
		t.Errorf("picked %s; log:\n%s", got.Rustc, log.String())
	}
	// Named explicitly, the other one is used.
	got, err = findRustc(context.Background(), filepath.Join(bin, "rustc"), env, io.Discard)
	if err != nil || got.Rustc != filepath.Join(bin, "rustc") || got.Target != "wasm32-wasip1" {
		t.Errorf("explicit rustc: %+v, %v", got, err)
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		toml, name, edition, needs string
	}{
		{"[package]\nname = \"a-b\"\nedition = \"2018\" # comment\n\n[dependencies]\n", "a-b", "2018", ""},
		{"[package]\nname = \"x\"\n\n[dev-dependencies]\nfoo = \"1\"\n", "x", "", ""},
		{"[package]\ndescription = \"a C# port\" # of something\nname = 'x#y'\n", "x#y", "", ""},
		{"[package]\nname = \"x\"\n[dependencies]\nserde = { version = \"1\" }\n", "x", "", "Cargo.toml:4: it declares the dependency serde"},
		{"[package]\nname = \"x\"\n[dependencies.serde]\nversion = \"1\"\n", "x", "", "Cargo.toml:3: it declares a dependency ([dependencies.serde])"},
		{"[package]\nname = \"x\"\n[target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n", "x", "", "Cargo.toml:4: it declares the dependency libc"},
		{"[package]\nname = \"x\"\nbuild = \"build.rs\"\n", "x", "", "Cargo.toml:3: it has a build script"},
	} {
		p := filepath.Join(dir, "Cargo.toml")
		os.WriteFile(p, []byte(c.toml), 0o644)
		m, err := readManifest(p)
		if err != nil || m.name != c.name || m.edition != c.edition || m.needsCargo != c.needs {
			t.Errorf("%q: %+v, %v", c.toml, m, err)
		}
	}
	for toml, want := range map[string]manifest{
		"[package]\nname = \"h\"\n[lib]\ncrate-type = [\"cdylib\"]\n":                                   {name: "h", cdylib: true},
		"[package]\nname = \"h\"\n[lib]\ncrate-type = ['rlib', 'cdylib'] # both\npath = \"src/h.rs\"\n": {name: "h", cdylib: true, libPath: "src/h.rs"},
		"[package]\nname = \"h\"\n[lib]\ncrate-type = [\"rlib\"]\n":                                     {name: "h"},
		"[package]\nname = \"h\"\ncrate-type = [\"cdylib\"]\n":                                          {name: "h"},
	} {
		p := filepath.Join(dir, "Cargo.toml")
		os.WriteFile(p, []byte(toml), 0o644)
		if m, err := readManifest(p); err != nil || m != want {
			t.Errorf("%q: %+v, %v; want %+v", toml, m, err, want)
		}
	}
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[workspace]\nmembers = [\"a\"]\n"), 0o644)
	if _, err := readManifest(filepath.Join(dir, "Cargo.toml")); err == nil || !strings.Contains(err.Error(), "no [package] name") {
		t.Errorf("workspace manifest: %v", err)
	}
}

// A handler that panics traps its instance: that request gets a 502 and
// the panic in the function log, the next one a fresh instance.
func TestHandlerPanics(t *testing.T) {
	requireRust(t, false)
	files := exampleFiles(t)
	files["lib.rs"] = `mod isotope;

use isotope::{Request, Response};

fn hello(req: &Request) -> Response {
    if req.query("panic").is_some() {
        panic!("asked to panic");
    }
    Response::new(200).body("still here\n")
}

isotope::export_handler!(hello);
`
	src := t.TempDir()
	buildtest.WriteFiles(t, src, files)
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	ctx := context.Background()
	rt, err := wasm.NewRuntime(ctx, wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	var fnlog testlog.Buffer
	mod, err := rt.Load(ctx, wasm.LoadRequest{Path: deploy, Name: "default/panics", Log: &fnlog})
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close()
	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		mod.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := get("/?panic=1"); code != http.StatusBadGateway {
		t.Errorf("a panicking handler answered %d %q", code, body)
	}
	if code, body := get("/"); code != 200 || body != "still here\n" {
		t.Errorf("after the panic: %d %q", code, body)
	}
	if !strings.Contains(fnlog.String(), "asked to panic") {
		t.Errorf("the function log lacks the panic:\n%s", fnlog.String())
	}
	if st := mod.Stats(); st.Traps != 1 || st.InstancesDiscarded < 1 {
		t.Errorf("stats %+v: want one trap and its instance discarded", st)
	}
}

func TestBuildScript(t *testing.T) {
	requireRust(t, false)
	src := t.TempDir()
	buildtest.WriteFiles(t, src, map[string]string{
		"app.rs":   "fn main() { print!(\"Content-Type: text/plain\\n\\n{}\\n\", option_env!(\"GREETING\").unwrap_or(\"none\")); }\n",
		"build.sh": "set -e\nGREETING=scripted \"$RUSTC\" --target \"$CARGO_BUILD_TARGET\" -o app.wasm app.rs\n",
	})
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "scripted\n" {
		t.Errorf("served %d %q", code, body)
	}
}

func TestCrateIdent(t *testing.T) {
	for in, want := range map[string]string{"hello-rust": "hello_rust", "main": "main", "9lives": "function_9lives", "a.b c": "a_b_c"} {
		if got := crateIdent(in); got != want {
			t.Errorf("crateIdent(%q) = %q, want %q", in, got, want)
		}
	}
}
