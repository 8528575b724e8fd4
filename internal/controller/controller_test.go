package controller_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
	"isotope.dev/isotope/internal/store/storetest"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// The leader-election tests (leader_test.go) share one control plane.
func TestMain(m *testing.M) { kubetest.Main(m) }

// The controllers under test watch Environments in namespace "default".
const kind = v1.KindEnvironment

func key(name string) controller.Key { return controller.Key{Namespace: "default", Name: name} }

// spyStore is a real store that records the version every Watch starts
// from.
type spyStore struct {
	store.Store
	mu      sync.Mutex
	watches []string
}

func (s *spyStore) Watch(ctx context.Context, kind string, opts store.WatchOptions) (store.Watcher, error) {
	s.mu.Lock()
	s.watches = append(s.watches, opts.ResourceVersion)
	s.mu.Unlock()
	return s.Store.Watch(ctx, kind, opts)
}

func (s *spyStore) watchedFrom() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.watches)
}

func openStore(t *testing.T, opts boltstore.Options) *spyStore {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &spyStore{Store: s}
}

// call is one Reconcile: the key and what it read, the object's
// resourceVersion or "gone".
type call struct {
	key   controller.Key
	state string
}

func (c call) String() string { return c.key.Name + "@" + c.state }

// recorder is a Reconcile that reads the object from the store, like a
// real one, and records what it saw; hook, when set, runs after.
type recorder struct {
	st   store.Store
	hook func(ctx context.Context, c call) error

	mu    sync.Mutex
	calls []call
}

func (r *recorder) reconcile(ctx context.Context, k controller.Key) error {
	c := call{key: k, state: "gone"}
	obj, err := r.st.Get(ctx, kind, k.Namespace, k.Name)
	switch {
	case err == nil:
		c.state = obj.GetResourceVersion()
	case !store.IsNotFound(err):
		return err
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	if r.hook != nil {
		return r.hook(ctx, c)
	}
	return nil
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// of returns the calls for name.
func (r *recorder) of(name string) []call {
	var out []call
	for _, c := range r.all() {
		if c.key.Name == name {
			out = append(out, c)
		}
	}
	return out
}

// saw reports whether name was reconciled in state.
func (r *recorder) saw(name, state string) bool {
	return slices.Contains(r.of(name), call{key(name), state})
}

// start runs a controller for cfg (Store, Kind and Reconcile filled in
// from st and r when empty) until the test ends.
func start(t *testing.T, st store.Store, r *recorder, cfg controller.Config) {
	t.Helper()
	cfg.Store, cfg.Kind = st, kind
	if cfg.Reconcile == nil {
		cfg.Reconcile = r.reconcile
	}
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func create(t *testing.T, st store.Store, name string) string {
	t.Helper()
	return storetest.MustCreate(t, st, storetest.Sample(kind, "default", name)).GetResourceVersion()
}

// change updates name's spec and returns the new resourceVersion.
func change(t *testing.T, st store.Store, name string, n int) string {
	t.Helper()
	obj, err := st.Get(context.Background(), kind, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	storetest.ChangeSpec(obj, n)
	out, err := st.Update(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	return out.GetResourceVersion()
}

func remove(t *testing.T, st store.Store, name string) {
	t.Helper()
	if err := st.Delete(context.Background(), kind, "default", name, ""); err != nil {
		t.Fatal(err)
	}
}

// settle creates a marker object and waits for its reconcile: with one
// worker, every key enqueued before it has been reconciled by then.
func settle(t *testing.T, st store.Store, r *recorder, marker string) {
	t.Helper()
	rv := create(t, st, marker)
	waitFor(t, marker+" reconciled", func() bool { return r.saw(marker, rv) })
}

func names(calls []call) string {
	s := make([]string, len(calls))
	for i, c := range calls {
		s[i] = c.String()
	}
	return strings.Join(s, " ")
}

// Stored objects are reconciled in the store's list order at start,
// then each change in the order it happened, a deletion included.
func TestReconcilesInOrder(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	rvA := create(t, st, "a")
	rvB := create(t, st, "b")
	rvC := create(t, st, "c")
	r := &recorder{st: st}
	start(t, st, r, controller.Config{})
	waitFor(t, "the stored objects to be reconciled", func() bool { return len(r.all()) == 3 })
	if got, want := names(r.all()), fmt.Sprintf("a@%s b@%s c@%s", rvA, rvB, rvC); got != want {
		t.Fatalf("at start: %s, want %s", got, want)
	}
	rvD := create(t, st, "d")
	rvA2 := change(t, st, "a", 1)
	remove(t, st, "b")
	settle(t, st, r, "z")
	got := r.all()[3:]
	if want := fmt.Sprintf("d@%s a@%s b@gone", rvD, rvA2); names(got[:len(got)-1]) != want {
		t.Fatalf("after the changes: %s, want %s then z", names(got), want)
	}
}

// A failing Reconcile is retried, each time after a longer wait, until
// it succeeds; other keys are reconciled meanwhile.
func TestFailingReconcileIsRetriedWithBackoff(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	const base = 20 * time.Millisecond
	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	r := &recorder{st: st}
	r.hook = func(_ context.Context, c call) error {
		if c.key.Name != "flaky" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) <= 4 {
			return fmt.Errorf("attempt %d fails", len(attempts))
		}
		return nil
	}
	start(t, st, r, controller.Config{RetryBaseDelay: base, RetryMaxDelay: time.Second})
	create(t, st, "flaky")
	waitFor(t, "the first failure", func() bool { return len(r.of("flaky")) >= 1 })
	rv := create(t, st, "other")
	waitFor(t, "the other key to be reconciled", func() bool { return r.saw("other", rv) })
	waitFor(t, "the fifth attempt", func() bool { return len(r.of("flaky")) == 5 })
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(attempts); i++ {
		gap, want := attempts[i].Sub(attempts[i-1]), base<<(i-1)
		if gap < want*9/10 {
			t.Errorf("attempt %d came %v after attempt %d; want at least %v", i+1, gap, i, want)
		}
	}
	settle(t, st, r, "z")
	if n := len(r.of("flaky")); n != 5 {
		t.Fatalf("flaky reconciled %d times; want 5 (4 failures, then no more after the success)", n)
	}
}

// A resync reconciles every object again without any change, the extra
// keys ResyncKeys names too, and still passes objects through Filter.
func TestResyncReconcilesEverythingAgain(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	rvA := create(t, st, "a")
	create(t, st, "skipped")
	r := &recorder{st: st}
	start(t, st, r, controller.Config{
		ResyncInterval: 20 * time.Millisecond,
		ResyncKeys: func(context.Context) ([]controller.Key, error) {
			return []controller.Key{key("orphan")}, nil
		},
		Filter: func(ev store.Event) bool { return ev.Object.GetName() != "skipped" },
	})
	waitFor(t, "a to be reconciled three times", func() bool { return len(r.of("a")) >= 3 })
	waitFor(t, "the orphan key to be reconciled", func() bool { return r.saw("orphan", "gone") })
	for _, c := range r.of("a") {
		if c.state != rvA {
			t.Fatalf("a reconciled at %s; it never changed from %s", c.state, rvA)
		}
	}
	if n := len(r.of("skipped")); n != 0 {
		t.Fatalf("the filtered object was reconciled %d times", n)
	}
}

// gate blocks the controller's watch on the first event of one object,
// so the test can make the store close a watcher that falls behind.
type gate struct {
	name    string
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(name string) *gate {
	return &gate{name: name, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) filter(ev store.Event) bool {
	if ev.Object.GetName() == g.name {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return true
}

// When the store ends a watch (here: the controller fell more than
// WatchBuffer events behind), the controller watches again from the
// last version it got: every change is reconciled, none twice, and
// nothing is listed again.
func TestWatchResumesFromTheLastVersion(t *testing.T) {
	st := openStore(t, boltstore.Options{WatchBuffer: 1})
	r := &recorder{st: st}
	g := newGate("hold")
	start(t, st, r, controller.Config{Filter: g.filter})
	waitFor(t, "the first watch", func() bool { return len(st.watchedFrom()) == 1 })

	create(t, st, "hold")
	<-g.reached
	var rvs []string
	for i := range 6 {
		rvs = append(rvs, create(t, st, fmt.Sprintf("e%d", i)))
	}
	close(g.release)
	waitFor(t, "a second watch", func() bool { return len(st.watchedFrom()) == 2 })
	for i, rv := range rvs {
		name := fmt.Sprintf("e%d", i)
		waitFor(t, name+" reconciled", func() bool { return r.saw(name, rv) })
	}
	settle(t, st, r, "z")
	from := st.watchedFrom()
	if len(from) != 2 || from[0] != "" || from[1] == "" || !slices.Contains(rvs, from[1]) {
		t.Fatalf("watches started from %q; want \"\", then the version of one of the changes %q", from, rvs)
	}
	for _, name := range []string{"hold", "e0", "e1", "e2", "e3", "e4", "e5"} {
		if n := len(r.of(name)); n != 1 {
			t.Errorf("%s reconciled %d times; want once", name, n)
		}
	}
}

// When the version to resume from has expired (the store no longer
// keeps the changes after it), the controller lists again, and an
// object deleted in the changes it missed is reconciled as gone.
func TestExpiredWatchListsAgainAndFindsDeletions(t *testing.T) {
	st := openStore(t, boltstore.Options{WatchBuffer: 1, EventLogSize: 2})
	rvVictim := create(t, st, "victim")
	create(t, st, "keep")
	r := &recorder{st: st}
	g := newGate("hold")
	start(t, st, r, controller.Config{Filter: g.filter})
	waitFor(t, "the stored objects to be reconciled", func() bool { return r.saw("victim", rvVictim) && len(r.of("keep")) == 1 })

	create(t, st, "hold")
	<-g.reached
	for i := range 3 { // enough to close the watcher
		change(t, st, "keep", i)
	}
	remove(t, st, "victim")
	var rvKeep string
	for i := 3; i < 6; i++ { // enough to push the deletion out of the log
		rvKeep = change(t, st, "keep", i)
	}
	close(g.release)
	waitFor(t, "the victim to be reconciled as gone", func() bool { return r.saw("victim", "gone") })
	waitFor(t, "keep's last version to be reconciled", func() bool { return r.saw("keep", rvKeep) })
	from := st.watchedFrom()
	if len(from) != 3 || from[0] != "" || from[1] == "" || from[2] != "" {
		t.Fatalf("watches started from %q; want \"\", a version, then \"\" again (a new list)", from)
	}
}

// Changes to a key that arrive while it waits in the queue, or while it
// is being reconciled, cost one more Reconcile, not one per change.
func TestBurstOfChangesIsReconciledOnce(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	busyRV := create(t, st, "busy")
	create(t, st, "a")
	inBusy := make(chan struct{})
	release := make(chan struct{})
	var lastSeen sync.Map // name → resourceVersion of the last event the watch handed over
	r := &recorder{st: st}
	r.hook = func(_ context.Context, c call) error {
		if c.key.Name == "busy" && c.state == busyRV {
			close(inBusy)
			<-release
		}
		return nil
	}
	start(t, st, r, controller.Config{Filter: func(ev store.Event) bool {
		lastSeen.Store(ev.Object.GetName(), ev.Object.GetResourceVersion())
		return true
	}})
	<-inBusy
	waitFor(t, "a to be reconciled", func() bool { return len(r.of("a")) == 1 })
	// The one worker is busy: a's changes wait in the queue, busy's
	// arrive while it is reconciled.
	var rvA, rvBusy string
	for i := range 10 {
		rvA = change(t, st, "a", i)
		rvBusy = change(t, st, "busy", i)
	}
	waitFor(t, "the watch to hand over every change", func() bool {
		a, _ := lastSeen.Load("a")
		b, _ := lastSeen.Load("busy")
		return a == rvA && b == rvBusy
	})
	close(release)
	settle(t, st, r, "z")
	if got, want := names(r.of("a")), fmt.Sprintf("a@%s a@%s", r.of("a")[0].state, rvA); got != want {
		t.Errorf("a: %s; want %s", got, want)
	}
	if got, want := names(r.of("busy")), fmt.Sprintf("busy@%s busy@%s", busyRV, rvBusy); got != want {
		t.Errorf("busy: %s; want %s", got, want)
	}
}

// With several workers, different keys are reconciled at once but one
// key never twice at once.
func TestKeyIsNeverReconciledConcurrently(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	create(t, st, "x")
	create(t, st, "y")
	var (
		inFlight   sync.Map // name → *atomic.Int32
		overlapped atomic.Bool
		both       = make(chan struct{})
		bothOnce   sync.Once
		xyRunning  atomic.Int32
	)
	r := &recorder{st: st}
	r.hook = func(ctx context.Context, c call) error {
		n, _ := inFlight.LoadOrStore(c.key.Name, new(atomic.Int32))
		if n.(*atomic.Int32).Add(1) > 1 {
			overlapped.Store(true)
		}
		defer n.(*atomic.Int32).Add(-1)
		if c.key.Name == "x" || c.key.Name == "y" {
			if xyRunning.Add(1) == 2 {
				bothOnce.Do(func() { close(both) })
			}
			defer xyRunning.Add(-1)
			select {
			case <-both:
			case <-ctx.Done():
			}
		}
		return nil
	}
	start(t, st, r, controller.Config{Workers: 4})
	var last string
	for i := range 20 {
		last = change(t, st, "x", i)
	}
	waitFor(t, "x's last version to be reconciled", func() bool { return r.saw("x", last) })
	if overlapped.Load() {
		t.Fatal("a key was reconciled by two workers at once")
	}
}

// Run returns once the reconcile in progress has; a second Run fails.
func TestRunWaitsForTheReconcileInProgress(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	create(t, st, "a")
	var finished atomic.Bool
	started := make(chan struct{})
	c, err := controller.New(controller.Config{Store: st, Kind: kind, Reconcile: func(ctx context.Context, _ controller.Key) error {
		close(started)
		<-ctx.Done()
		finished.Store(true)
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !finished.Load() {
		t.Fatal("Run returned before the reconcile in progress")
	}
	if err := c.Run(context.Background()); err == nil {
		t.Fatal("a second Run succeeded")
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	rec := func(context.Context, controller.Key) error { return nil }
	for _, c := range []struct {
		cfg  controller.Config
		want string
	}{
		{controller.Config{Kind: kind, Reconcile: rec}, "Store"},
		{controller.Config{Store: st, Kind: kind}, "Reconcile"},
		{controller.Config{Store: st, Kind: "Widget", Reconcile: rec}, `"Widget"`},
	} {
		_, err := controller.New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): %v; want an error naming %s", c.cfg, err, c.want)
		}
	}
}
