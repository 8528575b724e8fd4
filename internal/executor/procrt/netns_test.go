package procrt_test

import (
	"context"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor/procrt"
	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/netns"
)

func isolatedFixture(t *testing.T) *fixture {
	t.Helper()
	// The shim is this test binary, or the isotope binary named by
	// ISOTOPE_SHIM_EXE (to measure the real one's start).
	exe := os.Args[0]
	if e := os.Getenv("ISOTOPE_SHIM_EXE"); e != "" {
		exe = e
	}
	policy := &netns.Policy{Default: netns.Isolated, Exe: exe}
	if err := policy.Available(); err != nil {
		t.Skipf("no network namespaces here: %v", err)
	}
	f := newFixture(t)
	f.rt = procrt.New(procrt.Config{
		WorkDir: f.work, Fetcher: &fetcher.InProcess{Packages: f.st}, Logs: f.logs, Network: policy,
	})
	return f
}

// In its own network the program is told PORT=8888 and reached through
// the shim; Close removes the socket and the directory and leaves no
// process.
func TestIsolatedInstanceListensOn8888(t *testing.T) {
	f := isolatedFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "iso", 2, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	pid := inst.(pider).PID()
	if err := inst.Specialize(ctx, f.function(t, env, []byte("isolated"))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	if got := get(t, srv.URL+"/"); got != "isolated" {
		t.Fatalf("body %q", got)
	}
	if got := get(t, srv.URL+"/?env=PORT"); got != "8888" {
		t.Fatalf("PORT=%q in an isolated network, want 8888", got)
	}
	inst.Close()
	if !proctest.ProcessGone(pid) {
		t.Fatalf("shim %d still exists after Close", pid)
	}
	if entries, _ := os.ReadDir(f.work); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestNetnsColdStartCost measures what the shim adds, median of 20 each
// way: to an instance's start (a new process, which a poolmgr pool does
// ahead of requests), and to a cold start from a warm instance
// (specialization and the first request, on the request path).
func TestNetnsColdStartCost(t *testing.T) {
	iso := isolatedFixture(t)
	host := newFixture(t)
	const n = 20
	measure := func(f *fixture, name string) (start, cold time.Duration) {
		env := proctest.Environment(t, "default", name, 2, nil)
		fn := f.function(t, env, []byte("x"))
		var starts, colds []time.Duration
		for range n {
			t0 := time.Now()
			inst, err := f.rt.Start(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}
			t1 := time.Now()
			if err := inst.Specialize(context.Background(), fn); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			inst.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != 200 {
				t.Fatalf("first request: %d", rec.Code)
			}
			starts, colds = append(starts, t1.Sub(t0)), append(colds, time.Since(t1))
			inst.Close()
		}
		slices.Sort(starts)
		slices.Sort(colds)
		return starts[n/2], colds[n/2]
	}
	hs, hc := measure(host, "host")
	is, ic := measure(iso, "isolated")
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	t.Logf("median of %d: instance start: host network %s, own network namespace %s (+%s); "+
		"specialization + first request: host %s, namespace %s (+%s)",
		n, r(hs), r(is), r(is-hs), r(hc), r(ic), r(ic-hc))
}
