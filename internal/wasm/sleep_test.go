package wasm

import (
	"net/http"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// A guest blocked in a host sleep (poll_oneoff on a clock, how Go's
// time.Sleep waits once every goroutine is idle) is stopped at its
// deadline like a spinning one: wazero cannot interrupt a blocking host
// call, so Isotope's nanosleep returns when the request's context ends.
// The bound: 504 within the timeout plus 100 ms.
func TestSleepingGuestAnswers504AtItsDeadline(t *testing.T) {
	rt := sharedRuntime(t)
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name, path string
		req        LoadRequest
	}{
		{"go-reactor", "/?d=5s", LoadRequest{Wasm: reactorModule(t), Name: "t/gosleep", Entrypoint: "Sleep"}},
		{"wat-wagi", "/", LoadRequest{Wasm: wasmtest.WAGISleep(5 * time.Second), Name: "t/watsleep"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &testlog.Buffer{}
			c.req.Limits.Timeout = timeout
			c.req.Log = logs
			m := load(t, rt, c.req)
			srv := serve(t, m, "")
			// The bound is checked on the best of up to three requests: a
			// starved CI core can delay one answer past it, while a
			// deadline that is not enforced misses it every time.
			var took []time.Duration
			for attempt := 1; attempt <= 3; attempt++ {
				start := time.Now()
				r := do(t, "GET", srv.URL+c.path, "", nil)
				took = append(took, time.Since(start))
				if r.status != http.StatusGatewayTimeout {
					t.Fatalf("status %d %q, want 504", r.status, r.body)
				}
				if s := m.Stats(); s.Timeouts != uint64(attempt) {
					t.Errorf("stats = %+v, want %d timeouts", s, attempt)
				}
				if m.ABI() == ABIReactor {
					// The instance that timed out is thrown away, never reused.
					waitUntil(t, "the timed-out instance to be discarded", func() bool { return m.Stats().InstancesDiscarded == uint64(attempt) })
				}
				if took[len(took)-1] <= timeout+100*time.Millisecond {
					return
				}
			}
			t.Errorf("answered after %v, want within %v", took, timeout+100*time.Millisecond)
		})
	}
	// A sleep that ends before the deadline still sleeps its full length.
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "t/nap", Entrypoint: "Sleep", Limits: Limits{Timeout: 10 * time.Second}})
	start := time.Now()
	if r := do(t, "GET", serve(t, m, "").URL+"/?d=200ms", "", nil); r.status != 200 || r.body != "slept" {
		t.Fatalf("short sleep: %d %q", r.status, r.body)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("a 200ms sleep returned after %v", took)
	}
}

// waitUntil polls cond until it holds or 10 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
