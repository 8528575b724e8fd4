// Package gowasm is the go-wasm builder: it turns a Fission-style Go
// function into a WebAssembly reactor module for Isotope's runtime.
//
// Source (SRC_PKG) is either a single .go file, or a directory:
//
//   - without go.mod: its top-level .go files are package main and may
//     import the standard library only;
//   - with go.mod: a module whose root package is main; dependencies come
//     through the Go module proxy (GOPROXY) or from vendor/.
//
// Every top-level func with the signature
// func(w http.ResponseWriter, r *http.Request) is found with go/parser
// and registered under its name with the Go guest SDK
// (isotope.dev/isotope/sdk/go) by a generated file that also declares an
// empty main; the package must not declare main itself. The handler that
// serves is picked at run time by ISOTOPE_ENTRYPOINT (the Function's
// entrypoint). The SDK is written from the embedded copy in package sdk
// next to the source (.isotope-sdk) and wired in with require+replace; in vendor
// mode it is also copied into vendor/ and listed in vendor/modules.txt,
// so a vendored build needs no network at all.
//
// The build runs the host's go (1.24 or newer) as
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o $DEPLOY_PKG/main.wasm .
//
// with GOCACHE and GOMODCACHE under a persistent cache directory
// (ISOTOPE_GO_CACHE, default <user cache dir>/isotope/go-wasm), so a
// rebuild after an edit takes about a second. The user's source is copied
// to a temporary directory first; SRC_PKG is not modified. Builds are
// reproducible: the same source and Go version give the same bytes.
//
// Output layout: DEPLOY_PKG is a directory holding main.wasm, a reactor
// module exporting _initialize and isotope_handle. The fetcher's upload
// zips it (archivepackage), so the deploy archive holds main.wasm at its
// root.
//
// Compiler errors reach the build log verbatim, with paths relative to
// the source package's root.
package gowasm

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/wasmbuild"
	"isotope.dev/isotope/sdk"
)

// Output is the file name of the module inside DEPLOY_PKG.
const Output = "main.wasm"

// Command is the build command of the go-wasm builder environment.
const Command = "isotope build go-wasm"

// CacheEnv names the cache directory's environment variable.
const CacheEnv = "ISOTOPE_GO_CACHE"

// sdkPackage is the import path of the Go guest SDK.
const sdkPackage = sdk.GoModulePath + "/sdk/go"

func init() {
	builder.RegisterBuiltin(Command, func(ctx context.Context, args, env []string, dir string, log io.Writer) error {
		return Run(ctx, args, env, log)
	})
}

// Options configure a build. Zero values take the defaults.
type Options struct {
	// CacheDir holds the Go build and module caches and the SDK module.
	// Default: $ISOTOPE_GO_CACHE, else <os.UserCacheDir>/isotope/go-wasm.
	CacheDir string
	// GoCache and ModCache are GOCACHE and GOMODCACHE. Default: the
	// values set in Env, else <CacheDir>/build and <CacheDir>/mod.
	GoCache, ModCache string
	// Go is the go command (default: "go" on the PATH of Env, else of
	// this process).
	Go string
	// Env is the environment of the go commands, before the builder's
	// own settings (GOOS, GOARCH, caches…); default os.Environ().
	Env []string
}

func (o Options) withDefaults() (Options, error) {
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.CacheDir == "" {
		o.CacheDir = wasmbuild.Getenv(o.Env, CacheEnv)
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("no cache directory: set %s (%v)", CacheEnv, err)
		}
		o.CacheDir = filepath.Join(base, "isotope", "go-wasm")
	}
	if abs, err := filepath.Abs(o.CacheDir); err == nil {
		o.CacheDir = abs
	}
	// GOCACHE and GOMODCACHE set explicitly in the environment win, so
	// a machine's existing caches can be shared.
	if o.GoCache == "" {
		o.GoCache = wasmbuild.Getenv(o.Env, "GOCACHE")
	}
	if o.GoCache == "" {
		o.GoCache = filepath.Join(o.CacheDir, "build")
	}
	if o.ModCache == "" {
		o.ModCache = wasmbuild.Getenv(o.Env, "GOMODCACHE")
	}
	if o.ModCache == "" {
		o.ModCache = filepath.Join(o.CacheDir, "mod")
	}
	if o.Go == "" {
		o.Go = wasmbuild.Getenv(o.Env, "ISOTOPE_GO")
	}
	return o, nil
}

// Build compiles the function source at src into deploy/main.wasm,
// writing progress and the compiler's output to log. deploy is created
// (a directory); on failure it is removed again if Build created it.
func Build(ctx context.Context, src, deploy string, opts Options, log io.Writer) (err error) {
	start := time.Now()
	opts, err = opts.withDefaults()
	if err != nil {
		return err
	}
	goTool, err := findGo(ctx, opts.Go, opts.Env)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "go-wasm: %s (%s), cache %s\n", goTool.version, goTool.path, opts.CacheDir)

	work, err := os.MkdirTemp("", "isotope-go-wasm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir, err := copySource(src, work)
	if err != nil {
		return err
	}
	handlers, err := findHandlers(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "go-wasm: handlers: %s\n", strings.Join(handlers, ", "))
	if err := os.WriteFile(filepath.Join(dir, wrapperFile), wrapperSource(handlers), 0o644); err != nil {
		return err
	}
	if err := sdk.WriteGoModule(filepath.Join(dir, sdkDirName)); err != nil {
		return fmt.Errorf("writing the Go SDK: %w", err)
	}
	sdkDir := "./" + sdkDirName

	env := append(append([]string{}, opts.Env...),
		"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0",
		"GOCACHE="+opts.GoCache, "GOMODCACHE="+opts.ModCache,
		// Never download another toolchain because go.mod asks for one:
		// fail with go's own message instead.
		"GOTOOLCHAIN=local", "GOWORK=off")
	args := []string{"build", "-buildmode=c-shared", "-trimpath"}

	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		if err := addSDKRequirement(ctx, goTool.path, dir, sdkDir, env, log); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, "vendor", "modules.txt")); err == nil {
			if err := vendorSDK(dir, sdkDir); err != nil {
				return fmt.Errorf("adding the SDK to vendor/: %w", err)
			}
			args = append(args, "-mod=vendor")
			fmt.Fprintln(log, "go-wasm: module with vendor/: building with -mod=vendor")
		} else {
			fmt.Fprintln(log, "go-wasm: module: dependencies from GOMODCACHE / GOPROXY")
		}
	} else {
		gomod := fmt.Sprintf("module function\n\ngo 1.%d\n\nrequire %s v0.0.0\n\nreplace %s => %s\n",
			MinGoMinor, sdk.GoModulePath, sdk.GoModulePath, sdkDir)
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
			return err
		}
	}

	created := false
	if _, err := os.Stat(deploy); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		return err
	}
	defer func() {
		if err != nil && created {
			os.RemoveAll(deploy)
		}
	}()
	out := filepath.Join(deploy, Output)
	args = append(args, "-o", out, ".")
	fmt.Fprintf(log, "go-wasm: GOOS=wasip1 GOARCH=wasm go %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, goTool.path, args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, log, log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("go build stopped: %w", ctx.Err())
		}
		return fmt.Errorf("go build failed: %w", err)
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "go-wasm: built %s (%.1f MB) in %v\n", Output, float64(st.Size())/1e6, time.Since(start).Round(time.Millisecond))
	return nil
}

// sdkDirName is where the SDK module is written inside the package being
// built. The replace directive points at it with a relative path, so the
// module's bytes do not depend on where the build ran or where the cache
// is: the same source always gives the same main.wasm (and deploy
// sha256), which also keeps the runtime's compile cache warm.
const sdkDirName = ".isotope-sdk"

// addSDKRequirement edits the user's go.mod (in the work copy): require
// and replace the SDK, and raise the go line to 1.24 when it is older, as
// `go mod tidy` would, since the SDK module needs 1.24.
func addSDKRequirement(ctx context.Context, goPath, dir, sdkDir string, env []string, log io.Writer) error {
	read := exec.CommandContext(ctx, goPath, "mod", "edit", "-json")
	read.Dir, read.Env, read.Stderr = dir, env, log
	out, err := read.Output()
	if err != nil {
		return fmt.Errorf("go.mod: %w", err)
	}
	var mod struct{ Go string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return fmt.Errorf("go.mod: go mod edit -json: %w", err)
	}
	args := []string{"mod", "edit", "-require=" + sdk.GoModulePath + "@v0.0.0", "-replace=" + sdk.GoModulePath + "=" + sdkDir}
	if checkVersion("go"+mod.Go) != nil {
		args = append(args, fmt.Sprintf("-go=1.%d", MinGoMinor))
		fmt.Fprintf(log, "go-wasm: go.mod says go %s; building with go 1.%d, which the SDK needs\n", mod.Go, MinGoMinor)
	}
	edit := exec.CommandContext(ctx, goPath, args...)
	edit.Dir, edit.Env, edit.Stdout, edit.Stderr = dir, env, log, log
	if err := edit.Run(); err != nil {
		return fmt.Errorf("go mod edit (adding the SDK to go.mod): %w", err)
	}
	return nil
}

// vendorSDK copies the SDK package into vendor/ and records it in
// vendor/modules.txt the way `go mod vendor` would for
// require isotope.dev/isotope v0.0.0 + replace => sdkDir.
func vendorSDK(modDir, sdkDir string) error {
	vdir := filepath.Join(modDir, "vendor", filepath.FromSlash(sdkPackage))
	if err := os.RemoveAll(vdir); err != nil {
		return err
	}
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return err
	}
	if err := wasmbuild.CopyTree(filepath.Join(modDir, sdkDir, "sdk", "go"), vdir); err != nil {
		return err
	}
	mt := filepath.Join(modDir, "vendor", "modules.txt")
	old, err := os.ReadFile(mt)
	if err != nil {
		return err
	}
	// Drop any earlier record of the SDK module (a user who vendored it).
	var kept []string
	skipping := false
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if strings.HasPrefix(line, "# ") {
			fields := strings.Fields(line)
			skipping = len(fields) > 1 && fields[1] == sdk.GoModulePath
		}
		if !skipping {
			kept = append(kept, line)
		}
	}
	kept = append(kept,
		fmt.Sprintf("# %s v0.0.0 => %s", sdk.GoModulePath, sdkDir),
		fmt.Sprintf("## explicit; go 1.%d", MinGoMinor),
		sdkPackage,
		fmt.Sprintf("# %s => %s", sdk.GoModulePath, sdkDir))
	return os.WriteFile(mt, []byte(strings.Join(kept, "\n")+"\n"), 0o644)
}

// Run is `isotope build go-wasm [flags] [SRC [DEPLOY]]`: SRC and DEPLOY
// default to $SRC_PKG and $DEPLOY_PKG in env, as a Fission build script
// reads them.
func Run(ctx context.Context, args, env []string, log io.Writer) error {
	fset := flag.NewFlagSet("isotope build go-wasm", flag.ContinueOnError)
	fset.SetOutput(log)
	var opts Options
	fset.StringVar(&opts.CacheDir, "cache-dir", "", "cache directory (default $"+CacheEnv+", else the user cache dir)")
	fset.StringVar(&opts.Go, "go", "", "go command (default $ISOTOPE_GO, else go on PATH)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	src, deploy := wasmbuild.Getenv(env, "SRC_PKG"), wasmbuild.Getenv(env, "DEPLOY_PKG")
	switch fset.NArg() {
	case 2:
		src, deploy = fset.Arg(0), fset.Arg(1)
	case 1:
		src = fset.Arg(0)
	case 0:
	default:
		return fmt.Errorf("too many arguments: %q", fset.Args())
	}
	if src == "" || deploy == "" {
		return errors.New("SRC_PKG and DEPLOY_PKG must be set (or given as arguments)")
	}
	opts.Env = env
	if err := Build(ctx, src, deploy, opts, log); err != nil {
		return fmt.Errorf("go-wasm: %w", err)
	}
	return nil
}
