package wasm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"isotope.dev/isotope/internal/wasm/rewrite"
)

// Scheduling guests (decision 0011).
//
// Guest machine code is never preempted by the Go scheduler, so a guest
// that does not call out holds its P. Modules are therefore rewritten
// (internal/wasm/rewrite) to call the host's yield after a bounded amount
// of work. yield is plain Go: entering it lets the Go scheduler preempt
// the goroutine (sysmon asks any goroutine that ran 10 ms to) and lets a
// garbage collection stop it. yield also
//
//   - ends the call when its context is done or its deadline has passed,
//     reading the clock itself rather than waiting for a timer, which
//     needs a free P to fire;
//   - shares the guest slots: at most Config.GuestSlots guest calls run
//     at once (default GOMAXPROCS), so guests never outnumber the Ps and
//     the API, the router and timers always get their turn; a call that
//     has held its slot for a time slice while others wait gives it up
//     and queues again behind every call that has not started yet, so a
//     new request to another function starts within about one slice
//     however many guests loop.
//
// Calls past Config.GuestQueue waiting for a slot are refused with 429.

// Defaults of the guest scheduler.
const (
	// DefaultGuestQueue is how many guest calls may wait for a slot.
	DefaultGuestQueue = 1024
	// guestSlice is how long a call keeps its slot while others wait.
	guestSlice = 2 * time.Millisecond
	// guestRun is how long a guest runs before it lets the goroutines
	// waiting for its P run (runtime.Gosched). The Go scheduler would
	// preempt it after 10 ms; an HTTP round trip needs several
	// goroutines to run in turn, so that is too long to wait each time.
	guestRun = time.Millisecond
)

// gate hands out the guest slots: first to calls that have not started,
// then to calls that gave theirs up at a yield.
type gate struct {
	mu          sync.Mutex
	free        int
	maxQueue    int
	fresh, tire waitQueue
	waiting     atomic.Int32 // len(fresh) + len(tire)
}

type waiter struct {
	ready   chan struct{}
	granted bool // the slot was handed over (under gate.mu)
}

type waitQueue []*waiter

func (q *waitQueue) pop() *waiter {
	w := (*q)[0]
	(*q)[0] = nil
	*q = (*q)[1:]
	return w
}

func (q *waitQueue) remove(w *waiter) {
	for i, x := range *q {
		if x == w {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return
		}
	}
}

func newGate(slots, queue int) *gate {
	if slots <= 0 {
		slots = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if queue <= 0 {
		queue = DefaultGuestQueue
	}
	return &gate{free: slots, maxQueue: queue}
}

// errGateFull is the answer past the wait queue's bound.
var errGateFull = errors.New("too many WebAssembly calls are waiting for a guest slot (the server's --guest-slots and --guest-queue bound them)")

// enter takes a slot, waiting for one until ctx ends. again says the
// call gave up its slot at a yield and queues behind new calls.
func (g *gate) enter(ctx context.Context, again bool) error {
	g.mu.Lock()
	if g.free > 0 {
		g.free--
		g.mu.Unlock()
		return nil
	}
	q := &g.fresh
	if again {
		q = &g.tire
	} else if len(g.fresh)+len(g.tire) >= g.maxQueue {
		g.mu.Unlock()
		return errGateFull
	}
	w := &waiter{ready: make(chan struct{})}
	*q = append(*q, w)
	g.waiting.Add(1)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	if w.granted {
		g.mu.Unlock()
		g.leave() // handed over just as ctx ended: pass it on
	} else {
		q.remove(w)
		g.waiting.Add(-1)
		g.mu.Unlock()
	}
	return ctx.Err()
}

// leave gives a slot back, to the first waiter if there is one.
func (g *gate) leave() {
	g.mu.Lock()
	var w *waiter
	switch {
	case len(g.fresh) > 0:
		w = g.fresh.pop()
	case len(g.tire) > 0:
		w = g.tire.pop()
	default:
		g.free++
		g.mu.Unlock()
		return
	}
	w.granted = true
	g.waiting.Add(-1)
	g.mu.Unlock()
	close(w.ready)
}

// guard runs one instance's guest calls under the scheduler.
type guard struct {
	scheduled bool // the module was rewritten: it yields, and takes slots
	gate      *gate
	cctx      callCtx
	holding   bool      // a slot is held (only the calling goroutine touches it)
	since     time.Time // when the slot was taken
	ran       time.Time // when the guest last let other goroutines run
	env       *environ  // the guest's environment (environ.go)
}

// callCtx is the context a guest call runs with: the caller's, carrying
// its guard for yield without allocating per call.
type callCtx struct {
	context.Context
	g *guard
}

type guardKey struct{}

func (c *callCtx) Value(k any) any {
	if k == (guardKey{}) {
		return c.g
	}
	return c.Context.Value(k)
}

// gateError is a guest call that never started: no slot could be had.
// The instance is untouched and may serve again.
type gateError struct{ err error }

func (e *gateError) Error() string { return e.err.Error() }
func (e *gateError) Unwrap() error { return e.err }

// asHostError turns a gateError into the host's answer (nil for a
// context that ended: the caller classifies those).
func (e *gateError) asHostError(name string) *hostError {
	if errors.Is(e.err, errGateFull) {
		return &hostError{status: http.StatusTooManyRequests, msg: fmt.Sprintf("function %s: %v; try again later", name, e.err)}
	}
	return nil
}

// newGuard returns the guard of an instance of c.
func (r *Runtime) newGuard(c *compiled) *guard {
	return &guard{scheduled: c.interrupt, gate: r.gate}
}

// call runs f with stack. A call stopped at its deadline or by its
// context returns an error wrapping the context's error, and the
// instance must be thrown away: the guest stopped mid-work. A call that
// could not get a slot returns a *gateError.
func (g *guard) call(ctx context.Context, f api.Function, stack []uint64) error {
	if stack == nil {
		d := f.Definition()
		if n := len(d.ParamTypes()); n > 0 {
			return fmt.Errorf("%s expects %d parameters; it is called with none", d.Name(), n)
		}
		if n := len(d.ResultTypes()); n > 0 {
			stack = make([]uint64, n)
		}
	}
	if !g.scheduled {
		// wazero's close-on-context-done leaves machine code at every
		// loop iteration: the Go scheduler preempts such a guest anyway.
		return f.CallWithStack(ctx, stack)
	}
	held := g.holding
	if !held {
		if err := g.hold(ctx); err != nil {
			return err
		}
	}
	g.cctx.Context, g.cctx.g = ctx, g
	err := f.CallWithStack(&g.cctx, stack)
	g.cctx.Context = nil
	if !held {
		g.release()
	}
	if err != nil {
		if cause := stopCause(ctx, err); cause != nil {
			return fmt.Errorf("guest stopped: %w", cause)
		}
	}
	return err
}

// hold takes a guest slot for calls to come (call then takes none of
// its own), or returns a *gateError. WAGI holds one across the
// instantiation too, so no more instances (each a linear memory) exist
// at once than there are slots, and freed memories are reused rather
// than mapped and faulted in afresh.
func (g *guard) hold(ctx context.Context) error {
	if !g.scheduled || g.holding {
		return nil
	}
	if err := g.gate.enter(ctx, false); err != nil {
		return &gateError{err}
	}
	g.holding, g.since = true, time.Now()
	g.ran = g.since
	return nil
}

// release gives back the slot taken by hold (or, if yield gave it up
// and could not take it again, nothing).
func (g *guard) release() {
	if g.holding {
		g.holding = false
		g.gate.leave()
	}
}

// stopCause is why a failed call was stopped by the host: its context's
// error, or the deadline yield saw pass before the context's timer fired.
func stopCause(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return nil
}

// yield is the host function rewritten modules call (package rewrite):
// [] -> [i32], the guest's new budget.
func yield(ctx context.Context, _ api.Module, stack []uint64) {
	if err := ctx.Err(); err != nil {
		panic(err)
	}
	now := time.Now()
	if dl, ok := ctx.Deadline(); ok && !now.Before(dl) {
		panic(context.DeadlineExceeded)
	}
	g, _ := ctx.Value(guardKey{}).(*guard)
	if g == nil || !g.holding {
		stack[0] = rewrite.InitialBudget
		return
	}
	switch {
	case g.gate.waiting.Load() > 0 && now.Sub(g.since) >= guestSlice:
		g.holding = false
		g.gate.leave()
		if err := g.gate.enter(ctx, true); err != nil {
			panic(err)
		}
		g.holding, g.since = true, time.Now()
		g.ran = g.since
	case now.Sub(g.ran) >= guestRun:
		runtime.Gosched()
		g.ran = time.Now()
	}
	stack[0] = rewrite.InitialBudget
}

// instantiateYield provides the yield import on rt.
func instantiateYield(ctx context.Context, rt wazero.Runtime) error {
	_, err := rt.NewHostModuleBuilder(rewrite.ImportModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(yield), nil, []api.ValueType{api.ValueTypeI32}).
		Export(rewrite.YieldFunction).
		Instantiate(ctx)
	return err
}
