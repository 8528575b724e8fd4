package cwasm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/wasmbuild"
	"isotope.dev/isotope/internal/wasmbuild/buildtest"
)

// requireClang skips the test, naming the packages, when this machine
// cannot build C (or, with cxx, C++) for wasm32-wasi.
func requireClang(t *testing.T, cxx bool) {
	t.Helper()
	ctx := context.Background()
	tc, err := findClang(ctx, "", os.Environ())
	if err == nil {
		err = tc.probe(ctx, cxx, t.TempDir(), os.Environ())
	}
	var me *wasmbuild.MissingError
	if errors.As(err, &me) {
		t.Skipf("no C toolchain for WebAssembly here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// build runs Build and returns the deploy dir and the log.
func build(t *testing.T, src string, opts Options) (string, string, error) {
	t.Helper()
	deploy := filepath.Join(t.TempDir(), "src-abcdef")
	var log bytes.Buffer
	err := Build(context.Background(), src, deploy, opts, &log)
	return deploy, log.String(), err
}

func TestBuildExample(t *testing.T) {
	requireClang(t, false)
	src := filepath.Join(buildtest.RepoRoot(), "examples", "hello-c", "hello.c")
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	for _, want := range []string{"c-wasm: clang ", "target wasm32-wasi", "-o " + deploy + "/main.wasm hello.c", "main.wasm is "} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	ents, _ := os.ReadDir(deploy)
	if len(ents) != 1 || ents[0].Name() != "main.wasm" {
		t.Errorf("deploy holds %v, want main.wasm alone", ents)
	}
	code, body := buildtest.Serve(t, deploy, "/?name=Ada%20L")
	if code != 200 || body != "Hello, Ada L! (from C on WebAssembly, GET /)\n" {
		t.Errorf("served %d %q", code, body)
	}

	// The same source gives the same bytes wherever it was built: the
	// runtime's compile cache and the package's checksum stay put.
	again, log2, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, log2)
	}
	a, _ := os.ReadFile(filepath.Join(deploy, "main.wasm"))
	b, _ := os.ReadFile(filepath.Join(again, "main.wasm"))
	if !bytes.Equal(a, b) {
		t.Errorf("two builds of one source differ (%d and %d bytes)", len(a), len(b))
	}
}

func TestBuildDirectory(t *testing.T) {
	requireClang(t, false)
	// A zip of a folder: the files sit one directory down.
	src := t.TempDir()
	buildtest.WriteFiles(t, src, map[string]string{
		"app/greet.h": "const char *greeting(void);\n",
		"app/greet.c": "#include \"greet.h\"\nconst char *greeting(void) { return \"two files\"; }\n",
		"app/main.c": "#include <stdio.h>\n#include \"greet.h\"\n" +
			"int main(void) { printf(\"Content-Type: text/plain\\n\\n%s\\n\", greeting()); return 0; }\n",
		"app/notes.txt": "not source",
	})
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "greet.c main.c") {
		t.Errorf("log does not show both files compiled together:\n%s", log)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "two files\n" {
		t.Errorf("served %d %q", code, body)
	}
}

func TestBuildCXX(t *testing.T) {
	requireClang(t, true)
	src := t.TempDir()
	buildtest.WriteFiles(t, src, map[string]string{
		"util.c": "int twice(int x) { return 2 * x; }\n",
		"main.cpp": "#include <iostream>\n#include <string>\nextern \"C\" int twice(int);\n" +
			"int main() { std::string s = \"C++ \"; std::cout << \"Content-Type: text/plain\\n\\n\" << s << twice(21) << \"\\n\"; }\n",
	})
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "clang++ ") || !strings.Contains(log, "-x c util.c -x c++ main.cpp") {
		t.Errorf("log does not show clang++ with each file's language:\n%s", log)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "C++ 42\n" {
		t.Errorf("served %d %q", code, body)
	}
}

// A compile error fails the build with the compiler's message, whose
// file:line is also in the error itself.
func TestCompileError(t *testing.T) {
	requireClang(t, false)
	src := filepath.Join(t.TempDir(), "broken.c")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{
		"broken.c": "#include <stdio.h>\n\nint main(void) {\n    printf(\"x\")\n    return 0;\n}\n",
	})
	deploy, log, err := build(t, src, Options{})
	if err == nil {
		t.Fatalf("build of a broken source succeeded:\n%s", log)
	}
	if !strings.Contains(log, "broken.c:4:16: error: expected ';'") {
		t.Errorf("log lacks the compiler's file:line message:\n%s", log)
	}
	if !strings.Contains(err.Error(), "clang failed: broken.c:4:16: error: expected ';'") {
		t.Errorf("error = %v", err)
	}
	if _, serr := os.Stat(deploy); !os.IsNotExist(serr) {
		t.Errorf("a failed build left $DEPLOY_PKG behind")
	}

	// Calling an undeclared function is an error at its line, not a
	// link failure without one.
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"broken.c": "int main(void) {\n    return nowhere();\n}\n"})
	_, log, err = build(t, src, Options{})
	if err == nil || !strings.Contains(err.Error(), "broken.c:2:12: error: implicit declaration of function 'nowhere'") {
		t.Errorf("error = %v\n%s", err, log)
	}
}

// Without clang the build fails, saying which Debian packages to install.
func TestMissingClang(t *testing.T) {
	env := wasmbuild.Setenv(os.Environ(), "PATH", t.TempDir())
	env = wasmbuild.Setenv(env, ClangEnv, "")
	src := filepath.Join(buildtest.RepoRoot(), "examples", "hello-c", "hello.c")
	_, log, err := build(t, src, Options{Env: env})
	var me *wasmbuild.MissingError
	if !errors.As(err, &me) {
		t.Fatalf("error = %v, want a MissingError\n%s", err, log)
	}
	if msg := err.Error(); !strings.Contains(msg, "apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32") {
		t.Errorf("error does not name the packages: %s", msg)
	}

	// A clang named explicitly that is not there says so too.
	_, _, err = build(t, src, Options{Env: env, Clang: "/nonexistent/clang"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/clang") || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("error = %v", err)
	}
}

// What clang prints when a piece of the toolchain is missing becomes the
// package that provides it.
func TestDiagnose(t *testing.T) {
	tc := &Toolchain{Clang: "/usr/bin/clang-16", major: 16}
	for _, c := range []struct {
		cxx  bool
		out  string
		want string
	}{
		{false, `clang: error: unable to execute command: Executable "wasm-ld" doesn't exist!`, "apt-get install -y lld-16"},
		{false, "probe.c:1:10: fatal error: 'stdio.h' file not found", "apt-get install -y wasi-libc"},
		{false, "wasm-ld: error: cannot open crt1-command.o: No such file or directory", "apt-get install -y wasi-libc"},
		{false, "wasm-ld: error: cannot open /usr/lib/llvm-16/lib/clang/16/lib/wasi/libclang_rt.builtins-wasm32.a: No such file or directory", "apt-get install -y libclang-rt-16-dev-wasm32"},
		{true, "probe.cc:1:10: fatal error: 'string' file not found", "apt-get install -y libc++-16-dev-wasm32 libc++abi-16-dev-wasm32"},
		{false, "error: unknown target triple 'wasm32-unknown-wasi'", "apt-get install -y clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32"},
		{false, "something else entirely", "apt-get install -y clang-16 lld-16 wasi-libc libclang-rt-16-dev-wasm32"},
	} {
		err := tc.diagnose(c.cxx, c.out, errors.New("exit status 1"))
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want it to say %q", c.out, err, c.want)
		}
	}
}

func TestBuildScript(t *testing.T) {
	requireClang(t, false)
	hello := "#include <stdio.h>\nint main(void) { printf(\"Content-Type: text/plain\\n\\n%s\\n\", MSG); return 0; }\n"

	t.Run("build.sh writes DEPLOY_PKG", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{
			"hello.c":  hello,
			"build.sh": "set -e\nmkdir -p \"$DEPLOY_PKG\"\n$CC -O2 -DMSG='\"from build.sh\"' -o \"$DEPLOY_PKG/app.wasm\" \"$SRC_PKG/hello.c\"\ncp hello.c \"$DEPLOY_PKG/\"\n",
		})
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if !strings.Contains(log, "running build.sh") || !strings.Contains(log, "build.sh wrote $DEPLOY_PKG") {
			t.Errorf("log:\n%s", log)
		}
		if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "from build.sh\n" {
			t.Errorf("served %d %q", code, body)
		}
	})

	t.Run("build.sh leaves one module", func(t *testing.T) {
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{
			"hello.c":  hello,
			"build.sh": "mkdir -p out && $CC -DMSG='\"left in out/\"' -o out/x.wasm hello.c\n",
		})
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if !strings.Contains(log, "build.sh built out/x.wasm") {
			t.Errorf("log:\n%s", log)
		}
		if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "left in out/\n" {
			t.Errorf("served %d %q", code, body)
		}
	})

	t.Run("Makefile", func(t *testing.T) {
		if _, err := exec.LookPath("make"); err != nil {
			t.Skip("make is not installed (Debian package make)")
		}
		src := t.TempDir()
		buildtest.WriteFiles(t, src, map[string]string{
			"hello.c": hello,
			// CC = gcc is overridden by the builder's CC on make's
			// command line.
			"Makefile": "CC = gcc\nCFLAGS = -O2 -DMSG='\"from make\"'\n\nhello.wasm: hello.c\n\t$(CC) $(CFLAGS) -o $@ $<\n",
		})
		deploy, log, err := build(t, src, Options{})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log)
		}
		if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != "from make\n" {
			t.Errorf("served %d %q", code, body)
		}
	})

	for _, c := range []struct{ name, script, want string }{
		{"fails", "echo doing things\nexit 3\n", "build.sh failed: exit status 3"},
		{"writes nothing", "true\n", "build.sh finished without writing $DEPLOY_PKG or any .wasm file"},
		{"two modules", "$CC -DMSG='\"a\"' -o a.wasm hello.c && $CC -DMSG='\"b\"' -o b.wasm hello.c\n", "built 2 .wasm files (a.wasm, b.wasm)"},
		{"not a module", "mkdir -p \"$DEPLOY_PKG\" && echo hi > \"$DEPLOY_PKG/main.wasm\"\n", "main.wasm is not a WebAssembly module"},
		// A symbol left undefined by the link becomes an import the
		// runtime does not provide: caught at build time.
		{"foreign import", "printf 'int host_thing(void);\\nint main(void) { return host_thing(); }\\n' > u.c && $CC -Wl,--allow-undefined -o u.wasm u.c\n", "imports env.host_thing, which Isotope's runtime does not provide"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			buildtest.WriteFiles(t, src, map[string]string{"hello.c": hello, "build.sh": c.script})
			deploy, log, err := build(t, src, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want %q\n%s", err, c.want, log)
			}
			if _, serr := os.Stat(deploy); !os.IsNotExist(serr) {
				t.Errorf("a failed build left $DEPLOY_PKG behind")
			}
		})
	}
}

func TestSourceErrors(t *testing.T) {
	requireClang(t, false)
	dir := t.TempDir()
	buildtest.WriteFiles(t, dir, map[string]string{"README": "no code"})
	if _, _, err := build(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "no C or C++ source at the top") {
		t.Errorf("error = %v", err)
	}
	if _, _, err := build(t, filepath.Join(dir, "missing.c"), Options{}); err == nil || !strings.Contains(err.Error(), "missing.c") {
		t.Errorf("error = %v", err)
	}
	// A source without main is a reactor at best: not servable as WAGI.
	buildtest.WriteFiles(t, dir, map[string]string{"lib.c": "int f(void) { return 1; }\n"})
	if _, log, err := build(t, filepath.Join(dir, "lib.c"), Options{}); err == nil {
		t.Errorf("a source without main built:\n%s", log)
	}
}

func TestRunArgs(t *testing.T) {
	var log bytes.Buffer
	if err := Run(context.Background(), nil, []string{"PATH=/nonexistent"}, &log); err == nil || !strings.Contains(err.Error(), "SRC_PKG and DEPLOY_PKG must be set") {
		t.Errorf("error = %v", err)
	}
	if err := Run(context.Background(), []string{"a", "b", "c"}, nil, &log); err == nil || !strings.Contains(err.Error(), "too many arguments") {
		t.Errorf("error = %v", err)
	}
	if err := Run(context.Background(), []string{"--bogus"}, nil, &log); err == nil {
		t.Errorf("an unknown flag was accepted")
	}
}
