package wasmbuild

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Script is a user's own build in the source: build.sh (run with sh, as
// Fission's builders run build scripts) or a Makefile (run with make).
type Script struct {
	// Name is the file: "build.sh", "Makefile".
	Name string
	argv []string
	make bool
}

// FindScript returns the source's build script, nil when it has none:
// build.sh, else, when makefiles is set, GNUmakefile, makefile or
// Makefile (make's own order). A script whose interpreter is not
// installed is a *MissingError.
func FindScript(s *Source, env []string, makefiles bool) (*Script, error) {
	if s.Has("build.sh") {
		sh, err := LookPath("sh", env)
		if err != nil {
			return nil, &MissingError{What: "sh, which runs build.sh,", Detail: err.Error(), Packages: []string{"dash"}}
		}
		return &Script{Name: "build.sh", argv: []string{sh, "build.sh"}}, nil
	}
	if !makefiles {
		return nil, nil
	}
	for _, name := range []string{"GNUmakefile", "makefile", "Makefile"} {
		if !s.Has(name) {
			continue
		}
		mk, err := LookPath("make", env)
		if err != nil {
			return nil, &MissingError{What: "make, which runs the " + name + ",", Detail: err.Error(), Packages: []string{"make"}}
		}
		return &Script{Name: name, argv: []string{mk}, make: true}, nil
	}
	return nil, nil
}

// RunScript runs sc in the source directory with env plus vars (the
// toolchain: CC=..., RUSTC=...; make also gets them as command-line
// variables, which win over the Makefile's own assignments),
// SRC_PKG set to the source directory and DEPLOY_PKG to deploy.
//
// A script may write DEPLOY_PKG itself (a .wasm file, or a directory
// holding one and the files the function reads); it is checked. If it
// did not, the one .wasm file it created or changed anywhere in the
// source directory becomes DEPLOY_PKG/main.wasm.
func RunScript(ctx context.Context, tool string, sc *Script, s *Source, deploy string, env, vars []string, log io.Writer) error {
	before, err := wasmFiles(s.Dir)
	if err != nil {
		return err
	}
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		env = Setenv(env, k, val)
	}
	env = Setenv(Setenv(env, "SRC_PKG", s.Dir), "DEPLOY_PKG", deploy)
	argv := sc.argv
	if sc.make {
		argv = append(append([]string{}, argv...), vars...)
	}
	fmt.Fprintf(log, "%s: running %s: %s\n", tool, sc.Name, CommandLine(s.Dir, append([]string{filepath.Base(argv[0])}, argv[1:]...)))
	if err := Run(ctx, sc.Name, s.Dir, env, log, argv...); err != nil {
		return err
	}
	if _, err := os.Lstat(deploy); err == nil {
		if err := CheckDeploy(ctx, deploy); err != nil {
			return fmt.Errorf("%s wrote $DEPLOY_PKG, but %w", sc.Name, err)
		}
		fmt.Fprintf(log, "%s: %s wrote $DEPLOY_PKG\n", tool, sc.Name)
		return nil
	}
	after, err := wasmFiles(s.Dir)
	if err != nil {
		return err
	}
	var made []string
	for p, mt := range after {
		if old, ok := before[p]; !ok || !old.Equal(mt) {
			made = append(made, p)
		}
	}
	sort.Strings(made)
	switch len(made) {
	case 0:
		return fmt.Errorf("%s finished without writing $DEPLOY_PKG or any .wasm file", sc.Name)
	case 1:
		fmt.Fprintf(log, "%s: %s built %s\n", tool, sc.Name, made[0])
		return Install(ctx, tool, filepath.Join(s.Dir, made[0]), deploy, log)
	}
	return fmt.Errorf("%s built %d .wasm files (%s) and did not say which to serve: copy that one to $DEPLOY_PKG", sc.Name, len(made), strings.Join(made, ", "))
}

// wasmFiles maps the .wasm files under dir (relative paths) to their
// modification times.
func wasmFiles(dir string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked: a script's temp file
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".wasm") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = info.ModTime()
		return nil
	})
	return out, err
}
