// Package rustwasm is the rust-wasm builder: it compiles Rust into a
// WebAssembly module for Isotope's runtime, one of two kinds
// (docs/functions-wagi.md, "Rust"):
//
//   - a handler: a library crate (cdylib) that exports a
//     fn(&Request) -> Response with sdk/rust/isotope.rs's
//     export_handler!. The module speaks Isotope's reactor ABI
//     (docs/reactor-abi.md): an instance starts once and serves request
//     after request. This is the fast kind (decision 0029);
//   - a WAGI program: a binary whose main serves one request from CGI
//     variables and stdin (a WASI command, a fresh instance per request).
//
// Source (SRC_PKG) is either a single .rs file (any other name than
// lib.rs is taken as main.rs), or a directory:
//
//   - with build.sh: it runs (sh build.sh) in the source directory with
//     RUSTC, CARGO and CARGO_BUILD_TARGET set, and must write DEPLOY_PKG
//     or leave exactly one new .wasm file;
//   - else with Cargo.toml: a crate with one binary or one cdylib
//     library, built with cargo build --release --offline --target
//     <wasm32-wasi[p1]> when there is a cargo next to the rustc;
//     dependencies must be vendored (vendor/, as `cargo vendor` makes
//     it; the builder points cargo at it unless .cargo/config.toml
//     already does), since no crates registry is reachable. Without
//     cargo, a crate with no dependencies and no build script is built
//     with rustc from its cdylib's src/lib.rs or its src/main.rs;
//   - else main.rs, lib.rs, or the only .rs file, at its top, with rustc.
//
// A crate root named lib.rs, or one that starts with
// #![crate_type = "cdylib"], is a handler; any other is a program. The
// compile is
//
//	rustc --edition 2021 --crate-type bin|cdylib --target wasm32-wasi -C opt-level=3 -C strip=debuginfo -C link-arg=-zstack-size=262144 -o main.wasm main.rs
//
// run in a copy of the source, so paths in messages (src/main.rs:2:5)
// are the user's and the module's bytes do not depend on where the build
// ran. Debug information is stripped (5.8 MB to 100 KB for a hello with
// Debian's standard library); function names stay, for traps' stack
// traces. The built module is checked against the runtime's ABI rules:
// a handler that exports nothing, or a handler built as a program, fails
// the build saying how to declare one.
//
// The guest's stack is 256 KiB (StackSize), not Rust's 1 MiB: a WAGI
// program is a fresh instance per request, and its initial linear
// memory (stack first, then data) is zeroed for every one. 1 MiB of it
// was a third of a WAGI hello's cost (72 µs against 49 µs a request
// in-process). A handler's is zeroed once per instance.
// Rust places the stack first in memory, so an overflow runs below
// address 0 and traps (the request fails with the trap in the function
// log) instead of overwriting data. --stack-size / ISOTOPE_RUST_STACK_SIZE
// choose another size; 0 keeps rustc's default. Cargo builds get it as
// CARGO_TARGET_<TARGET>_RUSTFLAGS unless the crate or environment sets
// rustflags of its own; build.sh scripts get ISOTOPE_RUST_STACK_SIZE and
// decide themselves.
//
// The toolchain is a rustc whose sysroot has the standard library for
// wasm32-wasip1 or wasm32-wasi: every rustc on the build's PATH is asked,
// Debian's (/usr/bin/rustc with libstd-rust-dev-wasm32) first, since a
// rustup toolchain can only add the target over the network;
// ISOTOPE_RUSTC or --rustc names one. The build log says which rustc it
// used and why it passed over the others; none found fails the build
// with the Debian packages to install.
package rustwasm

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasmbuild"
)

// Command is the build command of the rust-wasm builder environment.
const Command = "isotope build rust-wasm"

// StackSizeEnv names the environment variable that sets the guest's
// stack size in bytes (default DefaultStackSize; 0: rustc's default).
const StackSizeEnv = "ISOTOPE_RUST_STACK_SIZE"

// DefaultStackSize is the guest stack the builder links (see the
// package comment for why it is not Rust's 1 MiB).
const DefaultStackSize = 256 << 10

// RustcEnv names the environment variable that picks the rustc.
const RustcEnv = "ISOTOPE_RUSTC"

// Edition is the edition of a source without a Cargo.toml.
const Edition = "2021"

func init() {
	builder.RegisterBuiltin(Command, func(ctx context.Context, args, env []string, dir string, log io.Writer) error {
		return Run(ctx, args, env, log)
	})
}

// Options configure a build. Zero values take the defaults.
type Options struct {
	// Rustc is the rustc command (a path, or a name looked up on the
	// PATH of Env). Default: $ISOTOPE_RUSTC, else the best rustc on
	// PATH.
	Rustc string
	// StackSize is the guest's stack in bytes, a multiple of 16. Zero
	// takes $ISOTOPE_RUST_STACK_SIZE, else DefaultStackSize; negative
	// keeps rustc's default (1 MiB).
	StackSize int
	// Env is the environment of the toolchain; default os.Environ().
	Env []string
}

// maxStackSize bounds the stack a build may ask for: more than any
// function needs, well under the 4 GiB a module can address.
const maxStackSize = 64 << 20

// stackSize resolves opts.StackSize and $ISOTOPE_RUST_STACK_SIZE: the
// bytes to link, or 0 for rustc's default.
func stackSize(opts Options) (int, error) {
	n := opts.StackSize
	if n == 0 {
		v := wasmbuild.Getenv(opts.Env, StackSizeEnv)
		if v == "" {
			return DefaultStackSize, nil
		}
		var err error
		if n, err = parseStackSize("$"+StackSizeEnv, v); err != nil || n == 0 {
			return 0, err
		}
	}
	switch {
	case n < 0:
		return 0, nil
	case n < 16<<10 || n > maxStackSize || n%16 != 0:
		return 0, fmt.Errorf("stack size %d: want a multiple of 16 bytes from 16384 to %d", n, maxStackSize)
	}
	return n, nil
}

// parseStackSize reads a stack size as $ISOTOPE_RUST_STACK_SIZE and
// --stack-size spell it: bytes, 0 for rustc's default. from names where
// it came from, for the error.
func parseStackSize(from, v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want a number of bytes (0: rustc's default)", from, v)
	}
	return n, nil
}

// StackFlags are rustc's flags for a guest stack of n bytes (none for
// 0), as the builder passes them (bench/build's raw command too).
func StackFlags(n int) []string {
	if n == 0 {
		return nil
	}
	return []string{"-C", "link-arg=-zstack-size=" + strconv.Itoa(n)}
}

// Build compiles the source at src into deploy/main.wasm, writing
// progress and the toolchain's output to log. On failure deploy is
// removed again if Build created it.
func Build(ctx context.Context, src, deploy string, opts Options, log io.Writer) (err error) {
	start := time.Now()
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Rustc == "" {
		opts.Rustc = wasmbuild.Getenv(opts.Env, RustcEnv)
	}
	// The toolchain runs in the source's copy: an absolute DEPLOY_PKG.
	if deploy, err = filepath.Abs(deploy); err != nil {
		return err
	}
	stack, err := stackSize(opts)
	if err != nil {
		return err
	}
	tc, err := findRustc(ctx, opts.Rustc, opts.Env, log)
	if err != nil {
		return err
	}
	tc.stack = stack
	cargoNote := "no cargo next to it: crates without dependencies build with rustc alone"
	if tc.Cargo != "" {
		cargoNote = fmt.Sprintf("cargo %s (%s)", tc.CargoVersion, tc.Cargo)
	}
	fmt.Fprintf(log, "rust-wasm: %s; %s\n", tc, cargoNote)

	s, err := wasmbuild.Stage(src, "isotope-rust-wasm-", func(base string) string {
		if strings.HasSuffix(base, ".rs") {
			return base
		}
		return "main.rs" // Fission names a single file after the package
	})
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := os.Lstat(deploy); err == nil {
		return fmt.Errorf("$DEPLOY_PKG %s exists already", deploy)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(deploy)
		}
	}()
	scratch, err := s.Scratch("out")
	if err != nil {
		return err
	}
	// A CARGO_HOME of the build's own: the machine's ~/.cargo/config.toml
	// (a registry mirror, a default target) is not the function's.
	cargoHome, err := s.Scratch("cargo-home")
	if err != nil {
		return err
	}
	env := wasmbuild.Setenv(wasmbuild.Setenv(opts.Env, "CARGO_HOME", cargoHome), "CARGO_NET_OFFLINE", "true")

	sc, err := wasmbuild.FindScript(s, env, false)
	if err != nil {
		return err
	}
	switch {
	case sc != nil:
		vars := []string{"RUSTC=" + tc.Rustc, "CARGO_BUILD_TARGET=" + tc.Target, StackSizeEnv + "=" + strconv.Itoa(stack)}
		if tc.Cargo != "" {
			vars = append(vars, "CARGO="+tc.Cargo)
		}
		err = wasmbuild.RunScript(ctx, "rust-wasm", sc, s, deploy, env, vars, log)
	case s.Has("Cargo.toml") && tc.Cargo != "":
		err = tc.buildCargo(ctx, s, scratch, deploy, env, log)
	case s.Has("Cargo.toml"):
		err = tc.buildManifest(ctx, s, deploy, env, log)
	default:
		var file string
		if file, err = mainFile(s); err == nil {
			err = tc.buildFile(ctx, s, file, crateIdent(strings.TrimSuffix(filepath.Base(file), ".rs")), Edition, deploy, env, log)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "rust-wasm: built in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// mainFile is the crate root of a source without Cargo.toml: the single
// file, main.rs, lib.rs, or the only .rs file at the top.
func mainFile(s *wasmbuild.Source) (string, error) {
	if s.File != "" {
		return s.File, nil
	}
	for _, root := range []string{"main.rs", "lib.rs"} {
		if s.Has(root) {
			return root, nil
		}
	}
	files, err := s.TopFiles(".rs")
	if err != nil {
		return "", err
	}
	switch len(files) {
	case 0:
		return "", errors.New("no Rust source: give a .rs file, or a directory with Cargo.toml, main.rs, lib.rs or one .rs file at its top")
	case 1:
		return files[0], nil
	}
	return "", fmt.Errorf("%d .rs files at the top of the source (%s) and none is main.rs or lib.rs: name the crate root main.rs (a WAGI program) or lib.rs (a handler), or add a Cargo.toml", len(files), strings.Join(files, ", "))
}

// The two kinds of crate a function is (package comment).
const (
	kindProgram = "bin"    // a WAGI program: main serves one request
	kindHandler = "cdylib" // a handler library: the reactor ABI's exports
)

// cdylibAttr is the crate-level attribute that makes a single file a
// handler library.
var cdylibAttr = regexp.MustCompile(`(?m)^\s*#!\[\s*crate_type\s*=\s*"cdylib"\s*\]`)

// crateKind says what the crate root at path builds: a handler library
// when it is named lib.rs or says #![crate_type = "cdylib"], else a
// program.
func crateKind(path string) (string, error) {
	if filepath.Base(path) == "lib.rs" {
		return kindHandler, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if cdylibAttr.Match(b) {
		return kindHandler, nil
	}
	return kindProgram, nil
}

// handlerHint is added to a build whose module is not what its kind
// should give, or that rustc failed for want of a main.
const handlerHint = "a handler is a library crate: name its root lib.rs, start it with #![crate_type = \"cdylib\"], or set [lib] crate-type = [\"cdylib\"] in Cargo.toml, and export the handler with isotope::export_handler! (sdk/rust/isotope.rs)"

// explain adds handlerHint to a build error that comes from a handler
// built as a program (rustc's E0601, no main) or a library that exports
// no handler.
func explain(err error) error {
	var te *wasmbuild.ToolError
	if errors.As(err, &te) && te.Printed("E0601") || errors.Is(err, wasm.ErrNoEntry) {
		return fmt.Errorf("%w; %s", err, handlerHint)
	}
	return err
}

// buildFile compiles one crate root with rustc: a program or a handler
// library (crateKind).
func (tc *Toolchain) buildFile(ctx context.Context, s *wasmbuild.Source, file, crate, edition, deploy string, env []string, log io.Writer) error {
	kind, err := crateKind(filepath.Join(s.Dir, file))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		return err
	}
	built := filepath.Join(deploy, wasmbuild.Output)
	argv := []string{tc.Rustc, "--edition", edition, "--crate-type", kind, "--crate-name", crate,
		"--target", tc.Target, "-C", "opt-level=3", "-C", "strip=debuginfo"}
	argv = append(append(argv, StackFlags(tc.stack)...), "-o", built, file)
	fmt.Fprintf(log, "rust-wasm: %s\n", wasmbuild.CommandLine(s.Dir, append([]string{"rustc"}, argv[1:]...)))
	if err := wasmbuild.Run(ctx, "rustc", s.Dir, env, log, argv...); err != nil {
		return explain(err)
	}
	return explain(wasmbuild.Install(ctx, "rust-wasm", built, deploy, log))
}

// buildManifest builds a crate with rustc alone, when there is no cargo:
// possible for a crate without dependencies or build script.
func (tc *Toolchain) buildManifest(ctx context.Context, s *wasmbuild.Source, deploy string, env []string, log io.Writer) error {
	m, err := readManifest(filepath.Join(s.Dir, "Cargo.toml"))
	if err != nil {
		return err
	}
	if m.needsCargo == "" && s.HasDir("vendor") {
		m.needsCargo = "it has vendored dependencies (vendor/)"
	}
	if m.needsCargo != "" {
		return &wasmbuild.MissingError{What: "cargo", Detail: "the crate needs it: " + m.needsCargo + "; there is no cargo next to " + tc.Rustc,
			Packages: []string{"cargo"}}
	}
	root, err := manifestRoot(s, m)
	if err != nil {
		return err
	}
	edition := m.edition
	if edition == "" {
		edition = "2015" // cargo's default for a manifest without one
	}
	fmt.Fprintf(log, "rust-wasm: no cargo: building the crate's %s with rustc\n", filepath.ToSlash(root))
	return tc.buildFile(ctx, s, root, crateIdent(m.name), edition, deploy, env, log)
}

// manifestRoot is the crate root cargo would build a function's module
// from: the [lib] of a cdylib crate (a handler), else src/main.rs (a
// program), else src/lib.rs.
func manifestRoot(s *wasmbuild.Source, m manifest) (string, error) {
	main, lib := filepath.Join("src", "main.rs"), filepath.Join("src", "lib.rs")
	if m.libPath != "" {
		lib = filepath.FromSlash(m.libPath)
	}
	switch {
	case m.cdylib && s.Has(main):
		return "", errors.New("Cargo.toml: the crate has both a program (src/main.rs) and a cdylib library: a function's crate must build one module")
	case m.cdylib && s.Has(lib):
		if filepath.Base(lib) != "lib.rs" {
			// crateKind goes by the root's name or attribute.
			return "", fmt.Errorf("Cargo.toml: [lib] path %q: without cargo, the library's root must be named lib.rs", m.libPath)
		}
		return lib, nil
	case m.cdylib:
		return "", fmt.Errorf("Cargo.toml declares a cdylib library but %s is missing", filepath.ToSlash(lib))
	case s.Has(main):
		return main, nil
	case s.Has(lib):
		return "", errors.New("Cargo.toml: src/lib.rs is not a cdylib: add [lib] crate-type = [\"cdylib\"] to make it a handler (or add src/main.rs, a WAGI program)")
	}
	return "", errors.New("Cargo.toml without src/main.rs or src/lib.rs: the crate must be a program (a binary with main) or a handler (a cdylib library)")
}

// vendorConfig points cargo at vendor/ instead of crates.io, as
// `cargo vendor` tells its users to.
const vendorConfig = `[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "vendor"
`

// buildCargo runs cargo build --release --offline for the target.
func (tc *Toolchain) buildCargo(ctx context.Context, s *wasmbuild.Source, scratch, deploy string, env []string, log io.Writer) error {
	if s.HasDir("vendor") && !s.Has(filepath.Join(".cargo", "config.toml")) && !s.Has(filepath.Join(".cargo", "config")) {
		if err := os.MkdirAll(filepath.Join(s.Dir, ".cargo"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.Dir, ".cargo", "config.toml"), []byte(vendorConfig), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(log, "rust-wasm: vendor/ found: dependencies come from it (wrote .cargo/config.toml)")
	}
	targetDir := filepath.Join(scratch, "target")
	env = wasmbuild.Setenv(wasmbuild.Setenv(env, "RUSTC", tc.Rustc), "CARGO_TARGET_DIR", targetDir)
	if manifest, err := os.ReadFile(filepath.Join(s.Dir, "Cargo.toml")); err == nil && !stripSet.Match(manifest) {
		env = wasmbuild.Setenv(env, "CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
	}
	if tc.stack != 0 {
		if who := ownRustflags(s, env); who != "" {
			fmt.Fprintf(log, "rust-wasm: %s sets rustflags: the stack is what they say (the builder's %d bytes not added)\n", who, tc.stack)
		} else {
			env = wasmbuild.Setenv(env, TargetRustflagsVar(tc.Target), strings.Join(StackFlags(tc.stack), " "))
		}
	}
	argv := []string{tc.Cargo, "build", "--release", "--offline", "--target", tc.Target}
	fmt.Fprintf(log, "rust-wasm: %s\n", wasmbuild.CommandLine(s.Dir, append([]string{"cargo"}, argv[1:]...)))
	if err := wasmbuild.Run(ctx, "cargo", s.Dir, env, log, argv...); err != nil {
		err = explain(err)
		var te *wasmbuild.ToolError
		if errors.As(err, &te) && (te.Printed("offline") || te.Printed("no matching package named")) {
			return fmt.Errorf("%w; the builder reaches no crates registry: vendor the dependencies (cargo vendor) and put vendor/ in the source archive", err)
		}
		return err
	}
	out := filepath.Join(targetDir, tc.Target, "release")
	ents, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	var mods []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".wasm") {
			mods = append(mods, e.Name())
		}
	}
	switch len(mods) {
	case 0:
		return errors.New("cargo built no .wasm module: the crate must have a binary (src/main.rs or a [[bin]]: a WAGI program) or a cdylib library (a handler)")
	case 1:
		return explain(wasmbuild.Install(ctx, "rust-wasm", filepath.Join(out, mods[0]), deploy, log))
	}
	return fmt.Errorf("cargo built %d modules (%s): a function's crate must build one, a binary or a cdylib library", len(mods), strings.Join(mods, ", "))
}

// ownRustflags names where a cargo build already gets rustflags (the
// environment or the crate's .cargo/config), which the builder's would
// replace, or "".
func ownRustflags(s *wasmbuild.Source, env []string) string {
	for _, k := range []string{"RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS"} {
		if wasmbuild.Getenv(env, k) != "" {
			return "$" + k
		}
	}
	for _, f := range []string{".cargo/config.toml", ".cargo/config"} {
		if b, err := os.ReadFile(filepath.Join(s.Dir, f)); err == nil && rustflagsSet.Match(b) {
			return f
		}
	}
	return ""
}

var rustflagsSet = regexp.MustCompile(`(?m)^\s*rustflags\s*=`)

// TargetRustflagsVar is cargo's environment variable for the target's
// rustflags: CARGO_TARGET_WASM32_WASI_RUSTFLAGS.
func TargetRustflagsVar(target string) string {
	return "CARGO_TARGET_" + strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToUpper(target)) + "_RUSTFLAGS"
}

// stripSet finds a strip setting of the user's in Cargo.toml, which the
// builder's default must not override.
var stripSet = regexp.MustCompile(`(?m)^\s*strip\s*=`)

// crateIdent turns a file or package name into a crate name rustc
// accepts.
func crateIdent(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return "function_" + string(b)
	}
	return string(b)
}

// Run is `isotope build rust-wasm [--rustc RUSTC] [SRC [DEPLOY]]`: SRC
// and DEPLOY default to $SRC_PKG and $DEPLOY_PKG in env, as a Fission
// build script reads them.
func Run(ctx context.Context, args, env []string, log io.Writer) error {
	var opts Options
	var stack string
	src, deploy, err := wasmbuild.ParseArgs("rust-wasm", args, env, log, func(f *flag.FlagSet) {
		f.StringVar(&opts.Rustc, "rustc", "", "rustc command (default $"+RustcEnv+", else the rustc on PATH that has the WASI target, Debian's first)")
		f.StringVar(&stack, "stack-size", "", "the guest's stack in bytes, a multiple of 16 (default $"+StackSizeEnv+", else "+strconv.Itoa(DefaultStackSize)+"; 0: rustc's own 1 MiB)")
	})
	if err != nil {
		return err
	}
	if stack != "" {
		if opts.StackSize, err = parseStackSize("--stack-size", stack); err != nil {
			return fmt.Errorf("rust-wasm: %w", err)
		}
		if opts.StackSize == 0 {
			opts.StackSize = -1 // rustc's default, whatever the environment says
		}
	}
	opts.Env = env
	if err := Build(ctx, src, deploy, opts, log); err != nil {
		return fmt.Errorf("rust-wasm: %w", err)
	}
	return nil
}
