package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// repoRoot is the repository's root directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// requireToolchain skips the test when the built-in builder `isotope
// build <builder>` cannot build src on this machine because its
// toolchain is missing; the skip message is the builder's own, which
// names the Debian packages to install.
func requireToolchain(t *testing.T, builder, src string) {
	t.Helper()
	out, err := exec.Command(binary, "build", builder, src, filepath.Join(t.TempDir(), "deploy")).CombinedOutput()
	if err == nil {
		return
	}
	if strings.Contains(string(out), "is not installed") {
		t.Skipf("the %s toolchain is missing here: %s", builder, lastLine(string(out)))
	}
	t.Fatalf("isotope build %s %s: %v\n%s", builder, src, err, out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestCFlow is the seed flow for C: an environment with the c-wasm
// builder, a package built from one .c file on the platform, a function
// and a route answered by the WAGI module; a compile error fails the
// build with the compiler's file:line in the build log; the example's
// spec directory serves too.
func TestCFlow(t *testing.T) {
	src := filepath.Join(repoRoot(), "examples", "hello-c", "hello.c")
	requireToolchain(t, "c-wasm", src)
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "clang", "--image", "isotope/wasm-env", "--builder", "isotope/c-wasm-builder")

	out := p.ok("pkg", "create", "--name", "chello", "--env", "clang", "--src", src)
	if info := p.ok("pkg", "info", "--name", "chello"); !strings.Contains(info, "succeeded") {
		t.Fatalf("package not succeeded:\n%s\ncreate printed:\n%s", info, out)
	}
	if !strings.Contains(out, "c-wasm: clang ") {
		t.Errorf("the build log did not stream to pkg create:\n%s", out)
	}
	p.ok("fn", "create", "--name", "chello", "--env", "clang", "--pkg", "chello")
	p.ok("route", "create", "--name", "chello", "--function", "chello", "--url", "/c/hello", "--method", "GET")
	if body := p.waitServes(t, "/c/hello?name=Isotope", 200); body != "Hello, Isotope! (from C on WebAssembly, GET /)\n" {
		t.Errorf("function answered %q", body)
	}
	if logs := p.ok("fn", "logs", "--name", "chello"); !strings.Contains(logs, "greeting Isotope") {
		t.Errorf("the module's stderr is not in the function log:\n%s", logs)
	}

	// A compile error: the build fails, and its log (streamed to the
	// CLI and kept in the package) points at the line.
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.c")
	os.WriteFile(broken, []byte("#include <stdio.h>\n\nint main(void) {\n    printf(\"x\")\n    return 0;\n}\n"), 0o644)
	r := p.run("pkg", "create", "--name", "broken-c", "--env", "clang", "--src", broken)
	const want = "broken.c:4:16: error: expected ';' after expression"
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("broken build: %s", r)
	}
	if info := p.ok("pkg", "info", "--name", "broken-c"); !strings.Contains(info, "failed") || !strings.Contains(info, want) {
		t.Errorf("pkg info of the broken package:\n%s", info)
	}

	// The example's spec directory: its own environment, package,
	// function and route.
	p.ok("spec", "apply", "--specdir", filepath.Join(repoRoot(), "examples", "hello-c", "specs"), "--wait")
	if body := p.waitServes(t, "/hello-c", 200); body != "Hello, world! (from C on WebAssembly, GET /)\n" {
		t.Errorf("the spec's function answered %q", body)
	}
}

// TestRustFlow is the seed flow for Rust: an environment with the
// rust-wasm builder, the example crate built on the platform, a function
// and a route; a compile error's file:line in the build log; the
// example's spec directory.
func TestRustFlow(t *testing.T) {
	crate := filepath.Join(repoRoot(), "examples", "hello-rust")
	requireToolchain(t, "rust-wasm", crate)
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "rs", "--image", "isotope/wasm-env", "--builder", "isotope/rust-wasm-builder")

	out := p.ok("pkg", "create", "--name", "rhello", "--env", "rs", "--src", crate)
	if info := p.ok("pkg", "info", "--name", "rhello"); !strings.Contains(info, "succeeded") {
		t.Fatalf("package not succeeded:\n%s\ncreate printed:\n%s", info, out)
	}
	if !strings.Contains(out, "rust-wasm: rustc ") {
		t.Errorf("the build log does not say which rustc built it:\n%s", out)
	}
	p.ok("fn", "create", "--name", "rhello", "--env", "rs", "--pkg", "rhello")
	p.ok("route", "create", "--name", "rhello", "--function", "rhello", "--url", "/rs/hello", "--method", "GET")
	if body := p.waitServes(t, "/rs/hello?name=Isotope", 200); body != "Hello, Isotope! (from Rust on WebAssembly, GET /)\n" {
		t.Errorf("function answered %q", body)
	}

	dir := t.TempDir()
	broken := filepath.Join(dir, "main.rs")
	os.WriteFile(broken, []byte("fn main() {\n    let n: u32 = \"text\";\n}\n"), 0o644)
	r := p.run("pkg", "create", "--name", "broken-rust", "--env", "rs", "--src", broken)
	const want = "main.rs:2:18: error[E0308]: mismatched types"
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("broken build: %s", r)
	}
	if info := p.ok("pkg", "info", "--name", "broken-rust"); !strings.Contains(info, "failed") || !strings.Contains(info, "--> main.rs:2:18") {
		t.Errorf("pkg info of the broken package:\n%s", info)
	}

	// The environment's builder env reaches the built-in builder: a
	// stack size it cannot read fails the build, naming the variable.
	p.ok("env", "create", "--name", "rs-env", "--image", "isotope/wasm-env", "--builder", "isotope/rust-wasm-builder",
		"--builder-env", "ISOTOPE_RUST_STACK_SIZE=256k")
	r = p.run("pkg", "create", "--name", "rs-env-stack", "--env", "rs-env", "--src", crate)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, `$ISOTOPE_RUST_STACK_SIZE="256k": want a number of bytes`) {
		t.Errorf("a builder env's bad stack size: %s", r)
	}

	p.ok("spec", "apply", "--specdir", filepath.Join(crate, "specs"), "--wait")
	if body := p.waitServes(t, "/hello-rust?name=spec", 200); body != "Hello, spec! (from Rust on WebAssembly, GET /)\n" {
		t.Errorf("the spec's function answered %q", body)
	}
}

// TestMissingToolchain: on a server whose PATH has no compilers, builds
// with the C and Rust builders fail (they do not crash the builder), and
// each failed build's log says which Debian packages to install.
func TestMissingToolchain(t *testing.T) {
	p := startPlatformEnv(t, "", []string{"PATH=" + t.TempDir(), "ISOTOPE_CLANG=", "ISOTOPE_RUSTC="})
	dir := t.TempDir()
	hello := filepath.Join(dir, "hello.c")
	os.WriteFile(hello, []byte("int main(void) { return 0; }\n"), 0o644)
	main := filepath.Join(dir, "main.rs")
	os.WriteFile(main, []byte("fn main() {}\n"), 0o644)

	for _, c := range []struct{ env, builder, src, want string }{
		{"clang", "isotope/c-wasm-builder", hello, "Install the Debian package(s) on the builder: apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32"},
		{"rs", "isotope/rust-wasm-builder", main, "Install the Debian package(s) on the builder: apt-get install -y rustc libstd-rust-dev-wasm32 lld"},
	} {
		p.ok("env", "create", "--name", c.env, "--image", "isotope/wasm-env", "--builder", c.builder)
		r := p.run("pkg", "create", "--name", c.env+"-pkg", "--env", c.env, "--src", c.src)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("%s build without a toolchain: %s", c.builder, r)
		}
		info := p.ok("pkg", "info", "--name", c.env+"-pkg")
		if !strings.Contains(info, "failed") || !strings.Contains(info, c.want) {
			t.Errorf("pkg info of the %s package:\n%s", c.builder, info)
		}
	}
	// The builders are still there: a second build fails the same way,
	// rather than finding no builder.
	r := p.run("pkg", "create", "--name", "again", "--env", "clang", "--src", hello)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "apt-get install -y clang") {
		t.Errorf("second build: %s", r)
	}
}
