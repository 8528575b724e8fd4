package wasm

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// growAfter is how long a request waits for a busy instance before the
// pool starts another. A Go guest answers a simple request in tens of
// microseconds and starts in milliseconds to tens of milliseconds: a
// burst is served sooner by the instances there are, even when the OS
// preempts a thread holding one for a time slice on a loaded machine,
// while requests that hold instances longer (slow handlers, sleeps) make
// the pool grow after this short delay.
const growAfter = 20 * time.Millisecond

// pool keeps a reactor function's instances, each serving one request at
// a time.
//
// Idle instances are reused last-in first-out: the instance that just
// answered still has its memory in the CPU caches, and a Go guest's heap
// and stacks are megabytes, so rotating through every instance (as a
// FIFO queue does) makes each request miss the caches.
//
// A request that finds no idle instance does not start one for itself:
// it waits for the first instance to become free; if it has waited
// growAfter, the pool starts one in the background (at most one per
// waiting request and GOMAXPROCS at a time), which serves whoever waits
// when it is ready, or joins the idle set; while requests still wait
// when a start completes, another begins. Serving a request takes
// microseconds, starting a guest runtime tens of milliseconds of CPU:
// starting one per request that found every instance busy made each
// momentary burst a herd of runtime starts (a third of the CPU with 100
// functions under load).
type pool struct {
	m *Module

	mu       sync.Mutex
	idle     []*instance    // most recently used last
	waiters  []chan taken   // requests waiting for an instance, oldest first
	live     int            // instances alive or starting (≤ MaxInstances)
	starting int            // background starts in progress
	done     bool           // closed: no more starts, puts discard
	wg       sync.WaitGroup // background starts
	maxStart int            // concurrent background starts
}

// taken is what a waiting request receives: an instance, or the error
// of a start that left the function with no instance at all.
type taken struct {
	in  *instance
	err error
}

func newPool(m *Module) *pool {
	return &pool{m: m, maxStart: max(1, runtime.GOMAXPROCS(0))}
}

// warm initializes n instances before returning, so no request waits for
// a guest runtime to start.
func (p *pool) warm(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		p.mu.Lock()
		p.live++
		p.mu.Unlock()
		in, err := p.m.newInstance(ctx)
		if err != nil {
			p.mu.Lock()
			p.live--
			p.mu.Unlock()
			return err
		}
		p.put(in)
	}
	return nil
}

// get returns an idle instance or waits for one until ctx is done,
// starting one in the background when the function is below
// MaxInstances.
func (p *pool) get(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil, p.m.unloaded()
	}
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	w := make(chan taken, 1)
	p.waiters = append(p.waiters, w)
	if p.live == 0 {
		// Nothing to wait for: start one now.
		p.startLocked()
	}
	p.mu.Unlock()

	grow := time.NewTimer(growAfter)
	defer grow.Stop()
	for {
		select {
		case t := <-w:
			return t.in, t.err
		case <-grow.C:
			// Still waiting: the instances are busy for longer than a
			// burst; start one for the requests to come.
			p.mu.Lock()
			if p.starting < min(len(p.waiters), p.maxStart) {
				p.startLocked()
			}
			p.mu.Unlock()
			continue
		case <-ctx.Done():
		}
		break
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, p.m.busyError(ctx)
		}
	}
	p.mu.Unlock()
	// Handed something just as the deadline passed: give it back.
	if t := <-w; t.in != nil {
		p.put(t.in)
	}
	return nil, p.m.busyError(ctx)
}

// startLocked starts an instance in the background if the function is
// below MaxInstances. p.mu is held.
func (p *pool) startLocked() {
	if p.done || p.live >= p.m.limits.MaxInstances {
		return
	}
	p.live++
	p.starting++
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), initTimeout(p.m.limits))
		in, err := p.m.newInstance(ctx)
		cancel()
		p.mu.Lock()
		p.starting--
		if err != nil {
			p.live--
			p.m.log.line("isotope", "starting an instance failed: "+err.Error())
			if p.live == 0 {
				// Nothing will ever be released: tell every waiter.
				for _, w := range p.waiters {
					w <- taken{err: err}
				}
				p.waiters = nil
			}
			p.mu.Unlock()
			return
		}
		p.putLocked(in)
		// Requests still waiting have waited for a whole start: the
		// load needs more instances than there are.
		if len(p.waiters) > 0 && p.starting < min(len(p.waiters), p.maxStart) {
			p.startLocked()
		}
		p.mu.Unlock()
	}()
}

// refill brings the live instances back to the warm count after discards.
func (p *pool) refill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !p.done && p.live < p.m.limits.WarmInstances && p.starting < p.maxStart {
		p.startLocked()
	}
}

// put returns a healthy instance: to the oldest waiting request, else to
// the idle set (or discards it if the pool is closed).
func (p *pool) put(in *instance) {
	p.mu.Lock()
	p.putLocked(in)
	p.mu.Unlock()
}

func (p *pool) putLocked(in *instance) {
	if p.done {
		p.discardLocked(in)
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		w <- taken{in: in}
		return
	}
	p.idle = append(p.idle, in)
}

// discard throws an instance away and starts warming a replacement; a
// waiting request gets the replacement (or another released instance).
func (p *pool) discard(in *instance) {
	p.mu.Lock()
	p.discardLocked(in)
	if len(p.waiters) > 0 && p.live == 0 {
		// Nothing left to wait for (otherwise the waiters' own timers
		// decide whether the pool must grow).
		p.startLocked()
	}
	p.mu.Unlock()
	p.refill()
}

func (p *pool) discardLocked(in *instance) {
	in.stdout.Flush()
	in.stderr.Flush()
	in.mod.Close(context.Background())
	p.m.rt.reactorLive.Add(-1)
	p.m.discarded.Add(1)
	p.live--
}

// idleCount is the number of instances ready now.
func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// close discards the idle instances and waits for background starts;
// instances serving a request are discarded when they come back.
func (p *pool) close() {
	p.mu.Lock()
	p.done = true
	for _, in := range p.idle {
		p.discardLocked(in)
	}
	p.idle = nil
	for _, w := range p.waiters {
		w <- taken{err: p.m.unloaded()}
	}
	p.waiters = nil
	p.mu.Unlock()
	p.wg.Wait()
}
