package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/executor/procrt"
	"isotope.dev/isotope/internal/executor/wasmrt"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/netns"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/tracing"
	"isotope.dev/isotope/internal/wasm"
)

// Config configures the embedded executor.
type Config struct {
	// Store is where Functions, Environments and Packages are read and
	// watched. Required.
	Store store.Store
	// Wasm runs isotope/wasm-env functions in-process; without it those
	// functions fail with 500.
	Wasm *wasm.Runtime
	// Fetcher brings deploy archives into instance directories for the
	// in-process runtimes (embedded mode: the one fetcher.InProcess the
	// server configures, shared with the builder manager). Runtimes that
	// fetch for themselves (pods) need none.
	Fetcher instance.Fetcher
	// Limits clamp pool sizes and newdeploy scales, for objects stored
	// before a limit was lowered (the API refuses new ones past them).
	Limits store.Limits
	// Logs receives function output; nil discards it.
	Logs *fnlog.Store
	// WorkDir holds instance directories and fetched archives. Required.
	// It belongs to this executor alone: what an earlier run left in it
	// (a kill -9 gives no chance to clean up) is removed by New.
	WorkDir string
	Logger  *slog.Logger
	// Registry, when set, gets the executor's metrics.
	Registry *prometheus.Registry

	// IdleTimeout is the default idletimeout (Fission: 120s).
	IdleTimeout time.Duration
	// ReapInterval is how often idle instances are looked for (Fission's
	// objectReaperInterval: 5s).
	ReapInterval time.Duration
	// StartTimeout bounds a process start (default 30s).
	StartTimeout time.Duration
	// Network picks the network of local-process instances (package
	// netns); nil puts them all on the host network.
	Network *netns.Policy
	// QueueLength is how many requests may wait at a poolmgr function's
	// concurrency limit before 429; 0 means concurrency × requestsPerPod.
	QueueLength int
	// WasmMaxInstances caps the guest instances one WebAssembly function
	// may run at once (default 64); see wasmrt.
	WasmMaxInstances int

	// RuntimeFor picks the runtime of an environment, the second axis of
	// the executor (decision 0003): in Kubernetes mode one pod runtime
	// for every environment. Nil means the embedded mode's: wasmrt for
	// isotope/wasm-env images, procrt for environments with a local
	// program, over the fields above.
	RuntimeFor func(*v1.Environment) (instance.Runtime, error)
}

// Manager is the executor: the poolmgr and newdeploy strategies
// (strategy.go) over the runtimes Config.RuntimeFor picks, one pool per
// function version (funcpool.go) and, for poolmgr on runtimes that keep
// them, one warm pool per environment version (envpool.go). It
// implements Executor. Run watches the store and reaps idle instances;
// Close stops every instance.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	wasmRT  instance.Runtime // the embedded in-process runtime, for preparing packages; nil otherwise
	metrics *metrics

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	bg     tracker // background starts, specializations and closes

	mu     sync.Mutex
	pools  map[string]*fnPool  // by function UID
	old    map[*fnPool]bool    // retired pools still holding instances
	envs   map[string]*envPool // by environment UID
	closed bool

	started      time.Time                 // when New ran: packages stored later are prepared
	pkgFirstSeen map[controller.Key]string // resourceVersion of each package when first reconciled
	prepared     map[string]bool           // deploy archive checksums prepared or being prepared
	prepSem      chan struct{}             // one package prepared at a time
}

var _ Executor = (*Manager)(nil)

// errRetired is internal: the pool was replaced during an Acquire.
var errRetired = errors.New("function instances were replaced")

// New returns an executor. Call Run to watch the store and Close to stop
// every instance.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, errors.New("executor: Config.Store is nil")
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("executor: Config.WorkDir is empty")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = 5 * time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	met, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("executor: register metrics: %w", err)
	}
	m := &Manager{
		cfg:          cfg,
		log:          cfg.Logger,
		metrics:      met,
		pools:        map[string]*fnPool{},
		old:          map[*fnPool]bool{},
		envs:         map[string]*envPool{},
		started:      time.Now(),
		pkgFirstSeen: map[controller.Key]string{},
		prepared:     map[string]bool{},
		prepSem:      make(chan struct{}, 1),
	}
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(newInstanceCollector(m)); err != nil {
			return nil, fmt.Errorf("executor: register metrics: %w", err)
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	sweepWorkDir(cfg.WorkDir, cfg.Logger)
	if cfg.RuntimeFor == nil {
		procRT := procrt.New(procrt.Config{
			WorkDir:      filepath.Join(cfg.WorkDir, "instances"),
			Fetcher:      cfg.Fetcher,
			Logs:         cfg.Logs,
			Logger:       cfg.Logger,
			StartTimeout: cfg.StartTimeout,
			Network:      cfg.Network,
		})
		if cfg.Wasm != nil {
			m.wasmRT = wasmrt.New(wasmrt.Config{
				Wasm:         cfg.Wasm,
				WorkDir:      filepath.Join(cfg.WorkDir, "wasm"),
				Fetcher:      cfg.Fetcher,
				Logs:         cfg.Logs,
				MaxInstances: cfg.WasmMaxInstances,
			})
		}
		m.cfg.RuntimeFor = embeddedRuntimes(m.wasmRT, procRT)
	}
	return m, nil
}

// Acquire implements Executor.
func (m *Manager) Acquire(ctx context.Context, fn *v1.Function) (Lease, error) {
	ctx, span := traceAcquire(ctx, fn)
	l, err := m.acquire(ctx, fn)
	endAcquire(span, l, err)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (m *Manager) acquire(ctx context.Context, fn *v1.Function) (*lease, error) {
	for range 10 {
		p, err := m.poolFor(fn)
		if err != nil {
			return nil, err
		}
		l, err := p.acquire(ctx)
		if errors.Is(err, errRetired) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if l.cold {
			m.metrics.coldStarts.WithLabelValues(string(executorType(fn))).Inc()
		}
		return l, nil
	}
	return nil, errorf(http.StatusServiceUnavailable, "function %s/%s is being updated; try again", fn.Namespace, fn.Name)
}

func poolID(fn *v1.Function) string {
	if fn.UID != "" {
		return string(fn.UID)
	}
	return fn.Namespace + "/" + fn.Name
}

// poolFor returns the pool of fn's version, replacing (retiring) the pool
// of an older version. A stale copy of the function (lower generation)
// is served by the current pool.
func (m *Manager) poolFor(fn *v1.Function) (*fnPool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errorf(http.StatusServiceUnavailable, "executor is shutting down")
	}
	id, key := poolID(fn), keyOf(fn)
	old := m.pools[id]
	if old != nil && !old.retired0() {
		if old.key == key || fn.Generation < old.key.generation {
			return old, nil
		}
	}
	// The pool keeps its own copy: the caller's object may change after
	// Acquire returns.
	p := &fnPool{h: m, key: key, fn: fn.DeepCopy(), lastUsed: time.Now()}
	m.pools[id] = p
	if old != nil {
		m.old[old] = true
		old.retire()
	}
	return p, nil
}

// retired0 reads retired under the pool's lock.
func (p *fnPool) retired0() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retired
}

// provide makes a specialized instance for res: an instance from its
// strategy (poolmgr: the environment's warm pool when the runtime keeps
// one), specialized.
func (m *Manager) provide(res instance.Function, parent trace.SpanContext) (instance.Instance, trace.SpanContext, error) {
	rt, err := m.runtimeFor(res.Env)
	if err != nil {
		return nil, trace.SpanContext{}, err
	}
	et := string(executorType(res.Fn))
	timeout := time.Duration(max(res.Fn.Spec.InvokeStrategy.ExecutionStrategy.SpecializationTimeout, 120)) * time.Second
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	defer cancel()
	ctx, span := traceSpecialize(ctx, parent, res, rt.Name())
	defer span.End()
	start := time.Now()
	fail := func(format string, args ...any) error {
		m.metrics.specializations.WithLabelValues(et, rt.Name(), "failure").Inc()
		err := errorf(http.StatusInternalServerError, format, args...)
		tracing.Fail(span, err)
		m.log.Warn("specialization failed", "function", res.Fn.Namespace+"/"+res.Fn.Name, "err", err)
		if m.cfg.Logs != nil {
			m.cfg.Logs.Append(res.Fn.Namespace, res.Fn.Name, "host", err.Error())
		}
		return err
	}
	ins, err := strategyOf(res.Fn).instance(ctx, m, rt, res.Env)
	if err != nil {
		return nil, trace.SpanContext{}, fail("function %s/%s: start an instance of environment %s/%s: %v", res.Fn.Namespace, res.Fn.Name, res.Env.Namespace, res.Env.Name, err)
	}
	if err := ins.Specialize(ctx, res); err != nil {
		ins.Close()
		return nil, trace.SpanContext{}, fail("function %s/%s: specialize: %v", res.Fn.Namespace, res.Fn.Name, err)
	}
	m.metrics.specializations.WithLabelValues(et, rt.Name(), "success").Inc()
	m.metrics.specSeconds.WithLabelValues(rt.Name()).Observe(time.Since(start).Seconds())
	return ins, span.SpanContext(), nil
}

// envPoolFor returns the warm pool of env's current version, replacing
// the pool of an older version.
func (m *Manager) envPoolFor(env *v1.Environment, rt instance.Runtime) *envPool {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := string(env.UID)
	if e := m.envs[id]; e != nil {
		if e.env.ResourceVersion == env.ResourceVersion || m.closed {
			return e
		}
		e.close()
	}
	e := &envPool{env: env, rt: rt, size: poolSize(env, m.cfg.Limits), h: envHost{
		ctx: m.ctx, startTimeout: m.cfg.StartTimeout, bg: &m.bg, discard: m.closeInstance,
		generic: m.metrics.instances.WithLabelValues(string(v1.ExecutorTypePoolmgr), rt.Name(), "generic"),
		log:     m.log,
	}}
	if m.closed {
		e.closed = true
		return e
	}
	m.envs[id] = e
	return e
}

// closeInstance stops ins in the background (Close waits for it).
func (m *Manager) closeInstance(ins instance.Instance) {
	m.bg.Go(func() {
		ins.Close()
	})
}

func (m *Manager) closing() bool { return m.ctx.Err() != nil }

// The rest of poolHost (funcpool.go).

func (m *Manager) discard(ins instance.Instance) { m.closeInstance(ins) }
func (m *Manager) background(f func())           { m.bg.Go(f) }

func (m *Manager) counted(fn *v1.Function, res instance.Function, delta float64) {
	m.metrics.instances.WithLabelValues(string(executorType(fn)), m.runtimeName(res), "specialized").Add(delta)
}

func (m *Manager) rejected(fn *v1.Function) {
	m.metrics.rejections.WithLabelValues(string(executorType(fn))).Inc()
}

// admission is fn's admission policy: its strategy's, made to fit the
// runtime (one that multiplexes requests itself gets one instance) and
// the executor's idle timeout and queue length.
func (m *Manager) admission(fn *v1.Function, res instance.Function) limits {
	l := strategyOf(fn).admission(fn, m.cfg.Limits)
	l.idle = m.cfg.IdleTimeout
	if s := fn.Spec.IdleTimeout; s != nil && *s > 0 {
		l.idle = time.Duration(*s) * time.Second
	}
	if mx, ok := m.multiplexer(res); ok {
		l.slots = mx.Slots(fn)
		l.maxInstances, l.onceOnly = 1, false
		l.minInstances = min(l.minInstances, 1)
	}
	l.queue = m.cfg.QueueLength
	if l.queue <= 0 {
		l.queue = l.maxInstances * l.slots
	}
	return l
}

// multiplexer reports whether res's runtime multiplexes requests itself.
func (m *Manager) multiplexer(res instance.Function) (instance.Multiplexer, bool) {
	if res.Env == nil {
		return nil, false
	}
	rt, err := m.runtimeFor(res.Env)
	if err != nil {
		return nil, false
	}
	mx, ok := rt.(instance.Multiplexer)
	return mx, ok
}

func (m *Manager) runtimeName(res instance.Function) string {
	if res.Env == nil {
		return "unknown"
	}
	if rt, err := m.runtimeFor(res.Env); err == nil {
		return rt.Name()
	}
	return "unknown"
}

// Close stops every instance, busy or not, and waits until all are gone.
// Acquire fails with 503 afterwards.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	pools := make([]*fnPool, 0, len(m.pools)+len(m.old))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	for p := range m.old {
		pools = append(pools, p)
	}
	envs := m.envs
	m.pools, m.old, m.envs = map[string]*fnPool{}, map[*fnPool]bool{}, map[string]*envPool{}
	m.mu.Unlock()
	shut := errorf(http.StatusServiceUnavailable, "executor is shutting down")
	for _, p := range pools {
		p.mu.Lock()
		p.retired = true
		for _, w := range p.waiters {
			w.ch <- grant{err: shut}
		}
		p.waiters = nil
		insts := p.insts
		p.insts = nil
		p.mu.Unlock()
		for _, in := range insts {
			m.closeInstance(in.ins)
		}
	}
	for _, e := range envs {
		e.close()
	}
	m.bg.Wait()
	return nil
}

// sweepWorkDir removes the instance directories and fetched archives of
// an earlier run: no instance of this process uses them, and after a
// kill -9 nobody else would ever remove them.
func sweepWorkDir(dir string, log *slog.Logger) {
	for _, sub := range []string{"instances", "wasm"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			continue // not there yet
		}
		for _, e := range entries {
			p := filepath.Join(dir, sub, e.Name())
			if err := os.RemoveAll(p); err != nil {
				log.Warn("could not remove what an earlier run left", "path", p, "err", err)
				continue
			}
			log.Info("removed what an earlier run left", "path", p)
		}
	}
}
