package wasm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// A storm of looping guests, three per P and more, never freezes the
// process: each answers 504 at its deadline, a plain handler and another
// function keep answering quickly, and garbage collections (which stop
// the world, and so wait for every goroutine to reach Go code) finish.
// Before guests yielded, two loops on two Ps froze everything for good.
func TestLoopStormKeepsProcessResponsive(t *testing.T) {
	rt := sharedRuntime(t)
	const timeout = 2 * time.Second
	procs := runtime.GOMAXPROCS(0)
	loops := 3*procs + 2
	spinWAGI := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.Spin(), Name: "t/storm-wagi", Limits: Limits{Timeout: timeout}}), "")
	spinGo := serve(t, load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "t/storm-go", Entrypoint: "Spin",
		Limits: Limits{Timeout: timeout, MaxInstances: loops}}), "")
	hello := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.WAGIHello(), Name: "t/storm-hello"}), "")
	healthz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(healthz.Close)
	p99 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[(len(d)*99)/100]
	}
	// The bounds below are on what the storm adds: a machine too busy
	// for them without any storm could not show anything.
	var base, fnBase []time.Duration
	for range 30 {
		t0 := time.Now()
		do(t, "GET", healthz.URL+"/", "", nil)
		base = append(base, time.Since(t0))
		t0 = time.Now()
		do(t, "GET", hello.URL+"/", "", nil)
		fnBase = append(fnBase, time.Since(t0))
	}
	baseP99, fnBaseP99 := p99(base), p99(fnBase)

	type answer struct {
		status int
		took   time.Duration
	}
	answers := make(chan answer, loops)
	start := time.Now()
	for i := range loops {
		url := spinWAGI.URL
		if i%2 == 1 {
			url = spinGo.URL
		}
		go func() {
			t0 := time.Now()
			resp, err := http.Get(url + "/")
			if err != nil {
				answers <- answer{-1, time.Since(t0)}
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, time.Since(t0)}
		}()
	}

	// Every slot taken, more loops waiting for one.
	for rt.gate.waiting.Load() == 0 {
		if time.Since(start) > timeout/2 {
			t.Fatal("the looping calls never filled the guest slots")
		}
		runtime.Gosched()
	}
	// While they loop: the plain handler, another function, a GC.
	var lat, fnLat []time.Duration
	gcDone := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		t0 := time.Now()
		runtime.GC()
		gcDone <- time.Since(t0)
	})
	for time.Since(start) < timeout-100*time.Millisecond {
		t0 := time.Now()
		if r := do(t, "GET", healthz.URL+"/", "", nil); r.status != 200 {
			t.Fatalf("healthz: %d", r.status)
		}
		lat = append(lat, time.Since(t0))
		t0 = time.Now()
		if r := do(t, "GET", hello.URL+"/", "", nil); r.status != 200 || r.body != "hello\n" {
			t.Fatalf("another function during the storm: %d %q", r.status, r.body)
		}
		fnLat = append(fnLat, time.Since(t0))
	}
	wg.Wait()
	if gc := <-gcDone; gc > time.Second {
		t.Errorf("a garbage collection during the storm took %v", gc)
	}
	for range loops {
		a := <-answers
		if a.status != http.StatusGatewayTimeout {
			t.Errorf("looping request: status %d, want 504", a.status)
		}
		if a.took < timeout-50*time.Millisecond || a.took > timeout+time.Second {
			t.Errorf("looping request answered after %v, want %v ± 1s", a.took, timeout)
		}
	}
	t.Logf("%d loops on %d Ps: healthz p99 %v (n=%d; %v before), another function p99 %v (%v before)",
		loops, procs, p99(lat), len(lat), baseP99, p99(fnLat), fnBaseP99)
	if p := p99(lat); p > baseP99+100*time.Millisecond {
		t.Errorf("healthz p99 %v during the storm, want under 100ms more than the %v before it", p, baseP99)
	}
	if p := p99(fnLat); p > fnBaseP99+250*time.Millisecond {
		t.Errorf("another function's p99 %v during the storm, want under 250ms more than the %v before it", p, fnBaseP99)
	}
}

// Past the queue bound a guest call is refused with 429 at once, and the
// instance it would have run on serves again.
func TestGuestQueueFull(t *testing.T) {
	rt := newRuntime(t, Config{CacheDir: wasmtest.CompileCacheDir(), GuestSlots: 1, GuestQueue: 1})
	spin := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.Spin(), Name: "t/q-spin", Limits: Limits{Timeout: 3 * time.Second}}), "")
	hello := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIHello(), Name: "t/q-hello"})
	helloSrv := serve(t, hello, "")
	// One spinner holds the slot, a second waits: the queue is full.
	for range 2 {
		go func() {
			if resp, err := http.Get(spin.URL + "/"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for rt.gate.waiting.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no call ever waited for the slot")
		}
		runtime.Gosched()
	}
	r := do(t, "GET", helloSrv.URL+"/", "", nil)
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("third call with the queue full: %d %q, want 429", r.status, r.body)
	}
}

func TestNewRuntimeRefusesNegativeSlots(t *testing.T) {
	if _, err := NewRuntime(context.Background(), Config{GuestSlots: -1}); err == nil {
		t.Fatal("GuestSlots -1 accepted")
	}
}

// The gate hands slots to calls that have not started before calls that
// gave theirs up, and a waiter whose context ends leaves the queue.
func TestGateOrder(t *testing.T) {
	g := newGate(1, 10)
	ctx := context.Background()
	if err := g.enter(ctx, false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 2)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.enter(ctx, true); err == nil {
			order <- "tired"
			g.leave()
		}
	})
	for g.waiting.Load() < 1 {
		runtime.Gosched()
	}
	wg.Go(func() {
		if err := g.enter(ctx, false); err == nil {
			order <- "fresh"
			g.leave()
		}
	})
	for g.waiting.Load() < 2 {
		runtime.Gosched()
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := g.enter(cctx, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("enter with a cancelled context: %v", err)
	}
	if n := g.waiting.Load(); n != 2 {
		t.Fatalf("%d waiting after a cancelled wait, want 2", n)
	}
	g.leave()
	wg.Wait()
	if a, b := <-order, <-order; a != "fresh" || b != "tired" {
		t.Fatalf("order %s, %s; want fresh, tired", a, b)
	}
	if g.free != 1 {
		t.Fatalf("%d slots free at the end, want 1", g.free)
	}
}
