package wasm

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// Idle instances are reused last-in first-out: with two warm instances,
// sequential requests all go to the one that just answered (its memory
// is still in the CPU caches), so its count climbs while the other
// instance stays unused.
func TestPoolReusesTheLastInstance(t *testing.T) {
	m := load(t, sharedRuntime(t), LoadRequest{Wasm: reactorModule(t), Name: "t/lifo", Entrypoint: "Crash", Limits: Limits{WarmInstances: 2}})
	srv := serve(t, m, "")
	var got []string
	for range 4 {
		got = append(got, do(t, "GET", srv.URL+"/", "", nil).body)
	}
	if strings.Join(got, ",") != "ok 1,ok 2,ok 3,ok 4" {
		t.Errorf("bodies = %v, want one instance counting 1..4", got)
	}
	if s := m.Stats(); s.InstancesStarted != 2 || s.Idle != 2 {
		t.Errorf("stats = %+v, want the 2 warm instances only", s)
	}
}

// Requests that find every instance busy get instances started in the
// background, up to MaxInstances: slow requests still run side by side.
func TestPoolGrowsForConcurrentRequests(t *testing.T) {
	m := load(t, sharedRuntime(t), LoadRequest{Wasm: reactorModule(t), Name: "t/grow", Entrypoint: "Sleep",
		Limits: Limits{WarmInstances: 1, MaxInstances: 3, Timeout: time.Minute}})
	srv := serve(t, m, "")
	var wg sync.WaitGroup
	results := make([]result, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = do(t, "GET", srv.URL+"/?d=300ms", "", nil)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status != 200 || r.body != "slept" {
			t.Errorf("request %d: %d %q", i, r.status, r.body)
		}
	}
	if s := m.Stats(); s.InstancesStarted < 2 || s.InstancesStarted > 3 {
		t.Errorf("stats = %+v, want the pool grown past its warm instance, at most to MaxInstances (3)", s)
	}
}

// Growth does not stop at the starts running at once: while requests
// still wait, each completed start begins another, up to MaxInstances.
func TestPoolKeepsGrowingWhileRequestsWait(t *testing.T) {
	m := load(t, sharedRuntime(t), LoadRequest{Wasm: reactorModule(t), Name: "t/grow8", Entrypoint: "Sleep",
		Limits: Limits{WarmInstances: 1, MaxInstances: 8, Timeout: time.Minute}})
	srv := serve(t, m, "")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := do(t, "GET", srv.URL+"/?d=2s", "", nil); r.status != 200 {
				t.Errorf("%d %q", r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if s := m.Stats(); s.InstancesStarted < 4 {
		t.Errorf("stats = %+v: the pool stopped growing with requests waiting", s)
	}
}

// A start that fails and leaves the function without any instance
// answers the waiting request at once, not at its deadline.
func TestPoolStartFailureAnswersWaiters(t *testing.T) {
	logs := &testlog.Buffer{}
	m := load(t, sharedRuntime(t), LoadRequest{Wasm: wasmtest.ReactorInitTrap(), Name: "t/inittrap", Log: logs,
		Limits: Limits{WarmInstances: -1, Timeout: time.Minute}})
	srv := serve(t, m, "")
	start := time.Now()
	r := do(t, "GET", srv.URL+"/", "", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "_initialize") {
		t.Errorf("got %d %q, want 502 naming _initialize", r.status, r.body)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("answered after %v: the request waited for its deadline", took)
	}
	if !strings.Contains(logs.String(), "starting an instance failed") {
		t.Errorf("log = %q", logs.String())
	}
}

// Closing a Module answers the requests waiting for one of its
// instances (503) instead of leaving them to their deadline.
func TestPoolCloseAnswersWaiters(t *testing.T) {
	rt := sharedRuntime(t)
	m, err := rt.Load(t.Context(), LoadRequest{Wasm: reactorModule(t), Name: "t/close", Entrypoint: "Sleep",
		Limits: Limits{WarmInstances: 1, MaxInstances: 1, Timeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, m, "")
	busy := make(chan result, 1)
	go func() { busy <- do(t, "GET", srv.URL+"/?d=1s", "", nil) }()
	deadline := time.Now().Add(30 * time.Second)
	for m.Stats().Busy != 1 || m.Stats().Idle != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first request never started")
		}
		time.Sleep(time.Millisecond)
	}
	waiting := make(chan result, 1)
	go func() { waiting <- do(t, "GET", srv.URL+"/?d=0s", "", nil) }()
	for m.Stats().Busy != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never arrived")
		}
		time.Sleep(time.Millisecond)
	}
	m.Close()
	if r := <-waiting; r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "unloaded") {
		t.Errorf("waiting request: %d %q, want 503 unloaded", r.status, r.body)
	}
	if r := <-busy; r.status != 200 {
		t.Errorf("request in flight at Close: %d %q", r.status, r.body)
	}
}

// Linear memories of closed instances are reused (their pages are
// already mapped), and come back zeroed: a guest never sees what the
// previous one left.
func TestReusedMemoryIsZeroed(t *testing.T) {
	rt := newRuntime(t, Config{})
	m := load(t, rt, LoadRequest{Wasm: wasmtest.MemoryLeftover(), Name: "t/leftover"})
	srv := serve(t, m, "")
	for i := range 20 {
		if r := do(t, "GET", srv.URL+"/", "", nil); r.status != 200 || r.body != "hello\n" {
			t.Fatalf("request %d: %d %q: the instance found its memory dirty", i, r.status, r.body)
		}
	}
	rt.memories.mu.Lock()
	kept := len(rt.memories.free)
	rt.memories.mu.Unlock()
	if kept == 0 {
		t.Error("no memory kept for reuse after 20 instances")
	}
}
