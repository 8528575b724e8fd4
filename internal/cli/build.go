package cli

import (
	"context"
	"io"
	"os"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/cwasm"
	"isotope.dev/isotope/internal/gowasm"
	"isotope.dev/isotope/internal/rustwasm"
)

func init() { register(newBuildCommand) }

// newBuildCommand groups the built-in build commands that builder
// environments run: `isotope build go-wasm`, `c-wasm` and `rust-wasm`.
func newBuildCommand(g *Globals) *cobra.Command {
	return group("build", nil, "Built-in build commands for builder environments",
		buildCommand("go-wasm [--cache-dir DIR] [--go GO] [SRC_PKG [DEPLOY_PKG]]",
			"Build a Fission-style Go function into a WebAssembly reactor module",
			`Build a Go function into $DEPLOY_PKG/main.wasm, a WebAssembly reactor
for Isotope's runtime, the way a Fission build script runs: SRC_PKG and
DEPLOY_PKG come from the environment (or the arguments). SRC_PKG is a
single .go file, a directory of package main files, or a module (go.mod;
dependencies through GOPROXY or vendor/). Every top-level
func(http.ResponseWriter, *http.Request) is registered under its name; the
Function's entrypoint picks one at run time. Needs Go 1.24+ on PATH (or
--go / ISOTOPE_GO). GOCACHE and GOMODCACHE live under --cache-dir
(default $ISOTOPE_GO_CACHE, else the user cache dir) unless set in the
environment. This is the default build command of the go-wasm builder
environment (isotope/go-wasm-builder).`, gowasm.Run),
		buildCommand("c-wasm [--clang CLANG] [SRC_PKG [DEPLOY_PKG]]",
			"Build C or C++ into a WebAssembly WAGI module",
			`Build a C (or C++) program into $DEPLOY_PKG/main.wasm, a WASI command
served as WAGI (CGI over WASI: the request in environment variables and
on stdin, the response on stdout), the way a Fission build script runs:
SRC_PKG and DEPLOY_PKG come from the environment (or the arguments).
SRC_PKG is a single .c file (.cc, .cpp, .cxx: C++), or a directory: with
build.sh it runs with CC, CXX and AR set for wasm32-wasi; else with a
Makefile make runs with them; else its top-level C and C++ files are
compiled together. Needs clang, lld, wasi-libc and the wasm32 compiler
runtime (Debian: apt-get install clang lld wasi-libc
libclang-rt-14-dev-wasm32; C++ also libc++-14-dev-wasm32
libc++abi-14-dev-wasm32); --clang or ISOTOPE_CLANG picks the clang. This
is the default build command of the c-wasm builder environment
(isotope/c-wasm-builder).`, cwasm.Run),
		buildCommand("rust-wasm [--rustc RUSTC] [SRC_PKG [DEPLOY_PKG]]",
			"Build Rust into a WebAssembly handler or WAGI module",
			`Build Rust into $DEPLOY_PKG/main.wasm, the way a Fission build script runs:
SRC_PKG and DEPLOY_PKG come from the environment (or the arguments). A
library crate (cdylib: a root named lib.rs, #![crate_type = "cdylib"], or
[lib] crate-type = ["cdylib"]) that exports a handler with
sdk/rust/isotope.rs becomes a reactor, served by warm instances; a
program with main becomes a WASI command served as WAGI (CGI over WASI),
a fresh instance per request. SRC_PKG is a single .rs file, or a
directory: with build.sh it runs with RUSTC, CARGO and CARGO_BUILD_TARGET
set; else a crate (Cargo.toml) is built with cargo --offline, its
dependencies vendored in vendor/ (no crates registry is reached), or with
rustc alone when there is no cargo and it has no dependencies; else
main.rs, lib.rs (or the only .rs file) is compiled with rustc.
The rustc is the first on PATH with the standard library for
wasm32-wasip1 or wasm32-wasi, Debian's first (apt-get install rustc
libstd-rust-dev-wasm32 lld, and cargo for crates); --rustc or
ISOTOPE_RUSTC picks one. This is the default build command of the
rust-wasm builder environment (isotope/rust-wasm-builder).`, rustwasm.Run),
	)
}

// buildCommand is one built-in build command: its flags are its own
// (DisableFlagParsing), parsed by run with the process environment.
func buildCommand(use, short, long string, run func(ctx context.Context, args, env []string, log io.Writer) error) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		Long:               long,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "-h" || a == "--help" {
					return cmd.Help()
				}
			}
			return run(cmd.Context(), args, os.Environ(), cmd.OutOrStdout())
		},
	}
}
