package wasm

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"isotope.dev/isotope/internal/wasm/rewrite"
)

// wazeroModule is the module path whose version keys the disk cache.
const wazeroModule = "github.com/tetratelabs/wazero"

// wazeroVersionFallback keys the disk cache when build info does not name
// the wazero version (it must then be bumped with go.mod).
const wazeroVersionFallback = "v1.12.0"

// WazeroVersion is the wazero version compiled code is cached under.
// wazero's own lookup returns "dev" in test binaries, which would let a
// cache outlive a wazero upgrade, so Isotope keys the directory itself.
func WazeroVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == wazeroModule {
				if d.Replace != nil && d.Replace.Version != "" {
					return d.Replace.Version
				}
				if d.Version != "" && d.Version != "(devel)" {
					return d.Version
				}
			}
		}
	}
	return wazeroVersionFallback
}

// Runtime compiles and runs WebAssembly functions. It is safe for
// concurrent use; one Runtime serves every function of a process.
type Runtime struct {
	cfg Config
	// rt compiles and runs modules rewritten with interrupt checks
	// (package rewrite, schedule.go); safe runs, unchanged, the few modules that cannot
	// be rewritten, with wazero's close-on-context-done. Each has its own
	// disk cache: wazero's cache key does not include that setting.
	rt, safe runtimeCache
	safeMu   sync.Mutex // guards starting safe, on first need
	workers  int
	mu       sync.Mutex
	compiled map[string]*compiled
	byModule map[string]*compiled // by the sha256 of the module's bytes
	idle     *list.List           // of *compiled with no Module, most recent first
	keepIdle int
	closed   bool

	compiles, diskHits, shared atomic.Uint64
	reactorStarts              atomic.Uint64
	reactorLive                atomic.Int64

	memories memoryPool // linear memories of closed instances, for new ones
	gate     *gate      // the guest slots (schedule.go)
}

// compiled is one module's machine code, shared by every Module loaded
// with the same key and compiled exactly once (single-flight).
type compiled struct {
	key   string
	ready chan struct{} // closed when cm/abi/err are set
	cm    wazero.CompiledModule
	rt    wazero.Runtime // the runtime that compiled cm and instantiates it
	// interrupt is true when the module was rewritten to yield to the
	// host (schedule.go); false when it runs on the close-on-context-done
	// runtime.
	interrupt bool
	abi       ABI
	err       error
	refs      int
	elem      *list.Element // in Runtime.idle while refs == 0
	// sum is the sha256 of the module's bytes, once read ("" before).
	sum string
	// alias, when set, is the compiled module of the same bytes loaded
	// under another key (another deploy archive holding the same
	// module): c shares its code and holds one reference to it.
	alias *compiled
}

// runtimeCache is one wazero runtime with its disk cache.
type runtimeCache struct {
	rt      wazero.Runtime
	cache   wazero.CompilationCache
	markDir string // "" without a disk cache
	// rewriteDir holds modules rewritten with interrupt checks, by
	// rewrite.Version and the sha256 of the original; "" without a disk
	// cache or on the close-on-context-done runtime.
	rewriteDir string
}

// NewRuntime starts a Runtime. Close it to free compiled code.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MaxMemoryPages > 65536 {
		return nil, fmt.Errorf("wasm: Config.MaxMemoryPages %d is above 65536 (4 GiB)", cfg.MaxMemoryPages)
	}
	if cfg.GuestSlots < 0 || cfg.GuestQueue < 0 {
		return nil, fmt.Errorf("wasm: Config.GuestSlots (%d) and GuestQueue (%d) must not be negative", cfg.GuestSlots, cfg.GuestQueue)
	}
	r := &Runtime{cfg: cfg, compiled: map[string]*compiled{}, byModule: map[string]*compiled{}, idle: list.New(), workers: cfg.CompilationWorkers, keepIdle: cfg.KeepIdleCompiled,
		gate: newGate(cfg.GuestSlots, cfg.GuestQueue)}
	if r.keepIdle == 0 {
		r.keepIdle = 8
	}
	if r.workers <= 0 {
		r.workers = 2
	}
	var err error
	r.rt, err = startRuntime(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// startRuntime starts a wazero runtime with WASI. closeOnDone selects
// wazero's close-on-context-done (a check calling out of machine code
// at every loop iteration) for modules without interrupt checks; its
// disk cache is the directory earlier versions used, whose code was
// compiled that way.
func startRuntime(ctx context.Context, cfg Config, closeOnDone bool) (runtimeCache, error) {
	var rc runtimeCache
	conf := wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(closeOnDone).
		WithDebugInfoEnabled(false)
	if cfg.MaxMemoryPages > 0 {
		conf = conf.WithMemoryLimitPages(cfg.MaxMemoryPages)
	}
	if cfg.CacheDir != "" {
		dir := filepath.Join(cfg.CacheDir, "wazero-"+WazeroVersion())
		if !closeOnDone {
			dir += "-interrupt"
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return rc, fmt.Errorf("wasm: compile cache dir: %w", err)
		}
		cache, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return rc, fmt.Errorf("wasm: compile cache dir %s: %w", dir, err)
		}
		rc.cache = cache
		rc.markDir = filepath.Join(dir, "isotope-compiled")
		if err := os.MkdirAll(rc.markDir, 0o700); err != nil {
			return rc, fmt.Errorf("wasm: compile cache dir: %w", err)
		}
		if !closeOnDone {
			rc.rewriteDir = filepath.Join(dir, "isotope-rewritten")
			if err := os.MkdirAll(rc.rewriteDir, 0o700); err != nil {
				return rc, fmt.Errorf("wasm: compile cache dir: %w", err)
			}
			removeStaleTemps(rc.rewriteDir)
		}
		conf = conf.WithCompilationCache(cache)
	}
	rc.rt = wazero.NewRuntimeWithConfig(ctx, conf)
	if err := instantiateWASI(ctx, rc.rt, !closeOnDone); err != nil {
		rc.close(ctx)
		return rc, fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	if !closeOnDone {
		if err := instantiateYield(ctx, rc.rt); err != nil {
			rc.close(ctx)
			return rc, fmt.Errorf("wasm: instantiate the yield import: %w", err)
		}
	}
	return rc, nil
}

func (rc *runtimeCache) close(ctx context.Context) error {
	if rc.rt == nil {
		return nil
	}
	err := rc.rt.Close(ctx)
	if rc.cache != nil {
		if cerr := rc.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// safeRuntime returns the close-on-context-done runtime, starting it on
// first use.
func (r *Runtime) safeRuntime(ctx context.Context) (*runtimeCache, error) {
	r.safeMu.Lock()
	defer r.safeMu.Unlock()
	if r.safe.rt == nil {
		rc, err := startRuntime(context.WithoutCancel(ctx), r.cfg, true)
		if err != nil {
			return nil, err
		}
		r.safe = rc
	}
	return &r.safe, nil
}

// Stats returns the Runtime's compile counters.
func (r *Runtime) Stats() RuntimeStats {
	r.mu.Lock()
	n := len(r.compiled)
	r.mu.Unlock()
	return RuntimeStats{
		Compiles:      r.compiles.Load(),
		DiskCacheHits: r.diskHits.Load(),
		SharedLoads:   r.shared.Load(),
		Modules:       n,
		ReactorStarts: r.reactorStarts.Load(),
		ReactorLive:   int(r.reactorLive.Load()),
	}
}

// Close frees every compiled module and instance. Modules loaded from r
// must not be used afterwards.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	// No memory may be reused past this point: closing the runtime
	// closes modules whatever they are doing.
	r.memories.close()
	err := r.rt.close(ctx)
	r.safeMu.Lock()
	defer r.safeMu.Unlock()
	if serr := r.safe.close(ctx); err == nil {
		err = serr
	}
	return err
}

// Load validates and compiles the module of req (once per Key, however
// many callers race), detects its ABI and, for a reactor, initializes its
// warm instances, so the first request does not pay for any of it.
func (r *Runtime) Load(ctx context.Context, req LoadRequest) (*Module, error) {
	name := req.Name
	if name == "" {
		name = "function"
	}
	// The module's bytes are read only if they must be compiled: a Key
	// already compiled (another function of the same deploy archive, or
	// code kept after its last function went) needs none of them, which
	// spares reading and hashing megabytes on a cold start.
	read := func() ([]byte, error) {
		if req.Wasm != nil {
			return req.Wasm, nil
		}
		if req.Path == "" {
			return nil, errors.New("neither Wasm nor Path is set")
		}
		p, err := FindModule(req.Path)
		if err != nil {
			return nil, err
		}
		return os.ReadFile(p)
	}
	// sum hashes the module as it streams from disk: a module already
	// compiled under another key (a new deploy archive of known code)
	// is found by its sha256 without holding its megabytes in memory,
	// which costs page faults on every first touch (decision 0010).
	sum := func() (string, error) {
		if req.Wasm != nil {
			return sha256Hex(req.Wasm), nil
		}
		if req.Path == "" {
			return "", errors.New("neither Wasm nor Path is set")
		}
		p, err := FindModule(req.Path)
		if err != nil {
			return "", err
		}
		return sha256FileHex(p)
	}
	// The sha256 keys the disk cache; it is computed only when the key
	// does not say it all (a 5 MB Go module takes milliseconds to hash,
	// and the fetcher has already checked the archive's checksum).
	keyIsSum := req.Key == ""
	if keyIsSum {
		b, err := read()
		if err != nil {
			return nil, fmt.Errorf("wasm: load %s: %w", name, err)
		}
		req.Key, req.Wasm = sha256Hex(b), b
	}
	if req.ArchiveDir != "" {
		st, err := os.Stat(req.ArchiveDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: load %s: ArchiveDir: %w", name, err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("wasm: load %s: ArchiveDir %s is not a directory", name, req.ArchiveDir)
		}
		if err := checkConfined(req.ArchiveDir); err != nil {
			return nil, fmt.Errorf("wasm: load %s: ArchiveDir: %w", name, err)
		}
	}
	for guest, host := range req.Mounts {
		if !strings.HasPrefix(guest, "/") || guest == "/" || path.Clean(guest) != guest {
			return nil, fmt.Errorf("wasm: load %s: mount %q: the guest path must be absolute, clean and not /", name, guest)
		}
		if st, err := os.Stat(host); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("wasm: load %s: mount %s: %s is not a directory (%v)", name, guest, host, err)
		}
		if err := checkConfined(host); err != nil {
			return nil, fmt.Errorf("wasm: load %s: mount %s: %w", name, guest, err)
		}
	}
	c, err := r.compile(ctx, req.Key, keyIsSum, sum, read)
	if err != nil {
		return nil, fmt.Errorf("wasm: load %s: %w", name, err)
	}
	m, err := newModule(ctx, r, c, name, req)
	if err != nil {
		r.release(c)
		return nil, fmt.Errorf("wasm: load %s: %w", name, err)
	}
	return m, nil
}

// compile returns the compiled module for key, compiling the bytes read
// returns if no other caller has; concurrent callers wait for the one
// compile.
// keyIsSum says key is already the sha256 of those bytes; otherwise sum
// gives it, and the bytes are read only when no compiled module has it.
func (r *Runtime) compile(ctx context.Context, key string, keyIsSum bool, sum func() (string, error), read func() ([]byte, error)) (*compiled, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errors.New("runtime is closed")
	}
	if c, ok := r.compiled[key]; ok {
		c.refs++
		if c.elem != nil {
			r.idle.Remove(c.elem)
			c.elem = nil
		}
		r.mu.Unlock()
		r.shared.Add(1)
		select {
		case <-c.ready:
		case <-ctx.Done():
			r.release(c)
			return nil, ctx.Err()
		}
		if c.err != nil {
			r.release(c)
			return nil, c.err
		}
		return c, nil
	}
	c := &compiled{key: key, ready: make(chan struct{}), refs: 1}
	r.compiled[key] = c
	r.mu.Unlock()
	sumHex := key
	if !keyIsSum {
		var err error
		if sumHex, err = sum(); err != nil {
			return nil, r.compileFailed(c, err)
		}
	}
	// The same module under another key (a new deploy archive of code
	// already loaded, as a rebuild of unchanged source makes) shares the
	// compiled module: wazero would otherwise decode and validate it
	// again before finding its code in the disk cache, a tenth of a
	// second for a Go guest.
	r.mu.Lock()
	c.sum = sumHex
	m := r.byModule[sumHex]
	if m != nil {
		m.refs++
		if m.elem != nil {
			r.idle.Remove(m.elem)
			m.elem = nil
		}
	} else {
		r.byModule[sumHex] = c
	}
	r.mu.Unlock()
	if m != nil {
		select {
		case <-m.ready:
		case <-ctx.Done():
			r.release(m)
			return nil, r.compileFailed(c, ctx.Err())
		}
		if m.err != nil {
			r.release(m)
			return nil, r.compileFailed(c, m.err)
		}
		c.cm, c.rt, c.abi, c.interrupt, c.alias = m.cm, m.rt, m.abi, m.interrupt, m
		r.shared.Add(1)
		close(c.ready)
		return c, nil
	}

	wasmBytes, err := read()
	if err != nil {
		return nil, r.compileFailed(c, err)
	}
	if !keyIsSum && sha256Hex(wasmBytes) != sumHex {
		return nil, r.compileFailed(c, errors.New("the module changed on disk while it was being loaded"))
	}
	// The compile must not be cut short by one caller's context: others
	// may be waiting on it.
	cctx := experimental.WithCompilationWorkers(context.WithoutCancel(ctx), r.workers)
	rc := &r.rt
	name := fmt.Sprintf("v%d-%s", rewrite.Version, sumHex) // of the rewritten module
	code, cached, err := r.rt.rewritten(name, wasmBytes)
	c.interrupt = err == nil
	if err != nil {
		// Not rewritable (see package rewrite): compiled unchanged by the
		// runtime that checks for the deadline itself.
		code, name = wasmBytes, sumHex
		rc, err = r.safeRuntime(ctx)
	}
	hit := false
	marker := ""
	var cm wazero.CompiledModule
	if err == nil {
		if rc.markDir != "" {
			marker = filepath.Join(rc.markDir, name)
			if _, err := os.Stat(marker); err == nil {
				hit = true
			}
		}
		c.rt = rc.rt
		cm, err = rc.rt.CompileModule(cctx, code)
		if err != nil && cached {
			// A damaged cache file: rewrite the module again.
			rc.forgetRewritten(name)
			if code, err = rewrite.Rewrite(wasmBytes); err == nil {
				cm, err = rc.rt.CompileModule(cctx, code)
			}
		}
	}
	if err == nil {
		c.cm = cm
		c.abi, err = DetectABI(cm)
		if err != nil {
			cm.Close(context.Background())
			c.cm = nil
		}
	}
	if err != nil {
		return nil, r.compileFailed(c, err)
	}
	if hit {
		r.diskHits.Add(1)
	} else {
		r.compiles.Add(1)
		if marker != "" {
			_ = os.WriteFile(marker, nil, 0o600)
		}
	}
	close(c.ready)
	return c, nil
}

// rewritten returns wasmBytes rewritten with interrupt checks
// (package rewrite), read from the disk cache under name when an earlier
// rewrite stored it there (cached true): rewriting a Go module takes
// tens of milliseconds, paid otherwise at every start of the process for
// every function.
func (rc *runtimeCache) rewritten(name string, wasmBytes []byte) (code []byte, cached bool, err error) {
	p := ""
	if rc.rewriteDir != "" {
		p = filepath.Join(rc.rewriteDir, name+".wasm")
		if b, err := os.ReadFile(p); err == nil {
			return b, true, nil
		}
	}
	code, err = rewrite.Rewrite(wasmBytes)
	if err != nil || p == "" {
		return code, false, err
	}
	// Best effort, and whole or not at all: written aside, renamed.
	if f, err := os.CreateTemp(rc.rewriteDir, ".tmp-*"); err == nil {
		_, werr := f.Write(code)
		if cerr := f.Close(); werr == nil && cerr == nil {
			werr = os.Rename(f.Name(), p)
		}
		if werr != nil {
			os.Remove(f.Name())
		}
	}
	return code, false, nil
}

// forgetRewritten removes a cached rewrite that did not compile.
func (rc *runtimeCache) forgetRewritten(name string) {
	if rc.rewriteDir != "" {
		os.Remove(filepath.Join(rc.rewriteDir, name+".wasm"))
	}
}

// compileFailed publishes err to the callers waiting on c and forgets c,
// so a later Load tries again.
func (r *Runtime) compileFailed(c *compiled, err error) error {
	c.err = err
	r.mu.Lock()
	delete(r.compiled, c.key)
	if c.sum != "" && r.byModule[c.sum] == c {
		delete(r.byModule, c.sum)
	}
	r.mu.Unlock()
	close(c.ready)
	return err
}

// removeStaleTemps deletes what an interrupted write left in dir.
func removeStaleTemps(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// sha256FileHex hashes the file at p as it streams.
func sha256FileHex(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// release drops one reference to c. Code no Module uses is kept for a
// later Load of the same key, up to Config.KeepIdleCompiled modules; the
// least recently released beyond that are freed.
func (r *Runtime) release(c *compiled) {
	var free []*compiled
	r.mu.Lock()
	c.refs--
	if c.refs == 0 {
		if c.cm == nil || r.closed || r.keepIdle < 0 {
			free = append(free, c)
		} else {
			c.elem = r.idle.PushFront(c)
		}
		for r.idle.Len() > max(r.keepIdle, 0) {
			old := r.idle.Remove(r.idle.Back()).(*compiled)
			old.elem = nil
			free = append(free, old)
		}
		for _, f := range free {
			if r.compiled[f.key] == f {
				delete(r.compiled, f.key)
			}
			if f.sum != "" && r.byModule[f.sum] == f {
				delete(r.byModule, f.sum)
			}
		}
	}
	r.mu.Unlock()
	for _, f := range free {
		switch {
		case f.alias != nil:
			r.release(f.alias)
		case f.cm != nil:
			f.cm.Close(context.Background())
		}
	}
}

// Exports the ABIs are detected by.
const (
	exportStart      = "_start"
	exportInitialize = "_initialize"
	exportHandle     = "isotope_handle"
	exportAlloc      = "isotope_alloc"
	exportMemory     = "memory"
	exportABIVersion = "isotope_abi_version"
)

// ErrNoEntry is DetectABI's error for a module that exports no entry of
// either ABI.
var ErrNoEntry = errors.New("module exports neither _start (a WASI command, run as WAGI) nor _initialize with isotope_handle (Isotope's reactor ABI)")

// DetectABI says which ABI a compiled module speaks from its exports
// (docs/reactor-abi.md): a reactor exports isotope_handle (with
// isotope_alloc and memory, else an error names what is missing), or
// _initialize without _start; a WAGI command exports _start. Builders
// check their output with it too (internal/wasmbuild).
func DetectABI(cm wazero.CompiledModule) (ABI, error) {
	fns := cm.ExportedFunctions()
	_, hasStart := fns[exportStart]
	_, hasInit := fns[exportInitialize]
	_, hasHandle := fns[exportHandle]
	_, hasAlloc := fns[exportAlloc]
	_, hasMem := cm.ExportedMemories()[exportMemory]
	switch {
	case hasHandle || (hasInit && !hasStart):
		var missing []string
		if !hasHandle {
			missing = append(missing, exportHandle)
		}
		if !hasAlloc {
			missing = append(missing, exportAlloc)
		}
		if !hasMem {
			missing = append(missing, "memory")
		}
		if len(missing) > 0 {
			return 0, fmt.Errorf("reactor module (exports %s) lacks the export(s) %s of Isotope's reactor ABI (docs/reactor-abi.md); build Go functions with the Isotope Go SDK, Rust ones with its Rust helper (sdk/rust/isotope.rs)",
				firstOf(hasInit, exportInitialize, exportHandle), strings.Join(missing, ", "))
		}
		return ABIReactor, nil
	case hasStart:
		return ABIWAGI, nil
	}
	return 0, ErrNoEntry
}

func firstOf(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// FindModule resolves path to a .wasm file: path itself if it is a file,
// else the only .wasm file under the directory path.
func FindModule(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return path, nil
	}
	var found []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".wasm") {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("directory %s holds no .wasm file", path)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("directory %s holds %d .wasm files (%s); it must hold exactly one", path, len(found), strings.Join(found, ", "))
}
