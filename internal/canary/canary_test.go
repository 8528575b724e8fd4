package canary

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

// counts stands in for the router's per-function counters (the e2e test
// TestCanary uses the real router): the test sets what it has counted.
type counts struct {
	mu sync.Mutex
	m  map[string][2]uint64
}

func (c *counts) FunctionCounts(ns, name string) (uint64, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.m[ns+"/"+name]
	return v[0], v[1]
}

func (c *counts) add(name string, req, fail uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.m["default/"+name]
	c.m["default/"+name] = [2]uint64{v[0] + req, v[1] + fail}
}

type fixture struct {
	t     *testing.T
	st    store.Store
	stats *counts
	now   time.Time
	c     *Controller
}

func setup(t *testing.T, step, threshold int) *fixture {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, st: st, stats: &counts{m: map[string][2]uint64{}}, now: time.Unix(1000, 0)}
	f.c = New(Config{Store: st, Stats: f.stats, Now: func() time.Time { return f.now }})
	ctx := context.Background()
	meta := func(n string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: n, Namespace: "default"} }
	if _, err := st.Create(ctx, &v1.HTTPTrigger{ObjectMeta: meta("r"), Spec: v1.HTTPTriggerSpec{RelativeURL: "/r",
		FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "old"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, &v1.CanaryConfig{ObjectMeta: meta("c"), Spec: v1.CanaryConfigSpec{
		Trigger: "r", NewFunction: "new", OldFunction: "old", WeightIncrement: step,
		WeightIncrementDuration: "1m", FailureThreshold: threshold}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// tick advances the clock by d and reconciles.
func (f *fixture) tick(d time.Duration) {
	f.t.Helper()
	f.now = f.now.Add(d)
	if err := f.c.Reconcile(context.Background(), controller.Key{Namespace: "default", Name: "c"}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) state() (map[string]int, v1.CanaryStatus) {
	f.t.Helper()
	ctx := context.Background()
	r, err := store.GetAs[*v1.HTTPTrigger](ctx, f.st, "default", "r")
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := store.GetAs[*v1.CanaryConfig](ctx, f.st, "default", "c")
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Spec.FunctionReference.FunctionWeights, c.Status.Status
}

func TestStepsToSuccess(t *testing.T) {
	f := setup(t, 40, 10)
	f.tick(0)
	if w, s := f.state(); w["new"] != 0 || w["old"] != 100 || s != v1.CanaryStatusPending {
		t.Fatalf("start: %v %s", w, s)
	}
	f.tick(30 * time.Second) // inside the interval: nothing moves
	if w, _ := f.state(); w["new"] != 0 {
		t.Fatalf("moved before the interval ended: %v", w)
	}
	for _, want := range []int{40, 80} {
		f.stats.add("new", 100, 5) // 5% ≤ 10%
		f.tick(time.Minute)
		if w, s := f.state(); w["new"] != want || w["old"] != 100-want || s != v1.CanaryStatusPending {
			t.Fatalf("step: %v %s, want new %d", w, s, want)
		}
	}
	f.stats.add("new", 100, 10) // exactly at the threshold still advances
	f.tick(time.Minute)
	if w, s := f.state(); w["new"] != 100 || w["old"] != 0 || s != v1.CanaryStatusSucceeded {
		t.Fatalf("end: %v %s, want new 100 and succeeded", w, s)
	}
	f.tick(time.Minute) // a finished canary is left alone
	if w, _ := f.state(); w["new"] != 100 {
		t.Fatalf("after success: %v", w)
	}
}

func TestRollback(t *testing.T) {
	f := setup(t, 50, 10)
	f.tick(0)
	f.tick(time.Minute) // no requests to the new function: it advances
	if w, _ := f.state(); w["new"] != 50 {
		t.Fatalf("first step: %v", w)
	}
	f.stats.add("old", 1000, 900) // the old function's failures do not count
	f.stats.add("new", 100, 11)
	f.tick(time.Minute)
	if w, s := f.state(); w["new"] != 0 || w["old"] != 100 || s != v1.CanaryStatusFailed {
		t.Fatalf("after 11%% failures: %v %s, want all traffic back and failed", w, s)
	}
}
