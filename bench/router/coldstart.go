package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// coldKind is a kind of WebAssembly function whose cold start is measured.
type coldKind struct {
	name    string // in figure names
	backend string // key of backends
}

var coldKinds = []coldKind{
	{"wagi", "wasm-wagi"},
	{"go reactor", "wasm-reactor"},
}

// coldResult holds one kind's samples.
type coldResult struct {
	kind  coldKind
	first []time.Duration // first request to a fresh function, route known
	cold  int             // first requests the executor counted as cold starts
	warm  []time.Duration // the second request to the same functions
	e2e   []time.Duration // package, function and route stored → first 200 through the new route
	route []time.Duration // the route stored (its package and function already were) → first 200
	exec  []time.Duration // Acquire+serve of a function the executor never saw
	fresh []time.Duration // the same with a deploy archive never seen
}

// coldStart measures the cold start of n fresh functions of kind through
// the router and the real executor:
//
//  1. n packages, functions and routes are stored, then a sentinel route;
//     once the router serves the sentinel it knows all n routes, and
//     nothing of the n functions has run (poolmgr: instances are made on
//     the first request; the wasm runtime is not pooled).
//  2. Each function's first request is timed, then each function's
//     second request (the warm baseline). A first request that finds the
//     function not yet loaded pays the fetch of the deploy archive into
//     the function's directory, the load (the module's code is already
//     compiled, as after its package became ready: the primer compiled
//     it) and, for a reactor, the start of its instances; the executor
//     may also have preloaded the function in the background as soon as
//     it was stored. The router's cold-start counter tells which.
//  3. e2e more functions are timed to their first 200, polling the new
//     route, twice: from the moment the route is stored, its write
//     returned (its package and function already were: the store's
//     watch, the route table's rebuild and the cold start; the goal row),
//     and from the start of the first of the three store writes (each an
//     fsynced bbolt commit). The goal is the change on
//     an idle platform (a user deploying), so each starts after a pause
//     long enough for the router's rebuild pacing to have refilled
//     (router.burstRebuilds tokens at one per Debounce: 80 ms); right
//     after the bursts of the steps above, the two rebuilds a function
//     and its route cause would wait for pacing tokens (about 20 ms),
//     which is what the pacing is for. The burst figure measures that.
//
// One client in this process sends the requests one at a time, so it does
// not compete with the servers for the CPU. The functions are deleted at
// the end.
// idlePause is longer than the router's rebuild pacing takes to refill
// (4 tokens at the default 20 ms Debounce).
const idlePause = 120 * time.Millisecond

func coldStart(h *harness, base string, kind coldKind, n, e2e int) (coldResult, error) {
	res := coldResult{kind: kind}
	b := backends[kind.backend]
	tag := fmt.Sprintf("cold-%s", kind.backend)
	var created []string
	defer func() {
		for _, name := range created {
			h.removeFunction(name)
		}
	}()

	// Compile the module once (a package that became ready) through a
	// primer function kept alive during the measurement.
	primer := tag + "-primer"
	if _, err := h.addFunction(b, primer, "/"+primer, nil); err != nil {
		return res, err
	}
	created = append(created, primer)
	for i := range n {
		name := fmt.Sprintf("%s-%d", tag, i)
		if _, err := h.addFunction(b, name, "/"+name, nil); err != nil {
			return res, err
		}
		created = append(created, name)
	}
	if err := waitRoutes(h, base, tag); err != nil {
		return res, err
	}
	created = append(created, "ready-"+tag)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	if _, err := get(client, base+"/"+primer); err != nil {
		return res, err
	}
	timeGet := func(u string) (time.Duration, error) {
		t0 := time.Now()
		_, err := get(client, u)
		return time.Since(t0), err
	}
	before, err := h.coldStarts()
	if err != nil {
		return res, err
	}
	for i := range n {
		d, err := timeGet(fmt.Sprintf("%s/%s-%d", base, tag, i))
		if err != nil {
			return res, err
		}
		res.first = append(res.first, d)
	}
	// Count the timed first requests the executor reported as cold
	// starts (the router's isotope_router_cold_starts_total): a function
	// the executor preloaded in the background once it and its package
	// were stored is not one, and that is the point of preloading.
	after, err := h.coldStarts()
	if err != nil {
		return res, err
	}
	for i := range n {
		name := fmt.Sprintf("%s-%d", tag, i)
		res.cold += int(after[name] - before[name])
	}
	for i := range n {
		d, err := timeGet(fmt.Sprintf("%s/%s-%d", base, tag, i))
		if err != nil {
			return res, err
		}
		res.warm = append(res.warm, d)
	}

	for i := range e2e {
		name := fmt.Sprintf("%s-e2e-%d", tag, i)
		time.Sleep(idlePause) // not a wait for a condition: the idle platform the figure is about
		t0 := time.Now()
		if _, err := h.addFunction(b, name, "", nil); err != nil {
			return res, err
		}
		created = append(created, name)
		if err := h.addRoute(name+"-route", name, "/"+name); err != nil {
			return res, err
		}
		tr := time.Now() // the route is stored: the write (an fsynced commit) has returned
		deadline := t0.Add(30 * time.Second)
		for {
			resp, err := client.Get(base + "/" + name)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				if resp.StatusCode != http.StatusNotFound {
					return res, fmt.Errorf("GET /%s: %s", name, resp.Status)
				}
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("GET /%s: no answer within 30 s (last: %v)", name, err)
			}
			time.Sleep(500 * time.Microsecond) // poll resolution
		}
		res.e2e = append(res.e2e, time.Since(t0))
		res.route = append(res.route, time.Since(tr))
	}
	// 4. Nothing warm, whatever the executor preloads: functions whose
	// packages are stored but which are not (so no watch event preloads
	// them) are acquired from the executor directly and served once.
	for i := range n {
		name := fmt.Sprintf("%s-x%d", tag, i)
		d, err := acquireOnce(h, b, name, "")
		created = append(created, name)
		if err != nil {
			return res, err
		}
		res.exec = append(res.exec, d)
	}
	// 5. The same with a deploy archive of its own (same code, other
	// bytes), acquired right after its package is stored: fetched,
	// hashed and unpacked; the code looked up (for the reactor, decoded
	// and validated by wazero, then found in the disk cache; the WAGI
	// module compiled). The executor starts preparing the package as
	// soon as the store tells it, and the load waits for that same work.
	for i := range min(n, 5) {
		name := fmt.Sprintf("%s-n%d", tag, i)
		d, err := acquireOnce(h, b, name, fmt.Sprintf("%d-%d", i, time.Now().UnixNano()))
		created = append(created, name)
		if err != nil {
			return res, err
		}
		res.fresh = append(res.fresh, d)
	}
	slices.Sort(res.exec)
	slices.Sort(res.fresh)
	slices.Sort(res.first)
	slices.Sort(res.warm)
	slices.Sort(res.e2e)
	slices.Sort(res.route)
	fmt.Fprintf(os.Stderr, "cold start %s: first %v (%d counted as cold starts), warm %v, created→first answer %v, executor nothing warm %v, new archive %v\n",
		kind.name, res.first, res.cold, res.warm, res.e2e, res.exec, res.fresh)
	return res, nil
}

// acquireOnce stores the package of a function of backend b named name
// (with a deploy archive of its own unless nonce is ""), but not the
// function, so that nothing preloads it, then acquires it from the
// executor and serves one request: the executor's whole cold start.
func acquireOnce(h *harness, b backend, name, nonce string) (time.Duration, error) {
	fn, err := h.newFunctionOf(b, name, nonce)
	if err != nil {
		return 0, err
	}
	fn.UID = types.UID(fmt.Sprintf("bench-%s-%d", name, time.Now().UnixNano()))
	t0 := time.Now()
	l, err := h.exec.Acquire(h.ctx, fn)
	if err != nil {
		return 0, fmt.Errorf("acquire %s: %w", name, err)
	}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	l.Release(nil)
	d := time.Since(t0)
	if rec.Code != http.StatusOK || !l.ColdStart() {
		return 0, fmt.Errorf("%s: answered %d (cold start %v): %.200s", name, rec.Code, l.ColdStart(), rec.Body)
	}
	return d, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[(len(d)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func printCold(rs []coldResult) {
	fmt.Printf("\ncold start through the router (one client, sequential)\n\n")
	fmt.Printf("%-40s %10s %10s %10s\n", "", "p50", "p90", "n")
	for _, r := range rs {
		fmt.Printf("%-40s %10s %10s %10d   (%d counted as cold starts)\n", r.kind.name+": first request, route known", ms(pct(r.first, 50)), ms(pct(r.first, 90)), len(r.first), r.cold)
		fmt.Printf("%-40s %10s %10s %10d\n", r.kind.name+": second request (warm)", ms(pct(r.warm, 50)), ms(pct(r.warm, 90)), len(r.warm))
		fmt.Printf("%-40s %10s %10s %10d\n", r.kind.name+": nothing warm, executor directly", ms(pct(r.exec, 50)), ms(pct(r.exec, 90)), len(r.exec))
		fmt.Printf("%-40s %10s %10s %10d\n", r.kind.name+": same, new deploy archive", ms(pct(r.fresh, 50)), ms(pct(r.fresh, 90)), len(r.fresh))
		if len(r.e2e) > 0 {
			fmt.Printf("%-40s %10s %10s %10d\n", r.kind.name+": stored → first answer", ms(pct(r.e2e, 50)), ms(pct(r.e2e, 90)), len(r.e2e))
			fmt.Printf("%-40s %10s %10s %10d\n", r.kind.name+": route stored → first answer", ms(pct(r.route, 50)), ms(pct(r.route, 90)), len(r.route))
		}
	}
}

func (r coldResult) report() {
	first, warm := pct(r.first, 50), pct(r.warm, 50)
	bench(fmt.Sprintf("cold start p50, first request (%s, %d fns)", r.kind.name, len(r.first)),
		fmt.Sprintf("%s (%d cold)", ms(first), r.cold), ms(warm)+" warm",
		float64(first)/float64(warm), "<= 10 ms", first <= 10*time.Millisecond)
	x := pct(r.exec, 50)
	bench(fmt.Sprintf("cold start p50, nothing warm, executor (%s, %d fns)", r.kind.name, len(r.exec)),
		fmt.Sprintf("%s (p90 %s)", ms(x), ms(pct(r.exec, 90))), ms(warm)+" warm",
		float64(x)/float64(warm), "<= 10 ms", x <= 10*time.Millisecond)
	if len(r.fresh) > 0 {
		f := pct(r.fresh, 50)
		bench(fmt.Sprintf("cold start p50, nothing warm, new deploy archive (%s, %d fns)", r.kind.name, len(r.fresh)),
			ms(f), ms(x)+" nothing warm", float64(f)/float64(x), "<= 30 ms", f <= 30*time.Millisecond)
	}
	if len(r.e2e) > 0 {
		e, rt := pct(r.e2e, 50), pct(r.route, 50)
		bench(fmt.Sprintf("route stored -> first answer p50 (%s, %d fns)", r.kind.name, len(r.route)),
			ms(rt), ms(first)+" first request", float64(rt)/float64(first), "<= 5 ms", rt <= 5*time.Millisecond)
		fmt.Printf("BENCH | package, function, route stored -> first answer p50 (%s, %d fns) | %s | %s route stored | %.2f | info (adds three fsynced store writes)\n",
			r.kind.name, len(r.e2e), ms(e), ms(rt), float64(e)/float64(rt))
	}
}
