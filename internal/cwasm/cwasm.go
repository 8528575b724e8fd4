// Package cwasm is the c-wasm builder: it compiles C (and C++) into a
// WAGI module, a WASI preview 1 command whose main serves one request
// (docs/functions-wagi.md), with clang, wasm-ld and wasi-libc.
//
// Source (SRC_PKG) is either a single file (.c; .cc, .cpp, .cxx for C++;
// any other name is taken as C), or a directory:
//
//   - with build.sh: it runs (sh build.sh) in the source directory with
//     CC, CXX and AR set to the WebAssembly toolchain;
//   - else with a Makefile (GNUmakefile, makefile, Makefile): make runs
//     with CC, CXX and AR given on its command line;
//   - else its top-level .c files (and C++ files) are compiled and
//     linked together, with the directory on the include path.
//
// A script either writes DEPLOY_PKG itself or leaves exactly one new
// .wasm file in the source directory, which becomes the module.
//
// The compile is
//
//	clang --target=wasm32-wasi -O2 -I. -o $DEPLOY_PKG/main.wasm *.c
//
// (clang++ with -fno-exceptions for C++), run in a copy of the source so
// paths in messages (hello.c:3:5) are the user's and the module's bytes
// do not depend on where the build ran. Debian's wasi-libc is a 2022
// snapshot, so the target is wasm32-wasi (wasm32-wasip1 in newer
// toolchains).
//
// The toolchain is clang on the build's PATH (else the newest clang-NN,
// or ISOTOPE_CLANG / --clang). Before the first build with a clang the
// builder compiles a small program with it; a missing piece (wasm-ld,
// wasi-libc, the wasm32 compiler runtime, libc++) fails the build with
// the Debian package to install.
package cwasm

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/wasmbuild"
)

// Command is the build command of the c-wasm builder environment.
const Command = "isotope build c-wasm"

// Target is the target triple of the modules.
const Target = "wasm32-wasi"

// ClangEnv names the environment variable that picks the clang.
const ClangEnv = "ISOTOPE_CLANG"

func init() {
	builder.RegisterBuiltin(Command, func(ctx context.Context, args, env []string, dir string, log io.Writer) error {
		return Run(ctx, args, env, log)
	})
}

// Extensions of C and C++ sources.
var (
	cExts   = []string{".c"}
	cxxExts = []string{".cc", ".cpp", ".cxx", ".c++", ".C"}
)

// Options configure a build. Zero values take the defaults.
type Options struct {
	// Clang is the clang command (a path, or a name looked up on the
	// PATH of Env). Default: $ISOTOPE_CLANG, else clang, else the newest
	// clang-NN.
	Clang string
	// Env is the environment of the toolchain; default os.Environ().
	Env []string
}

// Build compiles the source at src into deploy/main.wasm, writing
// progress and the toolchain's output to log. On failure deploy is
// removed again if Build created it.
func Build(ctx context.Context, src, deploy string, opts Options, log io.Writer) (err error) {
	start := time.Now()
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	if opts.Clang == "" {
		opts.Clang = wasmbuild.Getenv(opts.Env, ClangEnv)
	}
	// The toolchain runs in the source's copy: an absolute DEPLOY_PKG.
	if deploy, err = filepath.Abs(deploy); err != nil {
		return err
	}
	tc, err := findClang(ctx, opts.Clang, opts.Env)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "c-wasm: clang %s (%s), target %s\n", tc.Version, tc.Clang, Target)

	s, err := wasmbuild.Stage(src, "isotope-c-wasm-", func(base string) string {
		if isC(base) || isCXX(base) {
			return base
		}
		return "function.c" // Fission names a single file after the package
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
	scratch, err := s.Scratch("probe")
	if err != nil {
		return err
	}

	cs, err := s.TopFiles(cExts...)
	if err != nil {
		return err
	}
	cxx, err := s.TopFiles(cxxExts...)
	if err != nil {
		return err
	}
	// C++ is checked only when the source has C++ files at its top, so
	// a machine without libc++ builds C.
	if err := tc.probe(ctx, false, scratch, opts.Env); err != nil {
		return err
	}
	if len(cxx) > 0 {
		if err := tc.probe(ctx, true, scratch, opts.Env); err != nil {
			return err
		}
	}

	sc, err := wasmbuild.FindScript(s, opts.Env, true)
	if err != nil {
		return err
	}
	if sc != nil {
		if err := wasmbuild.RunScript(ctx, "c-wasm", sc, s, deploy, opts.Env, tc.vars(), log); err != nil {
			return err
		}
		fmt.Fprintf(log, "c-wasm: built in %v\n", time.Since(start).Round(time.Millisecond))
		return nil
	}
	if len(cs)+len(cxx) == 0 {
		return fmt.Errorf("no C or C++ source at the top of the source directory (.c, %s); put the sources there, or add a build.sh or Makefile", strings.Join(cxxExts, ", "))
	}
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		return err
	}
	built := filepath.Join(deploy, wasmbuild.Output)
	argv := tc.CompileArgs(built, cs, cxx)
	fmt.Fprintf(log, "c-wasm: %s\n", wasmbuild.CommandLine(s.Dir, append([]string{filepath.Base(argv[0])}, argv[1:]...)))
	if err := wasmbuild.Run(ctx, filepath.Base(argv[0]), s.Dir, opts.Env, log, argv...); err != nil {
		return err
	}
	if err := wasmbuild.Install(ctx, "c-wasm", built, deploy, log); err != nil {
		return err
	}
	fmt.Fprintf(log, "c-wasm: built in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// CompileArgs is the one command that compiles and links the sources
// into out: clang for C, clang++ when there is C++ (each file marked
// with its language, since clang++ would read .c files as C++).
func (tc *Toolchain) CompileArgs(out string, cs, cxx []string) []string {
	if len(cxx) == 0 {
		argv := append([]string{tc.Clang}, targetFlags(false)...)
		argv = append(argv, "-I.", "-o", out)
		return append(argv, cs...)
	}
	argv := append([]string{tc.CXX}, targetFlags(true)...)
	argv = append(argv, "-I.", "-o", out)
	if len(cs) > 0 {
		argv = append(append(argv, "-x", "c"), cs...)
	}
	argv = append(append(argv, "-x", "c++"), cxx...)
	return argv
}

// vars are the variables a build script or Makefile gets.
func (tc *Toolchain) vars() []string {
	vars := []string{"CC=" + tc.Clang + " --target=" + Target}
	if tc.CXX != "" {
		vars = append(vars, "CXX="+tc.CXX+" --target="+Target+" -fno-exceptions")
	}
	if tc.ar != "" {
		vars = append(vars, "AR="+tc.ar)
	}
	return vars
}

func isC(name string) bool { return filepath.Ext(name) == ".c" }

func isCXX(name string) bool {
	for _, e := range cxxExts {
		if filepath.Ext(name) == e {
			return true
		}
	}
	return false
}

// Run is `isotope build c-wasm [--clang CLANG] [SRC [DEPLOY]]`: SRC and
// DEPLOY default to $SRC_PKG and $DEPLOY_PKG in env, as a Fission build
// script reads them.
func Run(ctx context.Context, args, env []string, log io.Writer) error {
	var opts Options
	src, deploy, err := wasmbuild.ParseArgs("c-wasm", args, env, log, func(f *flag.FlagSet) {
		f.StringVar(&opts.Clang, "clang", "", "clang command (default $"+ClangEnv+", else clang or the newest clang-NN on PATH)")
	})
	if err != nil {
		return err
	}
	opts.Env = env
	if err := Build(ctx, src, deploy, opts, log); err != nil {
		return fmt.Errorf("c-wasm: %w", err)
	}
	return nil
}
