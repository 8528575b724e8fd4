// Package builder is Isotope's builder: the process that runs a build
// command over a fetched source package in a directory shared with the
// fetcher. It speaks Fission's builder API (reference/fission.md §3c) on
// port 8001:
//
//	POST   /             {"srcPkgFilename","command"} → {"artifactFilename","buildLogs"}
//	                     200 built, 500 failed (with the logs), 400 bad request
//	DELETE /clean?name=  removes <shared>/<name>
//	GET    /logs?name=   the running (or a recent) build's output, streamed
//	                     as text/plain while the build runs, ending with it
//	GET    /healthz, /version
//
// A build runs the command split on spaces (no shell; an empty command is
// Fission's "/build"), in the source directory (its parent when the source
// is a file), with the process environment plus Config.Env plus
// SRC_PKG=<shared>/<srcPkgFilename> and
// DEPLOY_PKG=<shared>/<srcPkgFilename>-<6 random lowercase letters>.
// Beyond Fission: a timeout (default 10 minutes) that kills the whole
// process group, a cap on the returned log that keeps its head and tail
// around a truncation marker, the live log stream, and a check that the
// command really produced DEPLOY_PKG.
//
// Commands can also be built in (Config.Builtins): "isotope build go-wasm"
// runs in-process by default, so the embedded mode needs no isotope
// binary on PATH.
package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// PackageBuildRequest is Fission's build request.
type PackageBuildRequest struct {
	SrcPkgFilename string `json:"srcPkgFilename"`
	Command        string `json:"command"`
}

// PackageBuildResponse is Fission's build response.
type PackageBuildResponse struct {
	ArtifactFilename string `json:"artifactFilename"`
	BuildLogs        string `json:"buildLogs"`
}

// Defaults for Config fields left at zero.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxLogBytes = 256 << 10
	// DefaultCommand is Fission's build command when none is given.
	DefaultCommand = "/build"
)

// BuiltinFunc runs a built-in build command in-process. args are the
// command's words after the builtin's own; env holds SRC_PKG and
// DEPLOY_PKG like a child's environment; output goes to log.
type BuiltinFunc func(ctx context.Context, args, env []string, dir string, log io.Writer) error

// Config configures a Builder.
type Config struct {
	// SharedDir is the directory shared with the fetcher (/packages).
	SharedDir string
	// Timeout bounds one build (default 10 minutes).
	Timeout time.Duration
	// MaxLogBytes caps the log returned with a build (default 256 KiB).
	MaxLogBytes int
	// Env is added to the process environment of every build (e.g.
	// PATH with the isotope binary's directory); later entries win.
	Env []string
	// Builtins are commands run in-process, keyed by their leading words
	// ("isotope build go-wasm"). Nil means DefaultBuiltins(); an empty
	// map means none.
	Builtins map[string]BuiltinFunc
	// Log receives every build's output between "=== START ===" and
	// "=== END ===" lines, like Fission's builder pod log; nil discards.
	Log io.Writer
}

// defaultBuiltins is filled by packages that provide built-in commands
// (package gowasm registers "isotope build go-wasm" through
// RegisterBuiltin), so that this package does not depend on them; any
// binary that links package gowasm (the isotope binary does) has it.
var defaultBuiltins = map[string]BuiltinFunc{}

// RegisterBuiltin adds a command to DefaultBuiltins. It is meant for
// init functions.
func RegisterBuiltin(command string, f BuiltinFunc) {
	defaultBuiltins[strings.Join(strings.Fields(command), " ")] = f
}

// DefaultBuiltins returns the registered built-in commands.
func DefaultBuiltins() map[string]BuiltinFunc {
	out := make(map[string]BuiltinFunc, len(defaultBuiltins))
	for k, v := range defaultBuiltins {
		out[k] = v
	}
	return out
}

// Builder runs builds. It is safe for concurrent use; two builds of the
// same source package at once are refused.
type Builder struct {
	cfg Config

	mu       sync.Mutex
	logs     map[string]*buildLog // by srcPkgFilename: running and recent builds
	running  map[string]bool
	finished []string // names of finished builds, oldest first
}

// keepFinished is how many finished builds' logs /logs can still serve.
const keepFinished = 16

// New returns a Builder.
func New(cfg Config) *Builder {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxLogBytes <= 0 {
		cfg.MaxLogBytes = DefaultMaxLogBytes
	}
	if cfg.Builtins == nil {
		cfg.Builtins = DefaultBuiltins()
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	return &Builder{cfg: cfg, logs: map[string]*buildLog{}, running: map[string]bool{}}
}

// RequestError is a build request refused before anything ran (HTTP 400,
// or 409 for a build already running).
type RequestError struct {
	Code int
	Msg  string
}

func (e *RequestError) Error() string { return e.Msg }

// BuildError is a build that ran and failed (HTTP 500); the response
// returned with it carries the logs.
type BuildError struct{ Err error }

func (e *BuildError) Error() string { return e.Err.Error() }
func (e *BuildError) Unwrap() error { return e.Err }

// sharedPath checks a file name from a request and returns its path.
func (b *Builder) sharedPath(field, name string) (string, error) {
	if name == "" {
		return "", &RequestError{http.StatusBadRequest, field + " is empty"}
	}
	if !filepath.IsLocal(name) || filepath.Clean(name) != name || strings.HasPrefix(name, ".") {
		return "", &RequestError{http.StatusBadRequest, fmt.Sprintf("%s %q is not a plain name inside the shared directory", field, name)}
	}
	return filepath.Join(b.cfg.SharedDir, name), nil
}

// Build runs one build. Its output goes to live (if not nil) as it
// happens, to Config.Log and to the live stream of /logs, and, capped, to
// the response's BuildLogs. A failed build returns the response and a
// *BuildError; a bad request returns a *RequestError.
func (b *Builder) Build(ctx context.Context, req PackageBuildRequest, live io.Writer) (PackageBuildResponse, error) {
	src, err := b.sharedPath("srcPkgFilename", req.SrcPkgFilename)
	if err != nil {
		return PackageBuildResponse{}, err
	}
	st, err := os.Stat(src)
	if err != nil {
		return PackageBuildResponse{}, &RequestError{http.StatusBadRequest, fmt.Sprintf("source package %s: %v", req.SrcPkgFilename, errors.Unwrap(err))}
	}
	dir := src
	if !st.IsDir() {
		dir = filepath.Dir(src)
	}

	blog := newBuildLog(b.cfg.MaxLogBytes)
	if err := b.start(req.SrcPkgFilename, blog); err != nil {
		return PackageBuildResponse{}, err
	}
	defer b.end(req.SrcPkgFilename, blog)

	artifact := req.SrcPkgFilename + "-" + randomSuffix()
	deploy := filepath.Join(b.cfg.SharedDir, artifact)
	resp := PackageBuildResponse{ArtifactFilename: artifact}

	var out io.Writer = blog
	if live != nil {
		out = io.MultiWriter(blog, live)
	}
	out = &lockedWriter{w: io.MultiWriter(out, b.cfg.Log)}
	fmt.Fprintln(b.cfg.Log, "=== START ===")
	defer fmt.Fprintln(b.cfg.Log, "=== END ===")

	command := req.Command
	if strings.TrimSpace(command) == "" {
		command = DefaultCommand
	}
	env := append(append(append([]string{}, os.Environ()...), b.cfg.Env...), "SRC_PKG="+src, "DEPLOY_PKG="+deploy)

	bctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	start := time.Now()
	err = b.run(bctx, strings.Fields(command), env, dir, out)
	if err == nil {
		if _, serr := os.Lstat(deploy); serr != nil {
			err = fmt.Errorf("the build command succeeded but created nothing at $DEPLOY_PKG (%s)", deploy)
		}
	}
	if err != nil {
		switch {
		case errors.Is(bctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
			err = fmt.Errorf("build timed out after %v and was killed", b.cfg.Timeout)
		case ctx.Err() != nil:
			err = fmt.Errorf("build canceled: %w", ctx.Err())
		}
		fmt.Fprintf(out, "\nError: %v\n", err)
		os.RemoveAll(deploy)
		resp.BuildLogs = blog.String()
		return resp, &BuildError{Err: err}
	}
	fmt.Fprintf(b.cfg.Log, "build of %s done in %v\n", req.SrcPkgFilename, time.Since(start).Round(time.Millisecond))
	resp.BuildLogs = blog.String()
	return resp, nil
}

// start registers a running build, refusing a second one of the same
// source package.
func (b *Builder) start(name string, l *buildLog) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running[name] {
		return &RequestError{http.StatusConflict, fmt.Sprintf("a build of %s is already running", name)}
	}
	b.running[name] = true
	b.logs[name] = l
	return nil
}

func (b *Builder) end(name string, l *buildLog) {
	l.finish()
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, name)
	b.finished = append(b.finished, name)
	for len(b.finished) > keepFinished {
		old := b.finished[0]
		b.finished = b.finished[1:]
		if !b.running[old] && !contains(b.finished, old) {
			delete(b.logs, old)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// run executes the command: a builtin in-process, or a child process.
func (b *Builder) run(ctx context.Context, args, env []string, dir string, out io.Writer) error {
	for key, f := range b.cfg.Builtins {
		words := strings.Fields(key)
		if len(args) >= len(words) && equalWords(args[:len(words)], words) {
			return f(ctx, args[len(words):], env, dir, out)
		}
	}
	path, err := lookPath(args[0], env)
	if err != nil {
		return fmt.Errorf("build command %q: %w", args[0], err)
	}
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	KillGroupOnCancel(cmd)
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build command %q failed: %w", strings.Join(args, " "), err)
	}
	return nil
}

func equalWords(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// lookPath resolves a command name with the PATH of the build's
// environment (exec.LookPath would use this process's PATH).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in PATH %q", pathEnv)
}

func randomSuffix() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// Clean removes <shared>/<name> (a source package after its build).
func (b *Builder) Clean(name string) error {
	p, err := b.sharedPath("name", name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if !b.running[name] {
		delete(b.logs, name)
	}
	b.mu.Unlock()
	return os.RemoveAll(p)
}

// lockedWriter serializes writes from a child's stdout and stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
