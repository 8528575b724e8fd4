package executor

import "sync"

// tracker counts background goroutines so Close can wait for them. Unlike
// sync.WaitGroup, starting a goroutine while Wait is in progress is
// allowed (a specialization finishing during Close closes its instance
// in a new goroutine).
type tracker struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
}

// Go runs f in a new goroutine counted by Wait.
func (t *tracker) Go(f func()) {
	t.mu.Lock()
	if t.cond == nil {
		t.cond = sync.NewCond(&t.mu)
	}
	t.n++
	t.mu.Unlock()
	go func() {
		defer func() {
			t.mu.Lock()
			t.n--
			if t.n == 0 {
				t.cond.Broadcast()
			}
			t.mu.Unlock()
		}()
		f()
	}()
}

// Wait returns once no counted goroutine is running.
func (t *tracker) Wait() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cond == nil {
		t.cond = sync.NewCond(&t.mu)
	}
	for t.n > 0 {
		t.cond.Wait()
	}
}
