package router

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"isotope.dev/isotope/internal/executor"
)

// The router keeps, beside its Prometheus series, a short memory of each
// function's requests: an hour of one-minute buckets, each with a count
// of requests, errors and cold starts and a latency histogram over the
// Prometheus buckets. It answers "how is this function doing now" without
// a Prometheus server, in embedded and Kubernetes modes alike, and is
// served at StatsPath for the API's status endpoint (package status).

// StatsPath is where the router serves its windowed per-function stats
// (StatsReport as JSON). Like /metrics it is an admin path (AdminPath).
const StatsPath = "/_stats"

// statsMinutes is how many one-minute buckets each function keeps.
const statsMinutes = 60

// StatsReport is the router's view of every function it served in the
// last hour or has instances of.
type StatsReport struct {
	Time      time.Time       `json:"time"`
	Functions []FunctionStats `json:"functions"`
}

// FunctionStats are one function's requests over the last 5 and 60
// minutes, per minute, its last error and its instances.
type FunctionStats struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Last5m    Window `json:"last5m"`
	Last60m   Window `json:"last60m"`
	// Minutes are the last statsMinutes minutes, oldest first; the last
	// one is the current, partial minute.
	Minutes   []MinutePoint `json:"minutes,omitempty"`
	LastError *LastError    `json:"lastError,omitempty"`
	// Instances are the executor's live instances of the function in
	// this router's process.
	Instances *executor.FunctionInstances `json:"instances,omitempty"`
}

// Window sums the requests of a span of minutes.
type Window struct {
	Requests   int64 `json:"requests"`
	Errors     int64 `json:"errors"`
	ColdStarts int64 `json:"coldStarts"`
	// P50Ms and P99Ms are latency quantiles in milliseconds, estimated
	// from the histogram as Prometheus's histogram_quantile does; 0
	// without requests.
	P50Ms float64 `json:"p50ms"`
	P99Ms float64 `json:"p99ms"`
}

// MinutePoint is one minute of a function's requests.
type MinutePoint struct {
	Start    time.Time `json:"start"`
	Requests int64     `json:"requests"`
	Errors   int64     `json:"errors"`
	P50Ms    float64   `json:"p50ms"`
	P99Ms    float64   `json:"p99ms"`
}

// LastError is the most recent failed request of a function (an error as
// isError counts it). The router's detail stays in its log.
type LastError struct {
	Time    time.Time `json:"time"`
	Code    int       `json:"code"`
	Message string    `json:"message"`
	Path    string    `json:"path"`
}

type minuteBucket struct {
	minute                  int64 // unix minute this bucket holds
	requests, errors, colds int64
	hist                    [19]int64 // len(latencyBuckets)+1, the last is +Inf
}

type fnStats struct {
	mins    [statsMinutes]minuteBucket
	lastErr *LastError
	last    time.Time
}

// stats is the router's windowed per-function memory.
type stats struct {
	mu  sync.Mutex
	fns map[[2]string]*fnStats
	now func() time.Time
}

func newStats() *stats {
	return &stats{fns: map[[2]string]*fnStats{}, now: time.Now}
}

func (s *stats) observe(ns, name, path string, code int, d time.Duration, cold bool) {
	now := s.now()
	minute := now.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{ns, name}
	f := s.fns[k]
	if f == nil {
		f = &fnStats{}
		s.fns[k] = f
	}
	f.last = now
	b := &f.mins[minute%statsMinutes]
	if b.minute != minute {
		*b = minuteBucket{minute: minute}
	}
	b.requests++
	if cold {
		b.colds++
	}
	if isError(code) {
		b.errors++
		f.lastErr = &LastError{Time: now.UTC(), Code: code, Message: errorMessage(code), Path: path}
	}
	b.hist[sort.SearchFloat64s(latencyBuckets, d.Seconds())]++
}

// snapshot reports every function seen in the last hour, and every one
// in instances, sorted by namespace and name. Functions silent for an
// hour are forgotten.
func (s *stats) snapshot(instances []executor.FunctionInstances) StatsReport {
	now := s.now()
	minute := now.Unix() / 60
	s.mu.Lock()
	byKey := map[[2]string]*FunctionStats{}
	for k, f := range s.fns {
		if now.Sub(f.last) > statsMinutes*time.Minute {
			delete(s.fns, k)
			continue
		}
		fs := &FunctionStats{Namespace: k[0], Name: k[1], Minutes: make([]MinutePoint, statsMinutes)}
		var h5, h60 [19]int64
		for i := range statsMinutes {
			m := minute - statsMinutes + 1 + int64(i)
			p := MinutePoint{Start: time.Unix(m*60, 0).UTC()}
			b := &f.mins[m%statsMinutes]
			if b.minute == m {
				p.Requests, p.Errors = b.requests, b.errors
				p.P50Ms, p.P99Ms = quantileMs(0.5, &b.hist), quantileMs(0.99, &b.hist)
				add(&fs.Last60m, b, &h60)
				if m > minute-5 {
					add(&fs.Last5m, b, &h5)
				}
			}
			fs.Minutes[i] = p
		}
		fs.Last5m.P50Ms, fs.Last5m.P99Ms = quantileMs(0.5, &h5), quantileMs(0.99, &h5)
		fs.Last60m.P50Ms, fs.Last60m.P99Ms = quantileMs(0.5, &h60), quantileMs(0.99, &h60)
		if f.lastErr != nil {
			e := *f.lastErr
			fs.LastError = &e
		}
		byKey[k] = fs
	}
	s.mu.Unlock()
	for _, fi := range instances {
		k := [2]string{fi.Namespace, fi.Name}
		fs := byKey[k]
		if fs == nil {
			fs = &FunctionStats{Namespace: k[0], Name: k[1]}
			byKey[k] = fs
		}
		fi := fi
		fs.Instances = &fi
	}
	r := StatsReport{Time: now.UTC(), Functions: make([]FunctionStats, 0, len(byKey))}
	for _, fs := range byKey {
		r.Functions = append(r.Functions, *fs)
	}
	sort.Slice(r.Functions, func(i, j int) bool {
		a, b := r.Functions[i], r.Functions[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return r
}

// errorMessage names a failure without the router's detail (which goes
// to its log under a request id).
func errorMessage(code int) string {
	switch code {
	case http429:
		return "concurrency limit reached"
	case statusClientClosed:
		return "the client closed the request"
	}
	if code >= 500 {
		return publicMessage(code, "")
	}
	return http.StatusText(code)
}

func add(w *Window, b *minuteBucket, h *[19]int64) {
	w.Requests += b.requests
	w.Errors += b.errors
	w.ColdStarts += b.colds
	for i, n := range b.hist {
		h[i] += n
	}
}

// quantileMs estimates the q-quantile of a histogram in milliseconds,
// interpolating linearly inside the bucket that holds it (as Prometheus's
// histogram_quantile does); the +Inf bucket answers the highest bound.
func quantileMs(q float64, h *[19]int64) float64 {
	var total int64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, n := range h {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		if i == len(latencyBuckets) {
			return latencyBuckets[i-1] * 1000
		}
		lo := 0.0
		if i > 0 {
			lo = latencyBuckets[i-1]
		}
		hi := latencyBuckets[i]
		v := lo + (hi-lo)*(rank-float64(seen))/float64(n)
		return math.Round(v*1e6) / 1e3 // ms with µs precision
	}
	return latencyBuckets[len(latencyBuckets)-1] * 1000
}

// Stats reports the router's windowed per-function stats, with the
// executor's instance counts when it keeps them.
func (rt *Router) Stats(context.Context) (*StatsReport, error) {
	var inst []executor.FunctionInstances
	if c, ok := rt.exec.(executor.InstanceCounter); ok {
		inst = c.Instances()
	}
	r := rt.stats.snapshot(inst)
	return &r, nil
}

func (rt *Router) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, r, http.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	rep, _ := rt.Stats(r.Context())
	writeJSON(w, http.StatusOK, rep)
}

// StatsClient reads a router's stats over HTTP (StatsPath), for an API
// that runs apart from its router (Kubernetes mode).
type StatsClient struct {
	// URL is the router's base URL, e.g. http://router.
	URL string
	// HTTP is the client to use; nil uses one with a 5 s timeout.
	HTTP *http.Client
	// Token, when set, is sent as a bearer token (router auth).
	Token string
}

// Stats implements the status package's source of stats.
func (c *StatsClient) Stats(ctx context.Context) (*StatsReport, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+StatsPath, nil)
	if err != nil {
		return nil, fmt.Errorf("router stats: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router stats from %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("router stats from %s: %s", c.URL, resp.Status)
	}
	var rep StatsReport
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("router stats from %s: %w", c.URL, err)
	}
	return &rep, nil
}
