package rustwasm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"isotope.dev/isotope/internal/wasmbuild/buildtest"
)

// memoryPages is the initial size, in 64 KiB pages, of the linear memory
// of the module a build left in deploy: what every WAGI request zeroes.
func memoryPages(t *testing.T, deploy string) uint32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deploy, "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	mem, ok := cm.ExportedMemories()["memory"]
	if !ok {
		t.Fatal("the module exports no memory")
	}
	return mem.Min()
}

// recursion needs over 400 KiB of stack to answer: 100 frames, each
// holding a 4 KiB array across its recursive call (its address escapes,
// so it lives on the stack in memory). More than the builder's default,
// less than rustc's 1 MiB. It answers 1+2+...+100.
const recursion = `#[inline(never)]
fn fill(b: &mut [u8; 4096], n: u32) {
    for x in b.iter_mut() {
        unsafe { std::ptr::write_volatile(x, n as u8) }
    }
}

fn deep(n: u32) -> u64 {
    let mut buf = [0u8; 4096];
    fill(&mut buf, n);
    if n == 0 { return 0; }
    let below = deep(n - 1);
    below + unsafe { std::ptr::read_volatile(&buf[4095]) } as u64
}

fn main() {
    print!("Content-Type: text/plain\n\n{}\n", deep(100));
}
`

const recursionAnswer = "5050\n"

// The builder links a 256 KiB stack: the module's initial memory (what
// a WAGI request zeroes) is a few pages, not Rust's 17. Past it, the
// guest traps: the stack comes first in memory, so an overflow runs
// below address 0 instead of over data. -1 gives rustc's 1 MiB back.
func TestStackSize(t *testing.T) {
	requireRust(t, false)
	src := filepath.Join(t.TempDir(), "main.rs")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"main.rs": recursion})

	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, "-C link-arg=-zstack-size=262144") {
		t.Errorf("log does not show the stack flag:\n%s", log)
	}
	if p := memoryPages(t, deploy); p > 6 {
		t.Errorf("initial memory %d pages with a 256 KiB stack, want at most 6", p)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 502 || !strings.Contains(body, "out of bounds memory access") {
		t.Errorf("400 KiB of recursion in a 256 KiB stack answered %d %q: the overflow must trap", code, body)
	}

	deploy, log, err = build(t, src, Options{StackSize: -1})
	if err != nil {
		t.Fatalf("build with rustc's stack: %v\n%s", err, log)
	}
	if strings.Contains(log, "zstack-size") {
		t.Errorf("-1 still passes a stack size:\n%s", log)
	}
	if p := memoryPages(t, deploy); p < 16 {
		t.Errorf("initial memory %d pages with rustc's 1 MiB stack, want at least 16", p)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != recursionAnswer {
		t.Errorf("with a 1 MiB stack: %d %q", code, body)
	}

	t.Setenv(StackSizeEnv, "1048576")
	deploy, log, err = build(t, src, Options{Env: os.Environ()})
	if err != nil {
		t.Fatalf("build with $%s: %v\n%s", StackSizeEnv, err, log)
	}
	if !strings.Contains(log, "-zstack-size=1048576") {
		t.Errorf("$%s not used:\n%s", StackSizeEnv, log)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != recursionAnswer {
		t.Errorf("with $%s=1048576: %d %q", StackSizeEnv, code, body)
	}
}

// A bad stack size fails the build before the compiler runs, naming
// where it came from.
func TestStackSizeRefused(t *testing.T) {
	src := filepath.Join(t.TempDir(), "main.rs")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"main.rs": "fn main() {}\n"})
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{StackSize: 1000}, "stack size 1000: want a multiple of 16 bytes from 16384"},
		{Options{StackSize: 1 << 30}, "stack size 1073741824"},
		{Options{StackSize: 65537}, "stack size 65537"},
		{Options{Env: []string{StackSizeEnv + "=256k"}}, `$ISOTOPE_RUST_STACK_SIZE="256k": want a number of bytes`},
		{Options{Env: []string{StackSizeEnv + "=-5"}}, `$ISOTOPE_RUST_STACK_SIZE="-5": want a number of bytes`},
	} {
		if _, log, err := build(t, src, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error = %v, want %q\n%s", c.opts, err, c.want, log)
		}
	}
}

// A cargo build gets the stack as the target's RUSTFLAGS, unless the
// crate sets rustflags itself: then the crate's word stands.
func TestStackSizeCargo(t *testing.T) {
	tc := requireRust(t, true)
	files := map[string]string{
		"Cargo.toml":  "[package]\nname = \"deep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
		"src/main.rs": recursion,
	}
	src := t.TempDir()
	buildtest.WriteFiles(t, src, files)
	deploy, log, err := build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if p := memoryPages(t, deploy); p > 6 {
		t.Errorf("cargo build: initial memory %d pages, want at most 6\n%s", p, log)
	}

	files[".cargo/config.toml"] = "[target." + tc.Target + "]\nrustflags = [\"-C\", \"link-arg=-zstack-size=2097152\"]\n"
	src = t.TempDir()
	buildtest.WriteFiles(t, src, files)
	deploy, log, err = build(t, src, Options{})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log)
	}
	if !strings.Contains(log, ".cargo/config.toml sets rustflags") {
		t.Errorf("log does not say the crate's rustflags win:\n%s", log)
	}
	if p := memoryPages(t, deploy); p < 32 {
		t.Errorf("the crate's 2 MiB stack gave %d pages, want at least 32", p)
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != recursionAnswer {
		t.Errorf("with the crate's 2 MiB stack: %d %q", code, body)
	}
}

// The command's --stack-size: 0 is rustc's default whatever the
// environment says; a typo in the value or the flag's name is refused
// before anything is built.
func TestStackSizeFlag(t *testing.T) {
	src := filepath.Join(t.TempDir(), "main.rs")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"main.rs": "fn main() {}\n"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--stack-size", "abc"}, `--stack-size="abc": want a number of bytes`},
		{[]string{"--stack-size", "-1"}, `--stack-size="-1": want a number of bytes`},
		{[]string{"--stack-size", "100"}, "stack size 100: want a multiple of 16"},
		{[]string{"--stak-size", "65536"}, "stak-size"},
	} {
		var log bytes.Buffer
		args := append(c.args, src, filepath.Join(t.TempDir(), "deploy"))
		if err := Run(context.Background(), args, nil, &log); err == nil || !strings.Contains(err.Error()+log.String(), c.want) {
			t.Errorf("%v: error = %v, want %q\n%s", c.args, err, c.want, log.String())
		}
	}

	requireRust(t, false)
	src = filepath.Join(t.TempDir(), "main.rs")
	buildtest.WriteFiles(t, filepath.Dir(src), map[string]string{"main.rs": recursion})
	deploy := filepath.Join(t.TempDir(), "deploy")
	var log bytes.Buffer
	env := append(os.Environ(), StackSizeEnv+"=65536")
	if err := Run(context.Background(), []string{"--stack-size", "0", src, deploy}, env, &log); err != nil {
		t.Fatalf("--stack-size 0: %v\n%s", err, log.String())
	}
	if strings.Contains(log.String(), "zstack-size") {
		t.Errorf("--stack-size 0 still passes a stack size:\n%s", log.String())
	}
	if code, body := buildtest.Serve(t, deploy, "/"); code != 200 || body != recursionAnswer {
		t.Errorf("--stack-size 0 (rustc's 1 MiB): %d %q", code, body)
	}
}
