package rustwasm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"isotope.dev/isotope/internal/wasmbuild"
)

// Targets are the WASI preview 1 target triples, newest name first:
// Rust 1.78 added wasm32-wasip1 and 1.84 removed wasm32-wasi, which
// Debian 12's Rust 1.63 has.
var Targets = []string{"wasm32-wasip1", "wasm32-wasi"}

// packages are the Debian packages of Rust for WebAssembly: the
// compiler, its standard library for wasm32 (wasm32-wasi and
// wasm32-unknown-unknown), and lld, which Debian's rust-lld links to.
var packages = []string{"rustc", "libstd-rust-dev-wasm32", "lld"}

// Toolchain is a rustc with a WASI standard library.
type Toolchain struct {
	Rustc   string // path
	Version string // "1.63.0"
	sysroot string
	Target  string // one of Targets
	debian  bool   // Debian's rustc (sysroot /usr)
	// Cargo is the cargo next to rustc, "" if there is none.
	Cargo, CargoVersion string
	stack               int // the build's guest stack in bytes; 0: rustc's default
}

// Find returns the toolchain Build would use with env (the rustc named
// by name, else as Build looks for it), for tools that compare with a
// build (bench/build). Why other rustc were passed over goes to log.
func Find(ctx context.Context, name string, env []string, log io.Writer) (*Toolchain, error) {
	if name == "" {
		name = wasmbuild.Getenv(env, RustcEnv)
	}
	return findRustc(ctx, name, env, log)
}

func (tc *Toolchain) String() string {
	s := fmt.Sprintf("rustc %s (%s", tc.Version, tc.Rustc)
	if tc.debian {
		s += ", Debian's"
	}
	return s + "), target " + tc.Target
}

// findRustc picks the rustc to build with. name (a path or a command)
// is the only candidate when given; otherwise every rustc on env's PATH
// is asked for its sysroot, and the first with a WASI standard library
// wins, Debian's before others (a rustup rustc usually has none: adding
// a target downloads it). Candidates passed over are logged with the
// reason.
func findRustc(ctx context.Context, name string, env []string, log io.Writer) (*Toolchain, error) {
	var cands []string
	if name != "" {
		p, err := wasmbuild.LookPath(name, env)
		if err != nil {
			return nil, &wasmbuild.MissingError{What: "rustc", Detail: err.Error(), Packages: packages}
		}
		cands = []string{p}
	} else {
		cands = wasmbuild.LookPathAll("rustc", env)
	}
	if len(cands) == 0 {
		return nil, &wasmbuild.MissingError{
			What:     "rustc",
			Detail:   fmt.Sprintf("no rustc on PATH %q", wasmbuild.Getenv(env, "PATH")),
			Packages: packages,
			Hint:     "cargo too, to build crates (Cargo.toml); or set " + RustcEnv + " to a rustc with the wasm32-wasip1 target",
		}
	}
	var found []*Toolchain
	var passed []string
	for _, c := range cands {
		tc, err := inspect(ctx, c, env)
		if err != nil {
			passed = append(passed, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		found = append(found, tc)
	}
	var pick *Toolchain
	for _, tc := range found {
		if pick == nil || tc.debian && !pick.debian {
			pick = tc
		}
	}
	for _, tc := range found {
		if tc != pick {
			fmt.Fprintf(log, "rust-wasm: passing over %s (rustc %s, target %s): Debian's rustc comes first\n", tc.Rustc, tc.Version, tc.Target)
		}
	}
	for _, p := range passed {
		fmt.Fprintf(log, "rust-wasm: passing over %s\n", p)
	}
	if pick == nil {
		return nil, &wasmbuild.MissingError{
			What:     "a Rust compiler with the WASI standard library (target " + strings.Join(Targets, " or ") + ")",
			Detail:   strings.Join(passed, "; "),
			Packages: packages,
			Hint:     "`rustup target add wasm32-wasip1` also works where rustup can reach the network",
		}
	}
	if err := pick.checkLinker(env); err != nil {
		return nil, err
	}
	cargo := filepath.Join(filepath.Dir(pick.Rustc), "cargo")
	if st, err := os.Stat(cargo); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		out, err := wasmbuild.Probe(ctx, env, "", cargo, "--version")
		if err == nil {
			pick.Cargo, pick.CargoVersion = cargo, strings.TrimPrefix(firstLine(out), "cargo ")
		} else {
			fmt.Fprintf(log, "rust-wasm: passing over %s: %v\n", cargo, err)
		}
	}
	return pick, nil
}

// inspect asks rustc for its version and sysroot and finds a WASI
// standard library in the sysroot.
func inspect(ctx context.Context, rustc string, env []string) (*Toolchain, error) {
	out, err := wasmbuild.Probe(ctx, env, "", rustc, "--version")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(out))
	}
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != "rustc" {
		return nil, fmt.Errorf("does not say it is rustc: %q", firstLine(out))
	}
	tc := &Toolchain{Rustc: rustc, Version: f[1]}
	out, err = wasmbuild.Probe(ctx, env, "", rustc, "--print", "sysroot")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, firstLine(out))
	}
	tc.sysroot = strings.TrimSpace(out)
	tc.debian = tc.sysroot == "/usr"
	for _, t := range Targets {
		if st, err := os.Stat(filepath.Join(tc.sysroot, "lib", "rustlib", t, "lib")); err == nil && st.IsDir() {
			tc.Target = t
			return tc, nil
		}
	}
	return nil, fmt.Errorf("rustc %s has no standard library for %s in its sysroot %s", tc.Version, strings.Join(Targets, " or "), tc.sysroot)
}

// checkLinker makes sure rust-lld, which rustc links wasm32 with, is
// there: rustup ships it in the sysroot; Debian's rustc has a link
// /usr/bin/rust-lld to lld-NN, a program of the package lld-NN, which
// rustc does not depend on.
func (tc *Toolchain) checkLinker(env []string) error {
	matches, _ := filepath.Glob(filepath.Join(tc.sysroot, "lib", "rustlib", "*", "bin", "rust-lld"))
	for _, m := range matches {
		if _, err := os.Stat(m); err == nil {
			return nil
		}
	}
	if _, err := wasmbuild.LookPath("rust-lld", env); err == nil {
		return nil
	}
	pkg := "lld"
	for _, d := range filepath.SplitList(wasmbuild.Getenv(env, "PATH")) {
		if target, err := os.Readlink(filepath.Join(d, "rust-lld")); err == nil {
			// A dangling link: its target names the package.
			pkg = filepath.Base(target)
			break
		}
	}
	return &wasmbuild.MissingError{What: "the linker rust-lld", Detail: "rustc links wasm32 modules with it; it is not on PATH or in " + tc.sysroot, Packages: []string{pkg}}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
