package wasm

import (
	"context"
	"sync/atomic"
	"time"
)

// sleeper is one instance's nanosleep (WASI poll_oneoff on clock
// subscriptions, which is how a Go guest's time.Sleep and idle scheduler
// wait). The budget checks (package rewrite, or wazero's
// close-on-context-done) only run between guest instructions; a host call
// that blocks, such as the default nanosleep, runs to its end whatever
// the deadline (wasm.md §1.6), so a guest sleeping 5 s under a 2 s
// deadline would answer after 5 s. This nanosleep returns as soon as the
// context of the call in progress ends; the guest then reaches its next
// check and is stopped.
type sleeper struct {
	// done is the Done channel of the guest call in progress (nil
	// between calls: a sleep then lasts its full length).
	done atomic.Pointer[<-chan struct{}]
}

// enter makes ctx bound the sleeps of the guest call about to start.
func (s *sleeper) enter(ctx context.Context) {
	d := ctx.Done()
	if d == nil {
		s.done.Store(nil)
		return
	}
	s.done.Store(&d)
}

// nanosleep implements wazero's sys.Nanosleep.
func (s *sleeper) nanosleep(ns int64) {
	if ns <= 0 {
		return
	}
	var done <-chan struct{}
	if p := s.done.Load(); p != nil {
		done = *p
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-done:
	}
}

// ctxSleep is a nanosleep bounded by one fixed context (a WAGI instance
// lives for exactly one request).
func ctxSleep(ctx context.Context) func(int64) {
	s := &sleeper{}
	s.enter(ctx)
	return s.nanosleep
}
