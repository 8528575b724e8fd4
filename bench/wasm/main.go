// Command wasm-bench measures the WebAssembly runtime (issue #4) and
// prints each result next to its baseline from the same run:
//
//		go run ./bench/wasm [-n 20000]
//
//	  - reactor hello, warm, in-process (Module.ServeHTTP) against a direct
//	    wazero call of isotope_handle on the same module (goal ≤ 2×);
//	  - a WAGI request to a small module, in-process (goal p50 ≤ 100 µs);
//	  - the first request to a ready (compiled) package with nothing warm
//	    (WAGI goal p50 ≤ 5 ms; Go reactor pre-warmed: no guest start on
//	    the request, against a module loaded without warm instances);
//	  - compiling the Go reactor with a cold cache against a warm one.
//
// The small WAGI module is hand-assembled (the bytes of a WAT source,
// wasmtest.WAGIHello): clang and wasi-libc are not installed here.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

func main() {
	n := flag.Int("n", 20000, "iterations of the steady-state measurements")
	flag.Parse()
	ctx := context.Background()
	reactorPath, err := wasmtest.BuildReactor()
	check(err)
	reactor, err := os.ReadFile(reactorPath)
	check(err)

	cacheDir, err := os.MkdirTemp("", "isotope-bench-")
	check(err)
	defer os.RemoveAll(cacheDir)

	// 4. Compile: cold cache, then a new Runtime on the warm cache.
	cold := timeLoad(ctx, cacheDir, reactor)
	warm := timeLoad(ctx, cacheDir, reactor)

	rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: cacheDir})
	check(err)
	defer rt.Close(ctx)

	// 1. Reactor hello, warm.
	hello, err := rt.Load(ctx, wasm.LoadRequest{Wasm: reactor, Name: "bench/hello", Entrypoint: "Hello"})
	check(err)
	req := httptest.NewRequest("GET", "/hello", nil)
	serve := func() {
		w := httptest.NewRecorder()
		hello.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.String() != "hello" {
			log.Fatalf("reactor answered %d %q", w.Code, w.Body.String())
		}
	}
	for i := 0; i < 1000; i++ {
		serve()
	}
	module := sample(*n, serve)
	direct := directCall(ctx, reactor, req, *n)

	// 2. WAGI small module, steady state.
	small := wasmtest.WAGIHello()
	wagi, err := rt.Load(ctx, wasm.LoadRequest{Wasm: small, Name: "bench/wagi"})
	check(err)
	wagiServe := func(m http.Handler) func() {
		return func() {
			w := httptest.NewRecorder()
			m.ServeHTTP(w, req)
			if w.Code != 200 {
				log.Fatalf("WAGI answered %d %q", w.Code, w.Body.String())
			}
		}
	}
	for i := 0; i < 1000; i++ {
		wagiServe(wagi)()
	}
	wagiSteady := sample(*n, wagiServe(wagi))

	// 3. First request to a ready package: Load (code already compiled, as
	// when a package becomes ready) then time the first request only.
	var wagiFirst, reactorFirst []time.Duration
	for i := 0; i < 200; i++ {
		m, err := rt.Load(ctx, wasm.LoadRequest{Wasm: small, Name: "bench/first"})
		check(err)
		wagiFirst = append(wagiFirst, sample(1, wagiServe(m))...)
		m.Close()
	}
	sortDurations(wagiFirst)
	// "0 extra for a Go reactor (pre-warmed)": the first request must not
	// wait for a guest to start. Count the instances each first request
	// started, and time a first request to a module loaded without warm
	// instances (WarmInstances -1), which pays a guest start: the cost
	// the pre-warming takes off the request path.
	var startsOnRequest uint64
	var unwarmedFirst []time.Duration
	for i := 0; i < 20; i++ {
		m, err := rt.Load(ctx, wasm.LoadRequest{Wasm: reactor, Name: "bench/first", Entrypoint: "Hello"})
		check(err)
		before := m.Stats().InstancesStarted
		reactorFirst = append(reactorFirst, sample(1, func() {
			w := httptest.NewRecorder()
			m.ServeHTTP(w, req)
		})...)
		startsOnRequest += m.Stats().InstancesStarted - before
		m.Close()
		u, err := rt.Load(ctx, wasm.LoadRequest{Wasm: reactor, Name: "bench/unwarmed", Entrypoint: "Hello", Limits: wasm.Limits{WarmInstances: -1}})
		check(err)
		unwarmedFirst = append(unwarmedFirst, sample(1, func() {
			w := httptest.NewRecorder()
			u.ServeHTTP(w, req)
		})...)
		u.Close()
	}
	sortDurations(reactorFirst)
	sortDurations(unwarmedFirst)

	// Baseline of the request rows: the same request to a native Go
	// handler through the same recorder, in-process.
	native := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	nativeServe := func() {
		w := httptest.NewRecorder()
		native.ServeHTTP(w, req)
	}
	for i := 0; i < 1000; i++ {
		nativeServe()
	}
	nativeSteady := sample(*n, nativeServe)

	fmt.Printf("wazero %s, %d iterations, GOMAXPROCS-bound, in-process (no network)\n\n", wasm.WazeroVersion(), *n)
	fmt.Printf("%-52s %10s %10s %10s\n", "measurement", "p50", "p90", "ratio")
	row("reactor hello via Module.ServeHTTP", module, p(module, 50).Seconds()/p(direct, 50).Seconds(), "× direct (goal ≤ 2×)")
	row("  baseline: direct isotope_handle call, same module", direct, 1, "")
	row("WAGI small module (hand-assembled), steady state", wagiSteady, p(wagiSteady, 50).Seconds()/100e-6, "× 100 µs goal")
	row("first request, ready WAGI package, nothing warm", wagiFirst, p(wagiFirst, 50).Seconds()/5e-3, "× 5 ms goal")
	row("first request, ready Go reactor package (pre-warmed)", reactorFirst, p(reactorFirst, 50).Seconds()/p(module, 50).Seconds(), "× warm request")
	row("first request, Go reactor loaded without warm instances", unwarmedFirst, p(unwarmedFirst, 50).Seconds()/p(module, 50).Seconds(), "× warm request")
	fmt.Printf("%-52s %10s %10s %10.1f × warm cache\n", "compile Go reactor (2 MB), cold cache", round(cold), "", cold.Seconds()/warm.Seconds())
	fmt.Printf("%-52s %10s\n", "  baseline: load from warm disk cache", round(warm))
	row("native Go handler, same request and recorder", nativeSteady, 1, "(baseline of WAGI steady state)")

	fmt.Println()
	r := func(d []time.Duration) time.Duration { return p(d, 50) }
	ratio := func(a, b time.Duration) float64 { return a.Seconds() / b.Seconds() }
	bench("wasm reactor hello warm p50 vs direct export call", us(r(module)), us(r(direct))+" direct",
		ratio(r(module), r(direct)), "<= 2.00", ratio(r(module), r(direct)) <= 2)
	bench("wasm WAGI small module p50, in-process", us(r(wagiSteady)), us(r(nativeSteady))+" native Go",
		ratio(r(wagiSteady), r(nativeSteady)), "<= 100 us", r(wagiSteady) <= 100*time.Microsecond)
	bench(fmt.Sprintf("wasm first request p50, ready WAGI package (%d)", len(wagiFirst)), us(r(wagiFirst)), us(r(wagiSteady))+" steady",
		ratio(r(wagiFirst), r(wagiSteady)), "<= 5 ms", r(wagiFirst) <= 5*time.Millisecond)
	bench(fmt.Sprintf("wasm first request p50, ready Go reactor (%d)", len(reactorFirst)), us(r(reactorFirst)), fmt.Sprintf("%.2f ms not pre-warmed", float64(r(unwarmedFirst))/1e6),
		ratio(r(reactorFirst), r(unwarmedFirst)), fmt.Sprintf("no guest start on the request (%d started)", startsOnRequest), startsOnRequest == 0)
	fmt.Printf("BENCH | wasm first request extra over warm, Go reactor | %.1f us | %s warm | %.2f | info (cold guest code paths, no start)\n",
		float64(r(reactorFirst)-r(module))/1e3, us(r(module)), ratio(r(reactorFirst), r(module)))
	fmt.Printf("BENCH | wasm compile Go reactor, cold cache | %.0f ms | %.1f ms warm cache | %.1f | info\n",
		float64(cold)/1e6, float64(warm)/1e6, ratio(cold, warm))
}

func us(d time.Duration) string { return fmt.Sprintf("%.1f us", float64(d)/1e3) }

// bench prints one figure in the suite's format (bench/README.md).
func bench(name, value, baseline string, ratio float64, goal string, met bool) {
	v := "(met)"
	if !met {
		v = "(MISSED)"
	}
	fmt.Printf("BENCH | %s | %s | %s | %.2f | %s %s\n", name, value, baseline, ratio, goal, v)
}

// timeLoad measures Load (compile or disk-cache read, no instances) in a
// fresh Runtime on dir.
func timeLoad(ctx context.Context, dir string, wasmBytes []byte) time.Duration {
	rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: dir})
	check(err)
	defer rt.Close(ctx)
	start := time.Now()
	m, err := rt.Load(ctx, wasm.LoadRequest{Wasm: wasmBytes, Limits: wasm.Limits{WarmInstances: -1}})
	check(err)
	d := time.Since(start)
	m.Close()
	return d
}

// directCall is the baseline: the same module instantiated straight on
// plain wazero, the request frame written once, then isotope_handle
// called and the response read. Nothing can stop a runaway call here
// (no close-on-context-done, no interrupt checks): it is the cheapest a
// call can be, so the ratio charges the runtime for its deadlines too.
func directCall(ctx context.Context, wasmBytes []byte, req *http.Request, n int) []time.Duration {
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	cm, err := r.CompileModule(ctx, wasmBytes)
	check(err)
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").
		WithSysNanotime().WithSysWalltime().WithSysNanosleep().
		WithStartFunctions("_initialize").WithEnv("ISOTOPE_ENTRYPOINT", "Hello"))
	check(err)
	frame := wasm.EncodeRequestFrame(req, wasm.InvokeOptions{}, nil)
	res, err := mod.ExportedFunction("isotope_alloc").Call(ctx, uint64(len(frame)))
	check(err)
	ptr := uint32(res[0])
	mem := mod.Memory()
	mem.Write(ptr, frame)
	handle := mod.ExportedFunction("isotope_handle")
	stack := make([]uint64, 2)
	call := func() {
		stack[0], stack[1] = uint64(ptr), uint64(len(frame))
		check(handle.CallWithStack(ctx, stack))
		out, ok := mem.Read(uint32(stack[0]>>32), uint32(stack[0]))
		if !ok || len(out) == 0 {
			log.Fatal("direct call: bad response")
		}
	}
	for i := 0; i < 1000; i++ {
		call()
	}
	trivial := mod.ExportedFunction("isotope_abi_version")
	tr := sample(n, func() { _, err := trivial.Call(ctx); check(err) })
	fmt.Printf("(trivial Go export call isotope_abi_version: p50 %s)\n", round(p(tr, 50)))
	return sample(n, call)
}

func sample(n int, f func()) []time.Duration {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		f()
		d[i] = time.Since(start)
	}
	sortDurations(d)
	return d
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func p(d []time.Duration, pct int) time.Duration { return d[(len(d)-1)*pct/100] }

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d > time.Microsecond:
		return d.Round(10 * time.Nanosecond)
	}
	return d
}

func row(name string, d []time.Duration, ratio float64, unit string) {
	fmt.Printf("%-52s %10s %10s %10.2f %s\n", name, round(p(d, 50)), round(p(d, 90)), ratio, unit)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
