package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what a load run saw: answers by status code with their
// latencies, and transport errors.
type loadResult struct {
	elapsed  time.Duration
	byCode   map[int][]time.Duration
	errors   int
	firstErr error
}

// total is the number of requests that got an answer or an error.
func (r loadResult) total() int {
	n := r.errors
	for _, l := range r.byCode {
		n += len(l)
	}
	return n
}

// latencies returns the latencies of the given codes (all when none).
func (r loadResult) latencies(codes ...int) []time.Duration {
	var out []time.Duration
	for c, l := range r.byCode {
		if len(codes) == 0 || slices.Contains(codes, c) {
			out = append(out, l...)
		}
	}
	slices.Sort(out)
	return out
}

// percentile of sorted latencies (q in 0..1); 0 when there are none.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (r loadResult) String() string {
	var codes []int
	for c := range r.byCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		l := r.latencies(c)
		parts = append(parts, fmt.Sprintf("%d×%d (p50 %v, p99 %v, max %v)", len(l), c,
			percentile(l, 0.5).Round(10*time.Microsecond), percentile(l, 0.99).Round(10*time.Microsecond), l[len(l)-1].Round(10*time.Microsecond)))
	}
	all := r.latencies()
	s := fmt.Sprintf("%d requests in %v (%.0f req/s), %d transport errors; all: p50 %v, p99 %v; by status: %s",
		r.total(), r.elapsed.Round(time.Millisecond), float64(r.total())/r.elapsed.Seconds(), r.errors,
		percentile(all, 0.5).Round(10*time.Microsecond), percentile(all, 0.99).Round(10*time.Microsecond), strings.Join(parts, ", "))
	if r.firstErr != nil {
		s += fmt.Sprintf("; first error: %v", r.firstErr)
	}
	return s
}

// loadClient sends requests and records what comes back.
type loadClient struct {
	client *http.Client
	mu     sync.Mutex
	res    loadResult
}

func newLoadClient(conns int) *loadClient {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxIdleConns: conns, IdleConnTimeout: time.Minute}
	return &loadClient{
		client: &http.Client{Transport: tr, Timeout: time.Minute},
		res:    loadResult{byCode: map[int][]time.Duration{}},
	}
}

// do sends one GET, reads the answer to the end and records it.
func (c *loadClient) do(ctx context.Context, url string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	t0 := time.Now()
	resp, err := c.client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	d := time.Since(t0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.res.errors++
		if c.res.firstErr == nil {
			c.res.firstErr = err
		}
		return
	}
	c.res.byCode[resp.StatusCode] = append(c.res.byCode[resp.StatusCode], d)
}

// done closes the connections and returns the result.
func (c *loadClient) done(start time.Time) loadResult {
	c.client.CloseIdleConnections()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.elapsed = time.Since(start)
	return c.res
}

// hammer sends n GET requests to url from conc concurrent clients over
// kept-alive connections (each sends its next request as soon as it has
// an answer), until all are sent or ctx ends.
func hammer(ctx context.Context, url string, n, conc int) loadResult {
	c := newLoadClient(conc)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				c.do(ctx, url)
			}
		}()
	}
	wg.Wait()
	return c.done(start)
}

// offer sends GET requests to url at a fixed rate for d, each in its own
// goroutine whatever the answers (an open-loop load: the arrival rate
// does not slow down when the server does), and waits for them all.
func offer(ctx context.Context, url string, rate int, d time.Duration) loadResult {
	c := newLoadClient(rate)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	for n := int(d.Seconds() * float64(rate)); n > 0; n-- {
		wg.Add(1)
		go func() { defer wg.Done(); c.do(ctx, url) }()
		<-tick.C
	}
	wg.Wait()
	return c.done(start)
}
