package executor

import (
	"context"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/store"
)

// Run reconciles Functions, Environments and Packages and reaps idle
// instances every ReapInterval, until ctx ends or the executor closes. It
// keeps instances in step with the store:
//   - a newdeploy Function gets its instances as soon as it appears
//     (max(MinScale, 1)), and new ones when it changes;
//   - a deleted Function, or a changed or deleted Environment or deploy
//     archive, retires the instances that ran the old one;
//   - an Environment gets its warm pool (poolmgr) as soon as it appears.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	var ctrls []*controller.Controller
	for _, cc := range []controller.Config{
		{Kind: v1.KindFunction, Name: "executor-functions", Reconcile: m.reconcileFunction},
		{Kind: v1.KindEnvironment, Name: "executor-environments", Reconcile: m.reconcileEnvironment},
		{Kind: v1.KindPackage, Name: "executor-packages", Reconcile: m.reconcilePackage},
	} {
		cc.Store, cc.Logger = m.cfg.Store, m.log
		c, err := controller.New(cc)
		if err != nil {
			return err
		}
		ctrls = append(ctrls, c)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		controller.RunAll(ctx, ctrls...)
	}()
	t := time.NewTicker(m.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case now := <-t.C:
			m.reap(now)
		}
	}
}

// reconcileFunction keeps the instances of the Function key in step with
// it: a deleted (or replaced) function's pool is retired, a newdeploy
// function gets its instances, a poolmgr one of a newer version replaces
// the older version's pool and is preloaded.
func (m *Manager) reconcileFunction(ctx context.Context, key controller.Key) error {
	fn, err := store.GetAs[*v1.Function](ctx, m.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil {
		fn = nil
	}
	// The pools of a function of this name that is gone: deleted, or
	// deleted and created again (another UID).
	m.mu.Lock()
	var gone []*fnPool
	for id, p := range m.pools {
		p.mu.Lock()
		match := p.fn.Namespace == key.Namespace && p.fn.Name == key.Name && (fn == nil || p.fn.UID != fn.UID)
		p.mu.Unlock()
		if match {
			delete(m.pools, id)
			m.old[p] = true
			gone = append(gone, p)
		}
	}
	m.mu.Unlock()
	for _, p := range gone {
		p.retire()
	}
	if fn == nil {
		return nil
	}
	if executorType(fn) == v1.ExecutorTypeNewdeploy {
		p, err := m.poolFor(fn)
		if err != nil {
			return nil // shutting down
		}
		m.ensureAsync(p)
		return nil
	}
	// poolmgr: replace the instances of an older version right away.
	m.mu.Lock()
	p := m.pools[poolID(fn)]
	m.mu.Unlock()
	if p != nil && p.key != keyOf(fn) && fn.Generation >= p.key.generation {
		m.poolFor(fn)
	}
	m.preloadAsync(fn)
	return nil
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

// reconcileEnvironment retires the warm pool and the function instances
// of the Environment key's older versions (all of them when it is gone),
// preloads the retired functions again and refills its warm pool.
func (m *Manager) reconcileEnvironment(ctx context.Context, key controller.Key) error {
	env, err := store.GetAs[*v1.Environment](ctx, m.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil {
		env = nil
	}
	// stale: an environment version instances were made from that is no
	// longer the stored one.
	stale := func(e *v1.Environment) bool {
		return e.Namespace == key.Namespace && e.Name == key.Name &&
			(env == nil || e.UID != env.UID || e.ResourceVersion != env.ResourceVersion)
	}
	m.mu.Lock()
	for id, e := range m.envs {
		if stale(e.env) {
			delete(m.envs, id)
			e.close()
		}
	}
	m.mu.Unlock()
	retired := m.retireWhere(func(p *fnPool) bool { return p.res.Env != nil && stale(p.res.Env) })
	if env == nil {
		return nil
	}
	for _, p := range retired {
		m.preloadAsync(p.fn)
	}
	if rt, err := m.runtimeFor(env); err == nil && rt.Pooled() && poolSize(env, m.cfg.Limits) > 0 {
		m.envPoolFor(env, rt).refill()
	}
	return nil
}

// reconcilePackage retires the instances that run another deploy archive
// than the Package key's (all of them when it is gone); once it can be
// served, it prepares a WebAssembly package that is new to this executor
// and preloads the functions that use it.
func (m *Manager) reconcilePackage(ctx context.Context, key controller.Key) error {
	pkg, err := store.GetAs[*v1.Package](ctx, m.cfg.Store, key.Namespace, key.Name)
	if err != nil && !store.IsNotFound(err) {
		return err
	}
	if err != nil {
		pkg = nil
	}
	m.retireWhere(func(p *fnPool) bool {
		return p.res.Pkg != nil && p.res.Pkg.Namespace == key.Namespace && p.res.Pkg.Name == key.Name &&
			(pkg == nil || deployFingerprint(p.res.Pkg) != deployFingerprint(pkg))
	})
	changed := m.packageChanged(key, pkg)
	if pkg == nil || m.wasmRT == nil {
		return nil
	}
	if _, err := servable(pkg); err != nil {
		return nil
	}
	// A package changed, or stored since the executor started (not one
	// the start-up list of the store brings back).
	if changed || !pkg.CreationTimestamp.Time.Before(m.started.Truncate(time.Second)) {
		m.prepareAsync(pkg)
	}
	// The package became servable (or its archive changed): preload the
	// WebAssembly functions that use it. Functions that point at an
	// older resourceVersion of it are about to be bumped by whoever
	// changed it (builder manager, CLI), and preloading them now would
	// load the same archive twice; their update reconcile preloads them.
	objs, _, err := m.cfg.Store.List(ctx, v1.KindFunction, store.ListOptions{Namespace: pkg.Namespace})
	if err != nil {
		return err
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
	return nil
}

// packageChanged reports whether pkg (nil: gone) is another version of
// the package key than the first this executor saw of it.
func (m *Manager) packageChanged(key controller.Key, pkg *v1.Package) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pkg == nil {
		delete(m.pkgFirstSeen, key)
		return false
	}
	first, ok := m.pkgFirstSeen[key]
	if !ok {
		m.pkgFirstSeen[key] = pkg.ResourceVersion
		return false
	}
	return first != pkg.ResourceVersion
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
