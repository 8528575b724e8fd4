package cwasm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"isotope.dev/isotope/internal/wasmbuild"
)

// defaultMajor is the clang of Debian 12 (bookworm), whose package
// names the errors use when no clang was found to ask.
const defaultMajor = 14

// packagesFor are the Debian packages of a C toolchain for WebAssembly
// with clang major version major: the compiler, the linker (wasm-ld),
// the WASI C library and the compiler's runtime for wasm32.
func packagesFor(major int) []string {
	if major == defaultMajor {
		return []string{"clang", "lld", "wasi-libc", fmt.Sprintf("libclang-rt-%d-dev-wasm32", major)}
	}
	return []string{fmt.Sprintf("clang-%d", major), fmt.Sprintf("lld-%d", major), "wasi-libc", fmt.Sprintf("libclang-rt-%d-dev-wasm32", major)}
}

// cxxPackagesFor are the packages C++ needs on top: libc++ and libc++abi
// for wasm32.
func cxxPackagesFor(major int) []string {
	return []string{fmt.Sprintf("libc++-%d-dev-wasm32", major), fmt.Sprintf("libc++abi-%d-dev-wasm32", major)}
}

// Toolchain is a clang that was found and asked for its version.
type Toolchain struct {
	Clang   string // path
	Version string // "14.0.6"
	major   int
	// CXX is clang++ next to clang ("" if there is none).
	CXX string
	// ar is llvm-ar of the same version, for Makefiles that make
	// static libraries ("" if there is none).
	ar string
}

// Find returns the toolchain Build would use with env (clang named by
// name, else as Build looks for it), checked as Build checks it: C, and
// C++ when cxx is set. For tools that compare with a build (bench/build).
func Find(ctx context.Context, name string, env []string, cxx bool) (*Toolchain, error) {
	if name == "" {
		name = wasmbuild.Getenv(env, ClangEnv)
	}
	tc, err := findClang(ctx, name, env)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp("", "isotope-c-wasm-probe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if err := tc.probe(ctx, false, scratch, env); err != nil {
		return nil, err
	}
	if cxx {
		if err := tc.probe(ctx, true, scratch, env); err != nil {
			return nil, err
		}
	}
	return tc, nil
}

var versionRE = regexp.MustCompile(`clang version (\d+)\.(\d+)\.(\d+)`)

// findClang locates clang: name (a path or a command on PATH) if given,
// else clang, else the newest clang-NN on env's PATH.
func findClang(ctx context.Context, name string, env []string) (*Toolchain, error) {
	var path string
	if name != "" {
		p, err := wasmbuild.LookPath(name, env)
		if err != nil {
			return nil, &wasmbuild.MissingError{What: "clang", Detail: err.Error(), Packages: packagesFor(defaultMajor)}
		}
		path = p
	} else {
		path = lookClang(env)
		if path == "" {
			return nil, &wasmbuild.MissingError{
				What:     "clang",
				Detail:   fmt.Sprintf("neither clang nor clang-NN is on PATH %q", wasmbuild.Getenv(env, "PATH")),
				Packages: packagesFor(defaultMajor),
				Hint:     "the 14 is clang's major version (Debian 12's default); or set ISOTOPE_CLANG to a clang that targets wasm32-wasi",
			}
		}
	}
	out, err := wasmbuild.Probe(ctx, env, "", path, "--version")
	if err != nil {
		return nil, fmt.Errorf("%s --version: %v: %s", path, err, strings.TrimSpace(out))
	}
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("%s does not say it is clang: %q", path, firstLine(out))
	}
	tc := &Toolchain{Clang: path, Version: m[1] + "." + m[2] + "." + m[3]}
	tc.major, _ = strconv.Atoi(m[1])
	dir, base := filepath.Dir(path), filepath.Base(path)
	if rest, ok := strings.CutPrefix(base, "clang"); ok {
		if p := filepath.Join(dir, "clang++"+rest); isFile(p) {
			tc.CXX = p
		}
		if p, err := wasmbuild.LookPath("llvm-ar"+rest, env); err == nil {
			tc.ar = p
		} else if p, err := wasmbuild.LookPath(fmt.Sprintf("llvm-ar-%d", tc.major), env); err == nil {
			tc.ar = p
		}
	}
	return tc, nil
}

// lookClang finds clang on PATH, else the clang-NN with the highest NN.
func lookClang(env []string) string {
	if p, err := wasmbuild.LookPath("clang", env); err == nil {
		return p
	}
	for v := 30; v >= 11; v-- {
		if p, err := wasmbuild.LookPath(fmt.Sprintf("clang-%d", v), env); err == nil {
			return p
		}
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// Programs the probes build: each uses the part of the toolchain a
// function needs (headers, libc, the compiler's runtime, the linker).
const (
	probeC   = "#include <stdio.h>\n#include <stdlib.h>\nint main(void) { double d = atof(\"1.5\"); printf(\"%g\\n\", d * 2); return 0; }\n"
	probeCXX = "#include <string>\n#include <vector>\nint main() { std::vector<std::string> v{\"a\"}; return (int)v.size() - 1; }\n"
)

// probe builds a small program for wasm32-wasi with the toolchain, once
// per binary (wasmbuild.Probe remembers success), and turns a failure
// into a *wasmbuild.MissingError naming the package that lacks.
func (tc *Toolchain) probe(ctx context.Context, cxx bool, scratch string, env []string) error {
	compiler, file, src := tc.Clang, "probe.c", probeC
	if cxx {
		if tc.CXX == "" {
			return &wasmbuild.MissingError{What: "clang++", Detail: "no clang++ next to " + tc.Clang,
				Packages: append([]string{fmt.Sprintf("clang-%d", tc.major)}, cxxPackagesFor(tc.major)...)}
		}
		compiler, file, src = tc.CXX, "probe.cc", probeCXX
	}
	if err := os.WriteFile(filepath.Join(scratch, file), []byte(src), 0o644); err != nil {
		return err
	}
	argv := append([]string{compiler}, targetFlags(cxx)...)
	argv = append(argv, "-o", "probe.wasm", file)
	out, err := wasmbuild.Probe(ctx, env, scratch, argv...)
	if err == nil {
		return nil
	}
	return tc.diagnose(cxx, out, err)
}

// diagnose maps what clang printed when the probe failed to the missing
// Debian package.
func (tc *Toolchain) diagnose(cxx bool, out string, err error) error {
	detail := firstLine(strings.TrimSpace(out))
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "error") {
			detail = strings.TrimSpace(l)
			break
		}
	}
	switch {
	case strings.Contains(out, "libclang_rt.builtins-wasm32"):
		return &wasmbuild.MissingError{What: "clang's runtime library for wasm32", Detail: detail, Packages: []string{fmt.Sprintf("libclang-rt-%d-dev-wasm32", tc.major)}}
	case cxx && (strings.Contains(out, "'string' file not found") || strings.Contains(out, "'vector' file not found") || strings.Contains(out, "-lc++")):
		return &wasmbuild.MissingError{What: "the C++ library for wasm32 (libc++)", Detail: detail, Packages: cxxPackagesFor(tc.major)}
	case strings.Contains(out, "stdio.h' file not found") || strings.Contains(out, "stdlib.h' file not found") ||
		strings.Contains(out, "crt1") || strings.Contains(out, "-lc") && strings.Contains(out, "unable to find library"):
		return &wasmbuild.MissingError{What: "the WASI C library (wasi-libc)", Detail: detail, Packages: []string{"wasi-libc"}}
	case strings.Contains(out, `"wasm-ld"`) || strings.Contains(out, "wasm-ld: not found") || strings.Contains(out, "unable to execute command"):
		// clang runs wasm-ld to link; lld-NN installs it.
		return &wasmbuild.MissingError{What: "the WebAssembly linker wasm-ld", Detail: detail, Packages: []string{fmt.Sprintf("lld-%d", tc.major)}}
	case strings.Contains(out, "unknown target") || strings.Contains(out, "No available targets"):
		return &wasmbuild.MissingError{What: "a clang with the WebAssembly target", Detail: detail, Packages: packagesFor(tc.major)}
	}
	pkgs := packagesFor(tc.major)
	if cxx {
		pkgs = append(pkgs, cxxPackagesFor(tc.major)...)
	}
	return &wasmbuild.MissingError{
		What:     "a working C toolchain for wasm32-wasi",
		Detail:   fmt.Sprintf("%s could not build a test program: %v: %s", tc.Clang, err, detail),
		Packages: pkgs,
	}
}

// targetFlags are the flags every compile and link gets.
func targetFlags(cxx bool) []string {
	// A call of an undeclared function is an error, as in clang 16 and
	// later: in clang 14 it is a warning, and the build then fails at
	// the link, with no line to point at.
	flags := []string{"--target=" + Target, "-O2", "-Werror=implicit-function-declaration"}
	if cxx {
		// wasm32-wasi has no exception handling in clang 14-19.
		flags = append(flags, "-fno-exceptions")
	}
	return flags
}
