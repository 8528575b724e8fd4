package wasm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The issue sets the bound: a runaway guest answers 504 within its
// timeout plus 100 ms, and other functions keep serving.
func TestInfiniteLoopTimesOut(t *testing.T) {
	rt := sharedRuntime(t)
	const timeout = 300 * time.Millisecond
	hello := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.WAGIHello(), Name: "t/hello"}), "")
	cases := []struct {
		name   string
		req    LoadRequest
		checks bool // runs with Isotope's budget checks (package rewrite)
	}{
		{"wat-wagi", LoadRequest{Wasm: wasmtest.Spin(), Name: "t/spin"}, true},
		{"go-reactor", LoadRequest{Wasm: reactorModule(t), Name: "t/gospin", Entrypoint: "Spin"}, true},
		// No loop at all: only the checks at function entry stop it.
		{"recursion-without-loops", LoadRequest{Wasm: wasmtest.Recurse(), Name: "t/recurse"}, true},
		// A start section cannot be guarded by the host: the module
		// runs unchanged on the close-on-context-done runtime.
		{"start-section", LoadRequest{Wasm: wasmtest.SpinInStart(), Name: "t/startspin"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs := &testlog.Buffer{}
			c.req.Limits.Timeout = timeout
			c.req.Log = logs
			m := load(t, rt, c.req)
			if got := m.Stats().InterruptChecks; got != c.checks {
				t.Errorf("InterruptChecks = %v, want %v", got, c.checks)
			}
			srv := serve(t, m, "")
			start := time.Now()
			r := do(t, "GET", srv.URL+"/", "", nil)
			took := time.Since(start)
			if r.status != http.StatusGatewayTimeout {
				t.Fatalf("status %d %q, want 504", r.status, r.body)
			}
			if took > timeout+100*time.Millisecond {
				t.Errorf("answered after %v, want within %v", took, timeout+100*time.Millisecond)
			}
			if !strings.Contains(logs.String(), "exceeded its 300ms deadline; instance stopped") {
				t.Errorf("log = %q", logs.String())
			}
			if s := m.Stats(); s.Timeouts != 1 {
				t.Errorf("stats = %+v", s)
			}
			if r := do(t, "GET", hello.URL+"/", "", nil); r.status != 200 || r.body != "hello\n" {
				t.Errorf("another function after the timeout: %d %q", r.status, r.body)
			}
		})
	}
}

func TestMemoryHogStoppedAtLimit(t *testing.T) {
	rt := sharedRuntime(t)
	t.Run("wat-wagi", func(t *testing.T) {
		logs := &testlog.Buffer{}
		m := load(t, rt, LoadRequest{Wasm: wasmtest.MemoryHog(), Name: "t/hog", Limits: Limits{MemoryPages: 16}, Log: logs})
		r := do(t, "GET", serve(t, m, "").URL+"/", "", nil)
		// The guest's memory.grow failed at 16 pages, so it reached its
		// unreachable: a trap, 502.
		if r.status != http.StatusBadGateway || !strings.Contains(r.body, "unreachable") {
			t.Errorf("status %d %q", r.status, r.body)
		}
		if s := m.Stats(); s.Traps != 1 {
			t.Errorf("stats = %+v", s)
		}
	})
	t.Run("go-reactor", func(t *testing.T) {
		logs := &testlog.Buffer{}
		m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "t/gohog", Entrypoint: "Hog", Limits: Limits{MemoryPages: 512}, Log: logs})
		r := do(t, "GET", serve(t, m, "").URL+"/", "", nil)
		if r.status != http.StatusBadGateway {
			t.Errorf("status %d %q, want 502", r.status, r.body)
		}
		if !strings.Contains(logs.String(), "out of memory") {
			t.Errorf("log lacks the guest's out of memory report:\n%s", logs.String())
		}
	})
	t.Run("min-above-limit", func(t *testing.T) {
		_, err := rt.Load(context.Background(), LoadRequest{Wasm: reactorModule(t), Name: "t/small", Limits: Limits{MemoryPages: 2}})
		if err == nil || !strings.Contains(err.Error(), "above the function's limit of 2 pages") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestTrapDoesNotPoisonPool(t *testing.T) {
	rt := sharedRuntime(t)
	logs := &testlog.Buffer{}
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "t/crash", Entrypoint: "Crash", Log: logs, Limits: Limits{MaxInstances: 1}})
	srv := serve(t, m, "")
	if r := do(t, "GET", srv.URL+"/", "", nil); r.body != "ok 1" {
		t.Fatalf("first: %d %q", r.status, r.body)
	}
	r := do(t, "GET", srv.URL+"/?crash=1", "", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "exited with code 3") {
		t.Errorf("crash: %d %q, want 502", r.status, r.body)
	}
	if !strings.Contains(logs.String(), "stderr: crashing on purpose") || !strings.Contains(logs.String(), "isotope: function t/crash exited with code 3") {
		t.Errorf("log:\n%s", logs.String())
	}
	// A fresh instance (its counter restarts) serves everything after.
	for i := 1; i <= 5; i++ {
		if r := do(t, "GET", srv.URL+"/", "", nil); r.status != 200 || r.body != fmt.Sprintf("ok %d", i) {
			t.Fatalf("after the crash #%d: %d %q", i, r.status, r.body)
		}
	}
	if s := m.Stats(); s.Traps != 1 || s.InstancesDiscarded != 1 {
		t.Errorf("stats = %+v", s)
	}

	wat := load(t, rt, LoadRequest{Wasm: wasmtest.Trap(), Name: "t/trap"})
	if r := do(t, "GET", serve(t, wat, "").URL+"/", "", nil); r.status != http.StatusBadGateway || !strings.Contains(r.body, "unreachable") {
		t.Errorf("WAT trap: %d %q", r.status, r.body)
	}
}

func TestRecycleAfterMaxRequests(t *testing.T) {
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Entrypoint: "Crash", Limits: Limits{MaxRequestsPerInstance: 3}})
	srv := serve(t, m, "")
	var got []string
	for i := 0; i < 4; i++ {
		got = append(got, do(t, "GET", srv.URL+"/", "", nil).body)
	}
	if strings.Join(got, ",") != "ok 1,ok 2,ok 3,ok 1" {
		t.Errorf("bodies = %v: the instance should be replaced after 3 requests", got)
	}
}

func TestBodyLimits(t *testing.T) {
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Limits: Limits{MaxRequestBody: 10, MaxResponseBody: 300}})
	srv := serve(t, m, "")
	if r := do(t, "POST", srv.URL+"/", strings.Repeat("x", 11), nil); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("large request: %d %q", r.status, r.body)
	}
	// The echo of a 10-byte body with big headers passes 300 bytes.
	r := do(t, "POST", srv.URL+"/", "0123456789", map[string]string{"X-Pad": strings.Repeat("p", 400)})
	// The SDK refuses the write past the limit it is given and answers
	// 502 itself.
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "above the limit of 300 bytes") {
		t.Errorf("large response: %d %q", r.status, r.body)
	}
	w := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIStatic("Content-Type: text/plain\n\n" + strings.Repeat("y", 100)), Limits: Limits{MaxResponseBody: 50}})
	if r := do(t, "GET", serve(t, w, "").URL+"/", "", nil); r.status != http.StatusBadGateway {
		t.Errorf("large WAGI response: %d %q", r.status, r.body)
	}
}

// Responses past the default 32 MiB cap answer 502 saying so, from
// either ABI: not a guest out of memory (reactor), not a timeout (WAGI).
func TestHugeResponsesAnswer502(t *testing.T) {
	rt := sharedRuntime(t)
	logs := &testlog.Buffer{}
	flood := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIFlood(600), Name: "t/flood", Log: logs}) // 39 MB
	r := do(t, "GET", serve(t, flood, "").URL+"/", "", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "more than its response limit of 33554432 bytes") {
		t.Errorf("WAGI flood: %d %.200q", r.status, r.body)
	}
	// One that would write forever is stopped at the limit, long before
	// its deadline.
	endless := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIFlood(1 << 30), Name: "t/endless", Log: logs, Limits: Limits{Timeout: time.Minute}})
	start := time.Now()
	r = do(t, "GET", serve(t, endless, "").URL+"/", "", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "response limit") || time.Since(start) > 20*time.Second {
		t.Errorf("WAGI writing forever: %d after %v: %.200q", r.status, time.Since(start), r.body)
	}
	if r.header.Get(HostErrorHeader) != "response-too-large" {
		t.Errorf("%s = %q, want response-too-large", HostErrorHeader, r.header.Get(HostErrorHeader))
	}
	big := load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "t/big", Entrypoint: "Big", Log: logs})
	srv := serve(t, big, "")
	r = do(t, "GET", srv.URL+"/?mb=40", "", nil)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "above the limit of 33554432 bytes") {
		t.Errorf("reactor writing 40 MiB: %d %.200q", r.status, r.body)
	}
	if strings.Contains(logs.String(), "out of memory") {
		t.Errorf("the reactor ran out of memory:\n%s", logs.String())
	}
	// The function serves on (that instance, grown past 64 MiB, is
	// recycled as any would be).
	if r := do(t, "GET", srv.URL+"/?mb=1", "", nil); r.status != 200 || len(r.body) != 1<<20 {
		t.Errorf("after the refused response: %d, %d bytes", r.status, len(r.body))
	}
	if s := big.Stats(); s.Traps != 0 {
		t.Errorf("stats %+v: the guest trapped", s)
	}
}

func TestWAGIBadOutputExplained(t *testing.T) {
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIStatic("X-Only: 1\n\nbody"), Name: "t/bad"})
	r := do(t, "GET", serve(t, m, "").URL+"/", "", nil)
	if r.status != 500 || !strings.Contains(r.body, "none of Content-Type, Location or Status") {
		t.Errorf("%d %q", r.status, r.body)
	}
	m2 := load(t, rt, LoadRequest{Wasm: wasmtest.WAGIStatic("Location: /elsewhere\n\n")})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(serve(t, m2, "").URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/elsewhere" {
		t.Errorf("Location: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestLoadErrors(t *testing.T) {
	rt := sharedRuntime(t)
	ctx := context.Background()
	_, err := rt.Load(ctx, LoadRequest{Wasm: wasmtest.NoEntry(), Name: "ns/none"})
	if err == nil || !strings.Contains(err.Error(), "ns/none") || !strings.Contains(err.Error(), "neither _start") || !strings.Contains(err.Error(), "isotope_handle") {
		t.Errorf("no entry: %v", err)
	}
	if _, err := rt.Load(ctx, LoadRequest{Wasm: []byte("not wasm"), Name: "ns/junk"}); err == nil || !strings.Contains(err.Error(), "ns/junk") {
		t.Errorf("junk: %v", err)
	}
	dir := t.TempDir()
	if _, err := rt.Load(ctx, LoadRequest{Path: dir}); err == nil || !strings.Contains(err.Error(), "holds no .wasm file") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "a.wasm"), wasmtest.WAGIHello(), 0o644)
	m, err := rt.Load(ctx, LoadRequest{Path: dir})
	if err != nil || m.ABI() != ABIWAGI {
		t.Fatalf("dir with one module: %v", err)
	}
	m.Close()
	os.WriteFile(filepath.Join(dir, "b.wasm"), wasmtest.WAGIHello(), 0o644)
	if _, err := rt.Load(ctx, LoadRequest{Path: dir}); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("two modules: %v", err)
	}
}

func TestConcurrent64(t *testing.T) {
	rt := sharedRuntime(t)
	reactor := serve(t, load(t, rt, LoadRequest{Wasm: reactorModule(t), Limits: Limits{MaxInstances: 4}}), "")
	wagi := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.WAGIHello()}), "")
	var wg sync.WaitGroup
	errs := make(chan string, 128)
	for i := 0; i < 64; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("request-%d", i)
			r := do(t, "POST", fmt.Sprintf("%s/p%d?i=%d", reactor.URL, i, i), body, nil)
			if r.status != 200 || !strings.Contains(r.body, `"body":"`+body+`"`) || !strings.Contains(r.body, fmt.Sprintf(`"path":"/p%d"`, i)) {
				errs <- fmt.Sprintf("reactor %d: %d %s", i, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			if r := do(t, "GET", wagi.URL+"/", "", nil); r.status != 200 || r.body != "hello\n" {
				errs <- fmt.Sprintf("wagi %d: %d %q", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
