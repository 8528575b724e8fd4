package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// Load tests: bounded in count and time, on loopback. Their figures are
// logged (go test -v) for the closing note; the assertions are about
// correctness under load (no errors, fast rejections, bounded memory,
// recovery), with generous bounds, never about speed.

// maxServerRSS bounds the server's resident memory under the load tests:
// far above what it needs (tens of MiB), far below a leak per request.
const maxServerRSS = 512 << 10 // KiB

// TestLoadWebAssembly10k sends 10,000 requests, 100 at a time, to a
// WebAssembly (WAGI) function through the router.
func TestLoadWebAssembly10k(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	p := startPlatform(t, "")
	hello := writeFile(t, t.TempDir(), "hello.wasm", wasmtest.WAGIHello())
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/acme/isotope/wasm-env:1.0")
	p.ok("fn", "create", "--name", "hello", "--env", "wasm", "--deploy", hello, "--url", "/hello", "--method", "GET")
	p.waitServes(t, "/hello", 200)

	// A warm-up wave opens the connections and instances, then the run.
	hammer(context.Background(), p.router+"/hello", 500, 100)
	warm := memoryOf(t, p.pid())
	res := hammer(context.Background(), p.router+"/hello", 10_000, 100)
	after := memoryOf(t, p.pid())
	t.Logf("10,000 requests at 100 concurrent to a WAGI function: %v", res)
	t.Logf("server memory: after warm-up %v; after the run %v", warm, after)

	if res.total() != 10_000 || len(res.byCode[200]) != 10_000 {
		t.Errorf("want 10,000 × 200 and no errors, got %v", res)
	}
	if after.HWM > maxServerRSS {
		t.Errorf("server peak memory %v is over %d MiB", after, maxServerRSS>>10)
	}
	// A second run must not grow the server much: memory per request
	// is returned, not accumulated.
	res2 := hammer(context.Background(), p.router+"/hello", 10_000, 100)
	again := memoryOf(t, p.pid())
	t.Logf("second run: %v; server memory %v", res2, again)
	if len(res2.byCode[200]) != 10_000 {
		t.Errorf("second run: want 10,000 × 200, got %v", res2)
	}
	if grow := again.RSS - after.RSS; grow > 64<<10 {
		t.Errorf("server RSS grew by %d MiB over a second run of 10,000 requests (%v → %v)", grow>>10, after, again)
	}
}

// TestLoadOverload hammers a function limited to one request at a time
// (concurrency 1, one request per instance, one queued) at ten times the
// rate it can serve: the excess is refused with 429 at once, nothing crashes, and the
// function serves normally when the load stops.
func TestLoadOverload(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	envserver := proctest.EnvServer(t)
	code := writeFile(t, t.TempDir(), "body.txt", []byte("ok"))
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "proc", "--image", "example.com/proc-env:1", "--runtime-command", envserver, "--poolsize", "1")
	p.ok("fn", "create", "--name", "slow", "--env", "proc", "--code", code,
		"--concurrency", "1", "--rpp", "1", "--fntimeout", "10", "--url", "/slow", "--method", "GET")
	p.waitServes(t, "/slow", 200)

	// Each request takes 20 ms and one runs at a time: capacity is 50
	// requests/s. 500 requests/s arrive for 2 s, whatever the answers.
	const (
		work     = 20 * time.Millisecond
		capacity = int(time.Second / work)
	)
	before := memoryOf(t, p.pid())
	res := offer(context.Background(), p.router+"/slow?sleep="+work.String(), 10*capacity, 2*time.Second)
	after := memoryOf(t, p.pid())
	t.Logf("10× overload (%d req/s offered to a function serving %d req/s, one at a time, %v each): %v", 10*capacity, capacity, work, res)
	t.Logf("server memory: before %v; after %v", before, after)

	if res.errors > 0 {
		t.Errorf("transport errors under overload: %v", res)
	}
	for code := range res.byCode {
		if code != http.StatusOK && code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
			t.Errorf("under overload the router answered %d: %v", code, res)
		}
	}
	rejected := res.latencies(http.StatusTooManyRequests, http.StatusServiceUnavailable)
	if len(rejected) < res.total()/2 {
		t.Errorf("at 10× capacity only %d of %d requests were refused: %v", len(rejected), res.total(), res)
	}
	if len(res.byCode[http.StatusOK]) == 0 {
		t.Errorf("under overload nothing was served: %v", res)
	}
	// Refusals are immediate: far below the 10 s function timeout, and
	// below the time one admitted request takes to be served.
	if p99 := percentile(rejected, 0.99); p99 > time.Second {
		t.Errorf("p99 of refusals is %v: refusals must not wait (function timeout 10s)", p99)
	}
	if after.HWM > maxServerRSS {
		t.Errorf("server peak memory %v is over %d MiB", after, maxServerRSS>>10)
	}

	// When the load stops the function serves every request again.
	for i := range 20 {
		if code, body := p.get(t, "GET", "/slow", nil); code != 200 || body != "ok" {
			t.Fatalf("request %d after the overload: %d %q", i, code, body)
		}
	}
	select {
	case <-p.exited:
		t.Fatalf("the server exited under overload")
	default:
	}
}
