package router

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor"
)

// TestStatsWindows checks the per-minute buckets: the 5- and 60-minute
// windows, the quantiles, the last error, and that an hour of silence
// forgets a function.
func TestStatsWindows(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 30, 0, time.UTC)
	s := newStats()
	s.now = func() time.Time { return now }

	// 30 minutes ago: 10 requests of 40 ms, one a 502.
	now = now.Add(-30 * time.Minute)
	for i := range 10 {
		code := 200
		if i == 9 {
			code = 502
		}
		s.observe("default", "f", "/old", code, 40*time.Millisecond, i == 0)
	}
	// Now: 100 requests, 99 of 2 ms and one of 3 s (a 504).
	now = now.Add(30 * time.Minute)
	for i := range 100 {
		d, code := 2*time.Millisecond, 200
		if i == 99 {
			d, code = 3*time.Second, 504
		}
		s.observe("default", "f", "/new", code, d, false)
	}
	rep := s.snapshot([]executor.FunctionInstances{{Namespace: "default", Name: "idle", Live: 2, Busy: 1}})
	if len(rep.Functions) != 2 {
		t.Fatalf("functions: %+v", rep.Functions)
	}
	f, idle := rep.Functions[0], rep.Functions[1]
	if f.Last5m.Requests != 100 || f.Last5m.Errors != 1 || f.Last5m.ColdStarts != 0 {
		t.Errorf("5m: %+v", f.Last5m)
	}
	if f.Last60m.Requests != 110 || f.Last60m.Errors != 2 || f.Last60m.ColdStarts != 1 {
		t.Errorf("60m: %+v", f.Last60m)
	}
	// p50 inside the (1 ms, 2.5 ms] bucket, p99 inside it too (99 of 100),
	// interpolated as histogram_quantile does.
	if f.Last5m.P50Ms <= 1 || f.Last5m.P50Ms > 2.5 || f.Last5m.P99Ms <= 1 || f.Last5m.P99Ms > 2.5 {
		t.Errorf("5m quantiles: p50 %v p99 %v", f.Last5m.P50Ms, f.Last5m.P99Ms)
	}
	if q := quantileMs(1, &[19]int64{18: 1}); q != 60000 {
		t.Errorf("a request past the last bound: %v ms, want the last bound", q)
	}
	if f.LastError == nil || f.LastError.Code != 504 || f.LastError.Path != "/new" || f.LastError.Message != "the function timed out" {
		t.Errorf("last error: %+v", f.LastError)
	}
	if len(f.Minutes) != statsMinutes || f.Minutes[statsMinutes-1].Requests != 100 || f.Minutes[statsMinutes-31].Requests != 10 {
		t.Errorf("minutes: last %+v, 30 ago %+v", f.Minutes[statsMinutes-1], f.Minutes[statsMinutes-31])
	}
	if idle.Name != "idle" || idle.Instances == nil || idle.Instances.Live != 2 || idle.Last60m.Requests != 0 {
		t.Errorf("idle: %+v", idle)
	}

	// A bucket reused an hour later starts again from zero.
	now = now.Add(60 * time.Minute)
	s.observe("default", "f", "/later", 200, time.Millisecond, false)
	f = s.snapshot(nil).Functions[0]
	if f.Last60m.Requests != 1 || f.Last5m.Requests != 1 {
		t.Errorf("after an hour: %+v", f)
	}
	// An hour of silence forgets the function.
	now = now.Add(61 * time.Minute)
	if got := s.snapshot(nil).Functions; len(got) != 0 {
		t.Errorf("after an hour of silence: %+v", got)
	}
}

// TestStatsEndpoint serves a routed request's stats at StatsPath, GET
// only.
func TestStatsEndpoint(t *testing.T) {
	rt := New(Config{})
	rt.stats.observe("ns", "fn", "/x", 200, time.Millisecond, true)
	srv := httptest.NewServer(rt)
	defer srv.Close()
	rep, err := (&StatsClient{URL: srv.URL}).Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Functions) != 1 || rep.Functions[0].Last5m.Requests != 1 || rep.Functions[0].Last5m.ColdStarts != 1 {
		t.Errorf("stats: %+v", rep)
	}
	resp, err := http.Post(srv.URL+StatsPath, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST %s: %s", StatsPath, resp.Status)
	}
	if _, err := (&StatsClient{URL: srv.URL + "/nothing-here"}).Stats(t.Context()); err == nil {
		t.Errorf("stats from a wrong URL: no error")
	}
	if !AdminPath(StatsPath) {
		t.Errorf("%s is not an admin path", StatsPath)
	}
}
