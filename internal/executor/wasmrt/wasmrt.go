// Package wasmrt is the executor's in-process WebAssembly runtime for
// environments whose image is isotope/wasm-env. An instance is a module
// loaded into the process's wasm.Runtime: starting one costs nothing (no
// process, no pool to keep warm); specializing fetches the package's
// deploy archive (a .wasm file, or a zip holding one and the files the
// guest may read) and loads it, which compiles it once per archive and
// warms the reactor's instances, so the first request pays for neither.
//
// One loaded module serves many requests at once on its own pool of
// guest instances, so the runtime is an instance.Multiplexer: strategies
// keep one instance per function.
package wasmrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/fnconfig"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/tracing"
	"isotope.dev/isotope/internal/wasm"
)

// Config configures the runtime.
type Config struct {
	// Wasm compiles and runs modules. Required.
	Wasm *wasm.Runtime
	// WorkDir receives fetched deploy archives, one directory per
	// archive (see Runtime.archiveDir): <ns>/_sha256/<first 32 hex
	// digits of its sha256>, shared by every package of the namespace
	// with that checksum, or <ns>/<pkg>/<hash of the deployment> for an
	// archive without one; deleted when no loaded module uses it.
	WorkDir string
	// Fetcher brings deploy archives into WorkDir. Required.
	Fetcher instance.Fetcher
	// Logs receives each function's stderr and the host's lines about it
	// (traps, timeouts); nil discards them.
	Logs *fnlog.Store
	// MaxInstances caps the guest instances of one function, that is
	// its concurrent requests (default 64).
	MaxInstances int
}

// Runtime is the in-process WebAssembly runtime. It is safe for
// concurrent use.
type Runtime struct {
	cfg Config

	mu   sync.Mutex
	dirs map[string]*archiveDir // fetched archive dirs by path
}

// archiveDir is one fetched deploy archive, shared by the instances of
// every function loaded from it. It is deleted when the last one closes
// (a rebuild swapped them, or the functions were deleted), so archives
// do not pile up under WorkDir.
type archiveDir struct {
	fetch sync.Mutex // held while fetching or deleting
	refs  int        // instances using it, or about to (under Runtime.mu)
}

var (
	_ instance.Runtime     = (*Runtime)(nil)
	_ instance.Multiplexer = (*Runtime)(nil)
	_ instance.Preparer    = (*Runtime)(nil)
)

// New returns a runtime.
func New(cfg Config) *Runtime {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 64
	}
	return &Runtime{cfg: cfg, dirs: map[string]*archiveDir{}}
}

// Name implements instance.Runtime.
func (r *Runtime) Name() string { return "wasm" }

// Pooled implements instance.Runtime: an empty instance costs nothing.
func (r *Runtime) Pooled() bool { return false }

// Slots implements instance.Multiplexer: the function's concurrency ×
// requestsPerPod, capped at MaxInstances.
func (r *Runtime) Slots(fn *v1.Function) int {
	c, rpp := fn.Spec.Concurrency, fn.Spec.RequestsPerPod
	if c <= 0 {
		c = r.cfg.MaxInstances
	}
	return min(c*max(rpp, 1), r.cfg.MaxInstances)
}

// Start implements instance.Runtime.
func (r *Runtime) Start(ctx context.Context, env *v1.Environment) (instance.Instance, error) {
	if r.cfg.Wasm == nil {
		return nil, fmt.Errorf("environment %s/%s: no WebAssembly runtime configured", env.Namespace, env.Name)
	}
	return &wasmInstance{rt: r, env: env}, nil
}

type wasmInstance struct {
	rt     *Runtime
	env    *v1.Environment
	mod    atomic.Pointer[wasm.Module]
	closed atomic.Bool

	mu  sync.Mutex
	dir string // the archive dir held, released at Close; "" if none
	// cfgDir holds the function's secrets and configs trees, mounted
	// read-only at /secrets and /configs; removed at Close. "" if none.
	cfgDir string
}

// writeConfig lays out f's secrets and config maps in a directory of
// the instance's own and returns the guest mounts of its two trees (nil
// when the function names none).
func (w *wasmInstance) writeConfig(f instance.Function) (map[string]string, error) {
	if len(f.Secrets)+len(f.ConfigMaps) == 0 {
		return nil, nil
	}
	base := filepath.Join(w.rt.cfg.WorkDir, "_config")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, f.Fn.Namespace+"_"+f.Fn.Name+"_")
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.cfgDir = dir
	w.mu.Unlock()
	if err := fnconfig.Write(dir, f.Secrets, f.ConfigMaps); err != nil {
		return nil, fmt.Errorf("write the secrets and config maps of function %s/%s: %w", f.Fn.Namespace, f.Fn.Name, err)
	}
	return map[string]string{
		"/" + fnconfig.SecretsDir: filepath.Join(dir, fnconfig.SecretsDir),
		"/" + fnconfig.ConfigsDir: filepath.Join(dir, fnconfig.ConfigsDir),
	}, nil
}

// Specialize implements instance.Instance: fetch, then load.
func (w *wasmInstance) Specialize(ctx context.Context, f instance.Function) error {
	if w.mod.Load() != nil {
		return fmt.Errorf("instance is already specialized")
	}
	pkg, fn := f.Pkg, f.Fn
	key := pkg.Spec.Deployment.Checksum.Sum
	dir := w.rt.archiveDir(pkg)
	target := filepath.Join(dir, "deployarchive")
	if err := w.rt.acquireDir(ctx, pkg, dir); err != nil {
		return fmt.Errorf("fetch deploy archive of package %s/%s: %w", pkg.Namespace, pkg.Name, err)
	}
	w.mu.Lock()
	if w.closed.Load() || w.dir != "" {
		w.mu.Unlock()
		w.rt.releaseDir(dir)
		return fmt.Errorf("instance closed or specialized during specialization")
	}
	w.dir = dir
	w.mu.Unlock()
	archiveDir := ""
	if st, err := os.Stat(target); err == nil && st.IsDir() {
		archiveDir = target
	}
	lim, err := Limits(f)
	if err != nil {
		return err
	}
	lim.MaxInstances = w.rt.Slots(fn)
	mounts, err := w.writeConfig(f)
	if err != nil {
		return err
	}
	var log *logAdapter
	if w.rt.cfg.Logs != nil {
		log = &logAdapter{logs: w.rt.cfg.Logs, ns: fn.Namespace, name: fn.Name}
	}
	req := wasm.LoadRequest{
		Key:        key,
		Path:       target,
		Name:       fn.Namespace + "/" + fn.Name,
		Entrypoint: fn.Spec.Package.FunctionName,
		Env:        Env(f.Env),
		ArchiveDir: archiveDir,
		Mounts:     mounts,
		Limits:     lim,
	}
	if log != nil {
		req.Log = log
	}
	mod, err := w.rt.cfg.Wasm.Load(ctx, req)
	if err != nil {
		return err
	}
	if w.closed.Load() || !w.mod.CompareAndSwap(nil, mod) {
		mod.Close()
		return fmt.Errorf("instance closed during specialization")
	}
	return nil
}

// Prepare implements instance.Preparer: it fetches pkg's deploy archive
// and compiles its module, then lets both go. The archive directory is
// deleted unless an instance uses it by then; the compiled code stays
// among the runtime's idle modules (wasm.Config.KeepIdleCompiled) and in
// its disk cache, found again by the archive's checksum, so the first
// function of the package loads without compiling.
// An archive without a sha256 is not prepared: nothing could find its
// code again.
func (r *Runtime) Prepare(ctx context.Context, pkg *v1.Package) error {
	key := pkg.Spec.Deployment.Checksum.Sum
	if !isSHA256Hex(strings.ToLower(key)) || r.cfg.Wasm == nil {
		return nil
	}
	dir := r.archiveDir(pkg)
	if err := r.acquireDir(ctx, pkg, dir); err != nil {
		return fmt.Errorf("fetch deploy archive of package %s/%s: %w", pkg.Namespace, pkg.Name, err)
	}
	defer r.releaseDir(dir)
	mod, err := r.cfg.Wasm.Load(ctx, wasm.LoadRequest{
		Key:    key,
		Path:   filepath.Join(dir, "deployarchive"),
		Name:   pkg.Namespace + "/" + pkg.Name + " (package)",
		Limits: wasm.Limits{WarmInstances: -1},
	})
	if err != nil {
		return err
	}
	return mod.Close()
}

// Env is a function's guest environment: the literal values of its
// Environment's runtime.container.env (valueFrom entries name Kubernetes
// objects and are skipped). Nothing of the host's is inherited.
// wasm.EnvEntrypoint is set from the function's entry point by the wasm
// package and cannot be overridden here.
func Env(env *v1.Environment) map[string]string {
	if env == nil || env.Spec.Runtime.Container == nil {
		return nil
	}
	vars := map[string]string{}
	for _, e := range env.Spec.Runtime.Container.Env {
		if e.Name == "" || e.ValueFrom != nil || e.Name == wasm.EnvEntrypoint {
			continue
		}
		vars[e.Name] = e.Value
	}
	return vars
}

// pageSize is a WebAssembly page.
const pageSize = 64 << 10

// Limits are a function's per-request limits: its functionTimeout, and
// a memory cap from the function's spec.resources.limits.memory when
// set, else its Environment's (as newdeploy sizes a pod), rounded up to
// 64 KiB pages; without either the wasm package's default (128 MiB)
// applies. A cap above 4 GiB, the most a 32-bit guest can address, is
// 4 GiB. A cap too small for the module's initial memory fails its load
// with a message saying so.
func Limits(f instance.Function) (wasm.Limits, error) {
	lim := wasm.Limits{Timeout: time.Duration(f.Fn.Spec.FunctionTimeout) * time.Second}
	q, field := f.Fn.Spec.Resources.Limits.Memory(), "spec.resources.limits.memory of function "+f.Fn.Namespace+"/"+f.Fn.Name
	if q.IsZero() && f.Env != nil {
		q, field = f.Env.Spec.Resources.Limits.Memory(), "spec.resources.limits.memory of environment "+f.Env.Namespace+"/"+f.Env.Name
	}
	if q.IsZero() {
		return lim, nil
	}
	b := q.Value()
	if b < pageSize {
		return lim, fmt.Errorf("%s is %s: a WebAssembly function needs at least 64Ki", field, q.String())
	}
	lim.MemoryPages = uint32(min((b+pageSize-1)/pageSize, 65536))
	// A reactor instance is recycled when its memory passes a threshold
	// (64 MiB by default); with a larger cap, half of it, so a function
	// given room for a big working set is not restarted every request.
	lim.MaxMemoryBytes = max(wasm.DefaultMaxMemoryBytes, uint64(lim.MemoryPages)*pageSize/2)
	return lim, nil
}

// archiveDir is where pkg's deploy archive is fetched. An archive with a
// sha256 checksum is stored by it (<ns>/_sha256/<first 32 hex digits>,
// a name no package can have): the fetcher verifies the bytes against
// it, so every package of the namespace whose deployment has that
// checksum shares one copy, fetched once (functions made from the same
// code, a package re-created with the same archive). Sharing stops at
// the namespace: a package elsewhere proves it can fetch the bytes
// before running them, rather than being given another namespace's code
// for naming its checksum. Other archives (a literal or URL without a
// checksum) get one per package and deployment (<ns>/<pkg>/<hash of the
// deployment spec>).
func (r *Runtime) archiveDir(pkg *v1.Package) string {
	ck := pkg.Spec.Deployment.Checksum
	if sum := strings.ToLower(ck.Sum); isSHA256Hex(sum) && (ck.Type == "" || ck.Type == v1.ChecksumTypeSHA256) {
		return filepath.Join(r.cfg.WorkDir, pkg.Namespace, "_sha256", sum[:32])
	}
	b, _ := json.Marshal(pkg.Spec.Deployment)
	h := sha256.Sum256(b)
	return filepath.Join(r.cfg.WorkDir, pkg.Namespace, pkg.Name, hex.EncodeToString(h[:16]))
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// acquireDir takes a reference on dir and brings pkg's deploy archive
// into it once, whatever the number of instances sharing it.
func (r *Runtime) acquireDir(ctx context.Context, pkg *v1.Package, dir string) error {
	r.mu.Lock()
	d := r.dirs[dir]
	if d == nil {
		d = &archiveDir{}
		r.dirs[dir] = d
	}
	d.refs++
	r.mu.Unlock()

	d.fetch.Lock()
	err := r.fetchLocked(ctx, pkg, dir)
	d.fetch.Unlock()
	if err != nil {
		r.releaseDir(dir)
	}
	return err
}

func (r *Runtime) fetchLocked(ctx context.Context, pkg *v1.Package, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "deployarchive")); err == nil {
		return nil
	}
	if r.cfg.Fetcher == nil {
		return fmt.Errorf("wasmrt: Config.Fetcher is nil")
	}
	// Created under r.mu, so that releaseDir, which removes empty
	// parents under r.mu, never removes them between here and the fetch.
	r.mu.Lock()
	err := os.MkdirAll(dir, 0o755)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return r.cfg.Fetcher.FetchDeployment(ctx, pkg, dir, "deployarchive", false)
}

// releaseDir drops a reference on dir and deletes the directory (and
// its package and namespace directories once empty) when it was the last.
func (r *Runtime) releaseDir(dir string) {
	r.mu.Lock()
	d := r.dirs[dir]
	if d == nil {
		r.mu.Unlock()
		return
	}
	d.refs--
	last := d.refs == 0
	r.mu.Unlock()
	if !last {
		return
	}
	d.fetch.Lock()
	defer d.fetch.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if d.refs > 0 {
		return // taken again meanwhile; it waits on d.fetch and finds the files
	}
	// A Load has read the module into memory; the guest's read-only
	// mount of the directory ends with its module, which is closed.
	_ = os.RemoveAll(dir)
	for p := filepath.Dir(dir); p != filepath.Clean(r.cfg.WorkDir) && strings.HasPrefix(p, filepath.Clean(r.cfg.WorkDir)); p = filepath.Dir(p) {
		if os.Remove(p) != nil {
			break // not empty
		}
	}
	if r.dirs[dir] == d {
		delete(r.dirs, dir)
	}
}

// ServeHTTP implements instance.Instance.
func (w *wasmInstance) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	m := w.mod.Load()
	if m == nil {
		http.Error(rw, "instance is not specialized", http.StatusInternalServerError)
		return
	}
	if route, ok := instance.RouteFrom(r.Context()); ok {
		r = r.WithContext(wasm.WithRouteInfo(r.Context(), route.Pattern, route.FullURL))
	}
	if tracing.Enabled() {
		// The guest sees the call's traceparent: WAGI as HTTP_TRACEPARENT.
		tracing.Call(rw, r, "wasm.call", trace.SpanKindInternal, []attribute.KeyValue{tracing.KeyRuntime.String("wasm")}, m.ServeHTTP)
		return
	}
	m.ServeHTTP(rw, r)
}

// Alive implements instance.Instance. A trap or a timeout costs one guest
// instance inside the module, never the module.
func (w *wasmInstance) Alive() bool { return !w.closed.Load() }

// Close implements instance.Instance. The archive dir is deleted once
// no other instance uses it.
func (w *wasmInstance) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	var err error
	if m := w.mod.Load(); m != nil {
		err = m.Close()
	}
	w.mu.Lock()
	dir, cfgDir := w.dir, w.cfgDir
	w.dir, w.cfgDir = "", ""
	w.mu.Unlock()
	if dir != "" {
		w.rt.releaseDir(dir)
	}
	if cfgDir != "" {
		_ = fnconfig.Remove(cfgDir)
	}
	return err
}

// logAdapter stores a function's log lines from the wasm package: whole
// lines with their source (LogLine), or, written as text, lines of the
// form "<time> <ns/name> <source>: <text>" (Write).
type logAdapter struct {
	logs     *fnlog.Store
	ns, name string
}

// LogLine implements wasm.LineLogger: the runtime's lines arrive whole,
// with their source, and are stored without a round trip through text.
// A text of several lines (a trap's stack trace) is stored as that many
// lines, each with the source.
func (a *logAdapter) LogLine(source, text string) {
	if source == "isotope" {
		source = "host"
	}
	for {
		line, rest, more := strings.Cut(text, "\n")
		a.logs.Append(a.ns, a.name, source, line)
		if !more {
			return
		}
		text = rest
	}
}

func (a *logAdapter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		source, text := "stderr", line
		// Drop the time and the name; keep the source.
		if f := strings.SplitN(line, " ", 3); len(f) == 3 {
			if src, rest, ok := strings.Cut(f[2], ": "); ok && !strings.Contains(src, " ") {
				source, text = src, rest
			}
		}
		a.LogLine(source, text)
	}
	return len(p), nil
}
