package wasmbuild

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The first error diagnostic is found in each toolchain's own format.
func TestFirstDiagnostic(t *testing.T) {
	for _, c := range []struct{ name, out, want string }{
		{"clang", "hello.c:3:1: warning: unused\nhello.c:4:16: error: expected ';' after expression\n    printf(\"x\")\n1 error generated.\n",
			"hello.c:4:16: error: expected ';' after expression"},
		{"clang fatal", "main.c:1:10: fatal error: 'nope.h' file not found\n", "main.c:1:10: error: 'nope.h' file not found"},
		{"rustc", "error[E0308]: mismatched types\n --> src/main.rs:4:18\n  |\n\nerror: aborting due to previous error\n",
			"src/main.rs:4:18: error[E0308]: mismatched types"},
		{"rustc colored", "\x1b[0m\x1b[1m\x1b[38;5;9merror[E0425]\x1b[0m\x1b[1m: cannot find value `x`\x1b[0m\n\x1b[0m \x1b[1m\x1b[38;5;12m--> \x1b[0mmain.rs:2:5\n",
			"main.rs:2:5: error[E0425]: cannot find value `x`"},
		{"cargo without position", "error: no matching package named `serde` found\nlocation searched: registry `crates-io`\n",
			"error: no matching package named `serde` found"},
		{"linker", "wasm-ld: error: hello.o: undefined symbol: foo\nclang: error: linker command failed with exit code 1\n",
			"wasm-ld: error: hello.o: undefined symbol: foo"},
		{"make", "make: *** [Makefile:4: hello.wasm] Error 1\n", ""},
		{"no newline at the end", "x.c:1:1: error: unknown type name 'in'", "x.c:1:1: error: unknown type name 'in'"},
	} {
		d := &diagWriter{}
		// Written in small pieces, as a pipe delivers them.
		for i := 0; i < len(c.out); i += 7 {
			d.Write([]byte(c.out[i:min(i+7, len(c.out))]))
		}
		d.flush()
		if d.first != c.want {
			t.Errorf("%s: first = %q, want %q", c.name, d.first, c.want)
		}
	}
}

// Run reports a failed tool with its first diagnostic, and what it
// printed goes to the log.
func TestRun(t *testing.T) {
	var log strings.Builder
	err := Run(context.Background(), "sh", t.TempDir(), os.Environ(), &log, "/bin/sh", "-c", "echo 'a.c:1:2: error: bad' >&2; exit 2")
	te, ok := err.(*ToolError)
	if !ok || te.Error() != "sh failed: a.c:1:2: error: bad" || !te.Printed("error: bad") || te.Printed("other") {
		t.Errorf("error = %#v", err)
	}
	if log.String() != "a.c:1:2: error: bad\n" {
		t.Errorf("log = %q", log.String())
	}
	if err := Run(context.Background(), "nothing", t.TempDir(), nil, &log, "/nonexistent/tool"); err == nil || !strings.Contains(err.Error(), "running nothing") {
		t.Errorf("missing program: %v", err)
	}
}

func TestStage(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "proj", "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "proj", "a.c"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(src, "proj", "sub", "b.h"), []byte("b"), 0o644)
	os.MkdirAll(filepath.Join(src, "__MACOSX"), 0o755)
	os.WriteFile(filepath.Join(src, ".DS_Store"), nil, 0o644)

	s, err := Stage(src, "wasmbuild-test-", func(string) string { return "unused" })
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "sub", "b.h")); err != nil || string(b) != "b" {
		t.Errorf("the zip's one folder was not descended into: %v", err)
	}
	if files, _ := s.TopFiles(".c", ".h"); len(files) != 1 || files[0] != "a.c" {
		t.Errorf("TopFiles = %v", files)
	}
	if !s.Has("a.c") || s.Has("sub") || !s.HasDir("sub") || s.File != "" {
		t.Errorf("Has/HasDir/File wrong: %+v", s)
	}
	s.Close()
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("Close left the copy")
	}

	// Fission names a single-file source after the package.
	file := filepath.Join(t.TempDir(), "mypkg")
	os.WriteFile(file, []byte("x"), 0o644)
	s, err = Stage(file, "wasmbuild-test-", func(base string) string { return base + ".c" })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.File != "mypkg.c" || !strings.HasSuffix(s.Dir, "src") {
		t.Errorf("single file staged as %q in %s", s.File, s.Dir)
	}
	if files, _ := s.TopFiles(".c"); len(files) != 1 {
		t.Errorf("TopFiles of a single file = %v", files)
	}

	if _, err := Stage(filepath.Join(t.TempDir(), "missing"), "x-", nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing source: %v", err)
	}
}

func TestLookPathAll(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		os.WriteFile(filepath.Join(d, "tool"), []byte("#!/bin/sh\n"), 0o755)
	}
	link := filepath.Join(t.TempDir(), "alias")
	os.Symlink(a, link) // another name for a: one directory
	os.WriteFile(filepath.Join(t.TempDir(), "tool"), []byte("not executable"), 0o644)
	env := []string{"PATH=" + strings.Join([]string{a, link, "", b}, string(os.PathListSeparator))}
	got := LookPathAll("tool", env)
	if len(got) != 2 || got[0] != filepath.Join(a, "tool") || got[1] != filepath.Join(b, "tool") {
		t.Errorf("LookPathAll = %v", got)
	}
	if p, err := LookPath("tool", env); err != nil || p != filepath.Join(a, "tool") {
		t.Errorf("LookPath = %q, %v", p, err)
	}
	dangling := t.TempDir()
	os.Symlink("/nonexistent/lld-99", filepath.Join(dangling, "rust-lld"))
	if _, err := LookPath("rust-lld", []string{"PATH=" + dangling}); err == nil {
		t.Errorf("a dangling link was found")
	}
}

// Modules, by hand: the smallest that show each verdict.
var (
	header = "\x00asm\x01\x00\x00\x00"
	// type 0: func () -> ()
	typeSec = "\x01\x04\x01\x60\x00\x00"
	// import env.f as function 0
	importEnv = "\x02\x09\x01\x03env\x01f\x00\x00"
	// function 0 (or 1) of type 0, its body empty
	funcSec = "\x03\x02\x01\x00"
	codeSec = "\x0a\x04\x01\x02\x00\x0b"
)

func export(name string, index byte) string {
	body := "\x01" + string(rune(len(name))) + name + "\x00" + string([]byte{index})
	return "\x07" + string(rune(len(body))) + body
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, module, want string }{
		{"wagi", string(wasmtest.WAGIHello()), ""},
		{"foreign import", header + typeSec + importEnv + export("_start", 0), "imports env.f, which Isotope's runtime does not provide"},
		{"reactor", header + typeSec + funcSec + export("_initialize", 0) + codeSec, "is a WASI reactor"},
		{"no start", header + typeSec + funcSec + export("run", 0) + codeSec, "exports neither _start"},
		{"not wasm", "#!/bin/sh\necho hi\n", "is not a WebAssembly module"},
		{"truncated", header + "\x01\x09\x01", "is not a valid WebAssembly module"},
	} {
		p := filepath.Join(dir, c.name+".wasm")
		os.WriteFile(p, []byte(c.module), 0o644)
		err := Check(context.Background(), p)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestCheckDeploy(t *testing.T) {
	deploy := t.TempDir()
	if err := CheckDeploy(context.Background(), deploy); err == nil || !strings.Contains(err.Error(), "holds no .wasm file") {
		t.Errorf("empty: %v", err)
	}
	os.MkdirAll(filepath.Join(deploy, "bin"), 0o755)
	os.WriteFile(filepath.Join(deploy, "bin", "app.wasm"), wasmtest.WAGIHello(), 0o644)
	os.WriteFile(filepath.Join(deploy, "index.html"), []byte("<p>"), 0o644)
	if err := CheckDeploy(context.Background(), deploy); err != nil {
		t.Errorf("one module and a file: %v", err)
	}
	os.WriteFile(filepath.Join(deploy, "other.wasm"), wasmtest.WAGIHello(), 0o644)
	if err := CheckDeploy(context.Background(), deploy); err == nil || !strings.Contains(err.Error(), "holds 2 .wasm files (bin/app.wasm, other.wasm)") {
		t.Errorf("two modules: %v", err)
	}
}

func TestMissingError(t *testing.T) {
	err := &MissingError{What: "clang", Detail: "not on PATH", Packages: []string{"clang", "lld"}, Hint: "or set ISOTOPE_CLANG"}
	want := "clang is not installed (not on PATH). Install the Debian package(s) on the builder: apt-get install -y clang lld; or set ISOTOPE_CLANG"
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}
