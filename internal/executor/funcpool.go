package executor

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
)

// fnPool holds the specialized instances of one version of one function
// and admits requests to them. Both strategies use it; they differ in
// policy (strategy.admission) and in where instances come from
// (strategy.instance, through poolHost.provide).
//
// Admission, in order: a free request slot on a live instance; else, if
// no specialization of this function is in flight and the instance limit
// allows, start one (never more than one at a time, so a burst of cold
// requests costs one specialization, not one per request: fission#2452)
// and wait for a slot; newdeploy instead overloads its least busy
// instance once it has one; poolmgr at its limit queues a bounded number
// of requests and answers 429 beyond.
type fnPool struct {
	h   poolHost
	key fnKey

	mu           sync.Mutex
	fn           *v1.Function // latest object seen for this version
	res          instance.Function
	resolved     bool
	insts        []*inst
	specializing int
	waiters      []*waiter
	retired      bool // a newer version exists, or the function is gone
	lastUsed     time.Time
}

// fnKey is one version of one function. Instances of another version
// never serve it.
type fnKey struct {
	uid        string
	generation int64
	pkgRV      string
}

func keyOf(fn *v1.Function) fnKey {
	return fnKey{uid: string(fn.UID), generation: fn.Generation, pkgRV: fn.Spec.Package.PackageRef.ResourceVersion}
}

// inst is a specialized instance in a pool.
type inst struct {
	ins      instance.Instance
	active   int
	uses     int
	lastUsed time.Time
	// spec is the span of the specialization that made the instance
	// (invalid while tracing is off): a request that waited for it links
	// to it.
	spec trace.SpanContext
}

type waiter struct {
	ch chan grant // buffered 1
}

// poolHost is what a function's pool needs of the executor, and all it
// may use of it.
type poolHost interface {
	// resolve reads fn's environment and package and checks that a
	// runtime serves the environment.
	resolve(ctx context.Context, fn *v1.Function) (instance.Function, error)
	// admission is fn's admission policy (strategy, runtime, limits).
	admission(fn *v1.Function, res instance.Function) limits
	// provide makes a specialized instance for res.
	// Its span (a child of parent) is returned for requests to link to.
	provide(res instance.Function, parent trace.SpanContext) (instance.Instance, trace.SpanContext, error)
	// discard closes ins in the background.
	discard(ins instance.Instance)
	// background runs f, tracked so that Close waits for it.
	background(f func())
	// closing reports whether the executor is shutting down.
	closing() bool
	// counted adds delta to the specialized instances of fn; rejected
	// counts a request refused at fn's concurrency limit.
	counted(fn *v1.Function, res instance.Function, delta float64)
	rejected(fn *v1.Function)
}

type grant struct {
	in   *inst
	cold bool
	err  error
}

// limitsLocked is the pool's admission policy for its function now.
func (p *fnPool) limitsLocked() limits { return p.h.admission(p.fn, p.res) }

// freeLocked returns a live instance with a free slot, or nil.
func (p *fnPool) freeLocked(l limits) *inst {
	for _, in := range p.insts {
		if in.active < l.slots && (!l.onceOnly || in.uses == 0) && in.ins.Alive() {
			return in
		}
	}
	return nil
}

// acquire admits one request. errRetired means the pool was replaced
// meanwhile: the caller looks the function up again.
func (p *fnPool) acquire(ctx context.Context) (*lease, error) {
	p.mu.Lock()
	if p.retired {
		p.mu.Unlock()
		return nil, errRetired
	}
	l := p.limitsLocked()
	p.lastUsed = time.Now()
	if in := p.freeLocked(l); in != nil {
		in.active++
		in.uses++
		p.mu.Unlock()
		return &lease{pool: p, in: in}, nil
	}
	if !p.resolved {
		// Cold path: read the environment and package first so that a
		// missing or unbuilt one is reported at once.
		fn := p.fn
		p.mu.Unlock()
		res, err := p.h.resolve(ctx, fn)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		if !p.resolved {
			p.res, p.resolved = res, true
		}
		// The limits depend on the resolved runtime (a wasm module serves
		// many requests at once): recompute them whoever resolved first.
		l = p.limitsLocked()
		if p.retired {
			p.mu.Unlock()
			return nil, errRetired
		}
		if in := p.freeLocked(l); in != nil {
			in.active++
			in.uses++
			p.mu.Unlock()
			return &lease{pool: p, in: in}, nil
		}
	}
	live := p.liveLocked()
	total := live + p.specializing
	if l.overload && live > 0 {
		// newdeploy: scale out in the background, serve now.
		if total < l.maxInstances && p.specializing == 0 {
			p.startLockedFor(parentOf(ctx))
		}
		in := p.leastBusyLocked()
		in.active++
		in.uses++
		p.mu.Unlock()
		return &lease{pool: p, in: in}, nil
	}
	switch {
	case total < l.maxInstances && (l.onceOnly || p.specializing == 0):
		p.startLockedFor(parentOf(ctx))
	case total >= l.maxInstances && len(p.waiters) >= l.queue:
		p.mu.Unlock()
		p.h.rejected(p.fn)
		return nil, errorf(http.StatusTooManyRequests, "function %s/%s: concurrency limit reached (%d instances × %d requests, %d queued)",
			p.fn.Namespace, p.fn.Name, l.maxInstances, l.slots, len(p.waiters))
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()

	select {
	case g := <-w.ch:
		if g.err != nil {
			return nil, g.err
		}
		if g.cold {
			linkSpecialization(ctx, g.in.spec)
		}
		return &lease{pool: p, in: g.in, cold: g.cold}, nil
	case <-ctx.Done():
		p.mu.Lock()
		for i, x := range p.waiters {
			if x == w {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				p.mu.Unlock()
				return nil, fmt.Errorf("function %s/%s: waiting for an instance: %w", p.fn.Namespace, p.fn.Name, ctx.Err())
			}
		}
		p.mu.Unlock()
		// Granted while giving up: hand the slot back.
		if g := <-w.ch; g.err == nil {
			(&lease{pool: p, in: g.in}).Release(nil)
		}
		return nil, fmt.Errorf("function %s/%s: waiting for an instance: %w", p.fn.Namespace, p.fn.Name, ctx.Err())
	}
}

func (p *fnPool) liveLocked() int {
	n := 0
	for _, in := range p.insts {
		if in.ins.Alive() {
			n++
		}
	}
	return n
}

func (p *fnPool) leastBusyLocked() *inst {
	var best *inst
	for _, in := range p.insts {
		if in.ins.Alive() && (best == nil || in.active < best.active) {
			best = in
		}
	}
	return best
}

// startLocked begins one specialization in the background.
func (p *fnPool) startLocked() { p.startLockedFor(trace.SpanContext{}) }

// startLockedFor begins one specialization in the background for the
// request whose span is parent: the specialization's span hangs under it.
func (p *fnPool) startLockedFor(parent trace.SpanContext) {
	p.specializing++
	res := p.res
	res.Fn = p.fn
	p.h.background(func() {
		in, spec, err := p.h.provide(res, parent)
		p.finish(in, spec, err)
	})
}

// finish records the outcome of a specialization and serves waiters.
func (p *fnPool) finish(ins instance.Instance, spec trace.SpanContext, err error) {
	p.mu.Lock()
	p.specializing--
	if err != nil {
		p.failWaitersLocked(err)
		p.mu.Unlock()
		return
	}
	in := &inst{ins: ins, lastUsed: time.Now(), spec: spec}
	if p.h.closing() {
		p.mu.Unlock()
		p.h.discard(ins)
		return
	}
	p.insts = append(p.insts, in)
	p.h.counted(p.fn, p.res, 1)
	p.dispatchLocked(in)
	var drop []*inst
	if p.retired && in.active == 0 {
		drop = p.removeLocked(in)
	}
	p.mu.Unlock()
	for _, d := range drop {
		p.h.discard(d.ins)
	}
}

// failWaitersLocked reports a failed specialization: to every waiter when
// nothing else can serve them, else (onceOnly) to one.
func (p *fnPool) failWaitersLocked(err error) {
	l := p.limitsLocked()
	n := len(p.waiters)
	if p.liveLocked() > 0 && !l.onceOnly {
		n = 0 // existing instances will serve them as they free up
	} else if l.onceOnly {
		n = min(n, 1)
	}
	for _, w := range p.waiters[:n] {
		w.ch <- grant{err: err}
	}
	p.waiters = p.waiters[n:]
	if len(p.waiters) > 0 && p.liveLocked() == 0 && p.specializing == 0 {
		// onceOnly waiters still queued: try again for them.
		p.startLocked()
	}
}

// dispatchLocked hands free slots to waiters, first come first served;
// fresh (the instance just specialized, or nil) marks cold grants. If
// waiters remain, it starts one more specialization when allowed.
func (p *fnPool) dispatchLocked(fresh *inst) {
	l := p.limitsLocked()
	for len(p.waiters) > 0 {
		in := p.freeLocked(l)
		if in == nil {
			break
		}
		cold := in == fresh && in.uses == 0
		in.active++
		in.uses++
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.ch <- grant{in: in, cold: cold}
	}
	if len(p.waiters) > 0 && !p.retired && p.liveLocked()+p.specializing < l.maxInstances && (l.onceOnly || p.specializing == 0) {
		p.startLocked()
	}
}

// release ends one request on in.
func (p *fnPool) release(in *inst) {
	p.mu.Lock()
	in.active--
	in.lastUsed = time.Now()
	l := p.limitsLocked()
	var drop []*inst
	if !in.ins.Alive() || (l.onceOnly && in.active == 0) || (p.retired && in.active == 0) {
		drop = p.removeLocked(in)
	}
	p.dispatchLocked(nil)
	p.mu.Unlock()
	for _, d := range drop {
		p.h.discard(d.ins)
	}
}

// removeLocked takes in out of the pool and returns it for closing.
func (p *fnPool) removeLocked(in *inst) []*inst {
	for i, x := range p.insts {
		if x == in {
			p.insts = append(p.insts[:i], p.insts[i+1:]...)
			p.h.counted(p.fn, p.res, -1)
			return []*inst{in}
		}
	}
	return nil
}

// retire stops admitting requests: a newer version of the function
// replaced this one, or it was deleted. Idle instances close now, busy
// ones when their last request ends; queued requests are sent back to
// look the function up again.
func (p *fnPool) retire() {
	p.mu.Lock()
	p.retired = true
	// Queued requests go to the new version (Manager.Acquire retries).
	for _, w := range p.waiters {
		w.ch <- grant{err: errRetired}
	}
	p.waiters = nil
	var drop []*inst
	for _, in := range append([]*inst(nil), p.insts...) {
		if in.active == 0 {
			drop = append(drop, p.removeLocked(in)...)
		}
	}
	p.mu.Unlock()
	for _, d := range drop {
		p.h.discard(d.ins)
	}
}

// reap closes instances idle past the idle timeout (keeping retainPods,
// or newdeploy's MinScale) and dead ones; newdeploy tops up to MinScale.
// It reports whether the pool is empty and retired (can be forgotten).
func (p *fnPool) reap(now time.Time) (gone bool) {
	p.mu.Lock()
	l := p.limitsLocked()
	keep := l.retain
	if l.overload {
		keep = l.minInstances
	}
	if p.retired {
		keep = 0
	}
	var drop []*inst
	// Newest-used first, so the retained ones are the warmest.
	idle := 0
	for i := len(p.insts) - 1; i >= 0; i-- {
		in := p.insts[i]
		switch {
		case !in.ins.Alive() && in.active == 0:
			drop = append(drop, p.removeLocked(in)...)
		case in.active == 0 && (p.retired || now.Sub(in.lastUsed) >= l.idle):
			if idle < keep {
				idle++
				continue
			}
			drop = append(drop, p.removeLocked(in)...)
		}
	}
	if !p.retired && l.overload && p.resolved {
		for n := p.liveLocked() + p.specializing; n < l.minInstances; n++ {
			p.startLocked()
		}
	}
	gone = p.retired && len(p.insts) == 0 && p.specializing == 0 && len(p.waiters) == 0
	p.mu.Unlock()
	for _, d := range drop {
		p.h.discard(d.ins)
	}
	return gone
}

// ensureMin starts instances up to newdeploy's initial scale,
// max(MinScale, 1), resolving the function first. Errors (a package not
// built yet …) are returned; the next function update retries.
func (p *fnPool) ensureMin(ctx context.Context) error {
	p.mu.Lock()
	fn, resolved := p.fn, p.resolved
	p.mu.Unlock()
	if !resolved {
		res, err := p.h.resolve(ctx, fn)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if !p.resolved {
			p.res, p.resolved = res, true
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.retired {
		return nil
	}
	l := p.limitsLocked()
	for n := p.liveLocked() + p.specializing; n < max(l.minInstances, 1); n++ {
		p.startLocked()
	}
	return nil
}

// lease implements Lease.
type lease struct {
	pool *fnPool
	in   *inst
	cold bool
	once sync.Once
}

func (l *lease) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.in.ins.ServeHTTP(w, r) }
func (l *lease) ColdStart() bool                                  { return l.cold }

// Release implements Lease. The instance judges its own health (a
// transport failure or an exit makes it not Alive); err is not needed
// for that and may be nil.
func (l *lease) Release(err error) { l.once.Do(func() { l.pool.release(l.in) }) }
