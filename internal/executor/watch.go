package executor

import (
	"context"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// Run watches Functions, Environments and Packages and reaps idle
// instances every ReapInterval, until ctx ends. It keeps instances in
// step with the store:
//   - a newdeploy Function gets its instances as soon as it appears
//     (max(MinScale, 1)), and new ones when it changes;
//   - a deleted Function, or a changed or deleted Environment or deploy
//     archive, retires the instances that ran the old one;
//   - an Environment gets its warm pool (poolmgr) as soon as it appears.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for kind, handle := range map[string]func(context.Context, store.Event){
		v1.KindFunction:    m.onFunction,
		v1.KindEnvironment: m.onEnvironment,
		v1.KindPackage:     m.onPackage,
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.watch(ctx, kind, handle)
		}()
	}
	t := time.NewTicker(m.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-m.ctx.Done():
			wg.Wait()
			return nil
		case now := <-t.C:
			m.reap(now)
		}
	}
}

// watch delivers kind's events to handle, re-opening the watch when it
// ends (from the last resourceVersion seen, or afresh if that expired).
func (m *Manager) watch(ctx context.Context, kind string, handle func(context.Context, store.Event)) {
	rv := ""
	delay := 50 * time.Millisecond
	for ctx.Err() == nil && m.ctx.Err() == nil {
		w, err := m.cfg.Store.Watch(ctx, kind, store.WatchOptions{ResourceVersion: rv})
		if store.IsExpired(err) {
			rv = ""
			continue
		}
		if err != nil {
			m.log.Warn("executor watch failed; retrying", "kind", kind, "err", err)
			select {
			case <-ctx.Done():
			case <-m.ctx.Done():
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
			continue
		}
		delay = 50 * time.Millisecond
	events:
		for {
			select {
			case <-ctx.Done():
				break events
			case <-m.ctx.Done():
				break events
			case ev, ok := <-w.ResultChan():
				if !ok {
					break events
				}
				if ev.Object != nil {
					rv = ev.Object.GetResourceVersion()
				}
				if ev.Type != store.Bookmark {
					handle(ctx, ev)
				}
			}
		}
		w.Stop()
	}
}

func (m *Manager) onFunction(ctx context.Context, ev store.Event) {
	fn, ok := ev.Object.(*v1.Function)
	if !ok {
		return
	}
	id := poolID(fn)
	if ev.Type == store.Deleted {
		m.mu.Lock()
		p := m.pools[id]
		delete(m.pools, id)
		if p != nil {
			m.old[p] = true
		}
		m.mu.Unlock()
		if p != nil {
			p.retire()
		}
		return
	}
	if executorType(fn) == v1.ExecutorTypeNewdeploy {
		p, err := m.poolFor(fn)
		if err != nil {
			return
		}
		m.ensureAsync(p)
		return
	}
	// poolmgr: replace the instances of an older version right away.
	m.mu.Lock()
	p := m.pools[id]
	m.mu.Unlock()
	if p != nil && p.key != keyOf(fn) && fn.Generation >= p.key.generation {
		m.poolFor(fn)
	}
	m.preloadAsync(fn)
}

// preloadAsync loads a poolmgr WebAssembly function in the background as
// soon as it and a servable package exist (at start-up too: the watch
// begins with every stored function), so its first request finds the
// module fetched, compiled and its reactor instances warm. It goes
// through the pool's usual single-flight specialization, so a request
// arriving meanwhile waits for the same load instead of starting
// another. A failed preload is logged; the next request tries again.
// Process runtimes are not preloaded: poolmgr starts them on demand.
func (m *Manager) preloadAsync(fn *v1.Function) {
	if executorType(fn) == v1.ExecutorTypeNewdeploy {
		return
	}
	m.bg.Go(func() {
		envNs := orDefault(fn.Spec.Environment.Namespace, fn.Namespace)
		env, err := store.GetAs[*v1.Environment](m.ctx, m.cfg.Store, envNs, fn.Spec.Environment.Name)
		if err != nil || !IsWasmEnvImage(env.Spec.Runtime.Image) {
			return // not a wasm function (or no environment yet)
		}
		if _, err := m.runtimeFor(env); err != nil {
			return // no runtime serves it here
		}
		p, err := m.poolFor(fn)
		if err != nil {
			return
		}
		if err := p.ensureMin(m.ctx); err != nil && m.ctx.Err() == nil {
			m.log.Info("function not preloaded; its first request will load it", "function", fn.Namespace+"/"+fn.Name, "reason", err)
		}
	})
}

// prepareAsync readies a WebAssembly package's code in the background as
// soon as the package can be served (instance.Preparer), before any
// function of it exists: after a build, the first function then loads
// compiled code instead of compiling it (a second and more for a Go
// guest). Each deploy archive is prepared once, one at a time; a failure
// is logged at debug level, and the first function's load reports it.
func (m *Manager) prepareAsync(pkg *v1.Package) {
	prep, ok := m.wasmRT.(instance.Preparer)
	sum := pkg.Spec.Deployment.Checksum.Sum
	if !ok || sum == "" {
		return
	}
	m.mu.Lock()
	if m.prepared[sum] || m.closed {
		m.mu.Unlock()
		return
	}
	m.prepared[sum] = true
	m.mu.Unlock()
	m.bg.Go(func() {
		envNs := orDefault(pkg.Spec.Environment.Namespace, pkg.Namespace)
		env, err := store.GetAs[*v1.Environment](m.ctx, m.cfg.Store, envNs, pkg.Spec.Environment.Name)
		if err != nil || !IsWasmEnvImage(env.Spec.Runtime.Image) {
			return // not a wasm package (or no environment yet)
		}
		select {
		case m.prepSem <- struct{}{}:
		case <-m.ctx.Done():
			return
		}
		defer func() { <-m.prepSem }()
		if err := prep.Prepare(m.ctx, pkg); err != nil && m.ctx.Err() == nil {
			m.mu.Lock()
			delete(m.prepared, sum) // a later event may try again
			m.mu.Unlock()
			m.log.Debug("package not prepared; its first function will load it", "package", pkg.Namespace+"/"+pkg.Name, "reason", err)
		}
	})
}

// ensureAsync starts newdeploy's initial instances in the background.
func (m *Manager) ensureAsync(p *fnPool) {
	m.bg.Go(func() {
		if err := p.ensureMin(m.ctx); err != nil {
			m.log.Info("newdeploy function not started yet", "function", p.fn.Namespace+"/"+p.fn.Name, "reason", err)
		}
	})
}

func (m *Manager) onEnvironment(ctx context.Context, ev store.Event) {
	env, ok := ev.Object.(*v1.Environment)
	if !ok {
		return
	}
	m.mu.Lock()
	if e := m.envs[string(env.UID)]; e != nil && (ev.Type == store.Deleted || e.env.ResourceVersion != env.ResourceVersion) {
		delete(m.envs, string(env.UID))
		e.close()
	}
	m.mu.Unlock()
	retired := m.retireWhere(func(p *fnPool) bool {
		return p.res.Env != nil && p.res.Env.UID == env.UID &&
			(ev.Type == store.Deleted || p.res.Env.ResourceVersion != env.ResourceVersion)
	})
	if ev.Type == store.Deleted {
		return
	}
	for _, p := range retired {
		m.preloadAsync(p.fn)
	}
	if rt, err := m.runtimeFor(env); err == nil && rt.Pooled() && poolSize(env, m.cfg.Limits) > 0 {
		m.envPoolFor(env, rt).refill()
	}
}

func (m *Manager) onPackage(ctx context.Context, ev store.Event) {
	pkg, ok := ev.Object.(*v1.Package)
	if !ok {
		return
	}
	m.retireWhere(func(p *fnPool) bool {
		return p.res.Pkg != nil && p.res.Pkg.Namespace == pkg.Namespace && p.res.Pkg.Name == pkg.Name &&
			(ev.Type == store.Deleted || deployFingerprint(p.res.Pkg) != deployFingerprint(pkg))
	})
	if ev.Type == store.Deleted || m.wasmRT == nil {
		return
	}
	if _, err := servable(pkg); err != nil {
		return
	}
	// A package changed, or stored since the executor started (not one
	// the start-up replay of the watch brings back).
	if ev.Type == store.Modified || !pkg.CreationTimestamp.Time.Before(m.started.Truncate(time.Second)) {
		m.prepareAsync(pkg)
	}
	// The package became servable (or its archive changed): preload the
	// WebAssembly functions that use it. Functions that point at an
	// older resourceVersion of it are about to be bumped by whoever
	// changed it (builder manager, CLI), and preloading them now would
	// load the same archive twice; their update event preloads them.
	objs, _, err := m.cfg.Store.List(ctx, v1.KindFunction, store.ListOptions{Namespace: pkg.Namespace})
	if err != nil {
		return
	}
	for _, o := range objs {
		fn, ok := o.(*v1.Function)
		if !ok {
			continue
		}
		ref := fn.Spec.Package.PackageRef
		if ref.Name == pkg.Name && orDefault(ref.Namespace, fn.Namespace) == pkg.Namespace &&
			(ref.ResourceVersion == "" || ref.ResourceVersion == pkg.ResourceVersion) {
			m.preloadAsync(fn)
		}
	}
}

// retireWhere retires the resolved pools matching match (read under the
// pool's lock), starts newdeploy replacements and returns the retired
// pools.
func (m *Manager) retireWhere(match func(*fnPool) bool) []*fnPool {
	m.mu.Lock()
	var hit []*fnPool
	for id, p := range m.pools {
		p.mu.Lock()
		ok := p.resolved && !p.retired && match(p)
		p.mu.Unlock()
		if ok {
			hit = append(hit, p)
			delete(m.pools, id)
			m.old[p] = true
		}
	}
	m.mu.Unlock()
	for _, p := range hit {
		p.retire()
		if executorType(p.fn) == v1.ExecutorTypeNewdeploy {
			if np, err := m.poolFor(p.fn); err == nil {
				m.ensureAsync(np)
			}
		}
	}
	return hit
}

// reap closes idle instances and forgets empty retired pools.
func (m *Manager) reap(now time.Time) {
	m.mu.Lock()
	pools := make(map[*fnPool]string, len(m.pools)+len(m.old))
	for id, p := range m.pools {
		pools[p] = id
	}
	for p := range m.old {
		pools[p] = ""
	}
	m.mu.Unlock()
	for p, id := range pools {
		if p.reap(now) {
			m.mu.Lock()
			if m.pools[id] == p {
				delete(m.pools, id)
			}
			delete(m.old, p)
			m.mu.Unlock()
		}
	}
}
