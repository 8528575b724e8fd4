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

	"github.com/tetratelabs/wazero"

	"isotope.dev/isotope/internal/wasm"
)

// wasiModule is the only import module Isotope's runtime provides.
const wasiModule = "wasi_snapshot_preview1"

// Check reads the module at path and returns an error that says what is
// wrong when Isotope's runtime could not serve it: not WebAssembly, an
// import other than WASI preview 1 (an undefined symbol the linker let
// through), or neither a WAGI command (_start) nor a reactor of
// Isotope's ABI (isotope_handle, isotope_alloc and memory). It decodes and
// validates the module with wazero's interpreter, which compiles in
// milliseconds.
func Check(ctx context.Context, path string) error {
	name := filepath.Base(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return fmt.Errorf("%s is not a WebAssembly module (it does not start with \\0asm)", name)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, b)
	if err != nil {
		return fmt.Errorf("%s is not a valid WebAssembly module: %w", name, err)
	}
	defer cm.Close(ctx)
	var foreign []string
	for _, f := range cm.ImportedFunctions() {
		mod, fn, _ := f.Import()
		if mod != wasiModule {
			foreign = append(foreign, mod+"."+fn)
		}
	}
	for _, m := range cm.ImportedMemories() {
		mod, n, _ := m.Import()
		foreign = append(foreign, mod+"."+n+" (a memory)")
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		return fmt.Errorf("%s imports %s, which Isotope's runtime does not provide (it provides %s only): "+
			"an undefined function or a library missing from the link", name, strings.Join(foreign, ", "), wasiModule)
	}
	fns := cm.ExportedFunctions()
	_, start := fns["_start"]
	_, init := fns["_initialize"]
	_, handle := fns["isotope_handle"]
	if init && !start && !handle {
		return fmt.Errorf("%s is a WASI reactor (it exports _initialize, not _start): build a command (a program with main) to serve it as WAGI, or implement Isotope's reactor ABI (isotope_handle)", name)
	}
	// The runtime's own rule: a WAGI command, or a reactor of Isotope's
	// ABI (docs/reactor-abi.md) with every export it needs.
	if _, err := wasm.DetectABI(cm); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Install checks the module built at built and makes it deploy's
// main.wasm (deploy is created as a directory; built may already be that
// file). It logs the module's size.
func Install(ctx context.Context, tool, built, deploy string, log io.Writer) error {
	if err := Check(ctx, built); err != nil {
		return err
	}
	out := filepath.Join(deploy, Output)
	if built != out {
		if err := os.MkdirAll(deploy, 0o755); err != nil {
			return err
		}
		if err := os.Rename(built, out); err != nil {
			// Across file systems: copy.
			if err := copyFile(built, out, 0o644); err != nil {
				return err
			}
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "%s: %s is %s\n", tool, Output, Size(st.Size()))
	return nil
}

// CheckDeploy checks what a user's build script wrote to deploy: a
// module, or a directory holding exactly one (at any depth, as the
// runtime looks for it) next to whatever files the function reads.
func CheckDeploy(ctx context.Context, deploy string) error {
	st, err := os.Stat(deploy)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return Check(ctx, deploy)
	}
	var found []string
	err = filepath.WalkDir(deploy, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".wasm") {
			found = append(found, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch len(found) {
	case 0:
		return errors.New("$DEPLOY_PKG holds no .wasm file")
	case 1:
		return Check(ctx, found[0])
	}
	for i, f := range found {
		found[i], _ = filepath.Rel(deploy, f)
	}
	return fmt.Errorf("$DEPLOY_PKG holds %d .wasm files (%s); the runtime serves the only one, so leave exactly one", len(found), strings.Join(found, ", "))
}

// Size renders a byte count for the build log.
func Size(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f KB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}
