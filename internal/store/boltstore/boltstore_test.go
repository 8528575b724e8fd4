package boltstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/storetest"
)

func openTemp(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "isotope.db")
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t, Options{})
		return s
	})
}

// dump returns every object of every kind, as JSON, keyed by kind/ns/name.
func dump(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range v1.Kinds() {
		objs, _, err := s.List(context.Background(), k.Kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			out[k.Kind+"/"+o.GetNamespace()+"/"+o.GetName()] = storetest.JSON(o)
		}
	}
	return out
}

func TestReopenReadsEverythingBack(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, Options{})
	for _, ns := range []string{"default", "team-a"} {
		for i, o := range storetest.Samples(ns) {
			c := storetest.MustCreate(t, s, o)
			storetest.ChangeSpec(c, i)
			if _, err := s.Update(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	pkg, err := store.GetAs[*v1.Package](ctx, s, "team-a", "hello-pkg")
	if err != nil {
		t.Fatal(err)
	}
	pkg.Status.BuildLog = "built"
	if _, err := s.UpdateStatus(ctx, pkg); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, v1.KindTimeTrigger, "default", "tick", ""); err != nil {
		t.Fatal(err)
	}
	before := dump(t, s)
	_, rvBefore, _ := s.List(ctx, v1.KindFunction, store.ListOptions{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after := dump(t, s2)
	// Every sample in two namespaces, less the deleted timer.
	if want := 2*len(storetest.Samples("")) - 1; len(after) != want {
		t.Errorf("%d objects after reopen, want %d", len(after), want)
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s after reopen:\n%s\nwant\n%s", k, after[k], v)
		}
	}
	_, rvAfter, _ := s2.List(ctx, v1.KindFunction, store.ListOptions{})
	if rvAfter != rvBefore {
		t.Errorf("resourceVersion %s after reopen, want %s", rvAfter, rvBefore)
	}
	// The event log survived: a watch from before the close replays the
	// deletion, and new writes continue the sequence.
	from := strconv.FormatUint(storetest.RV(t, rvBefore)-1, 10)
	w, err := s2.Watch(ctx, v1.KindTimeTrigger, store.WatchOptions{ResourceVersion: from})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := storetest.NextEvent(t, w); ev.Type != store.Deleted || ev.Object.GetName() != "tick" || ev.Object.GetResourceVersion() != rvBefore {
		t.Errorf("replayed across restart: %s", storetest.EventString(ev))
	}
	c := storetest.MustCreate(t, s2, storetest.Sample(v1.KindTimeTrigger, "default", "tock"))
	if storetest.RV(t, c.GetResourceVersion()) != storetest.RV(t, rvBefore)+1 {
		t.Errorf("first write after reopen has resourceVersion %s, want %s+1", c.GetResourceVersion(), rvBefore)
	}
	if ev := storetest.NextEvent(t, w); ev.Type != store.Added || ev.Object.GetName() != "tock" {
		t.Errorf("live after replay: %s", storetest.EventString(ev))
	}
}

func TestWatchFromTooOldVersionExpires(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t, Options{EventLogSize: 5})
	var last v1.Object
	for i := range 10 {
		last = storetest.MustCreate(t, s, storetest.Sample(v1.KindFunction, "default", fmt.Sprintf("f%d", i)))
	}
	// rv 10 is current; the log holds 6..10, so watching from 5 works
	// and from 4 does not.
	if _, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "4"}); !store.IsExpired(err) {
		t.Fatalf("watch from 4 with log 6..10: %v, want Expired", err)
	} else if !strings.Contains(err.Error(), "too old") {
		t.Errorf("message %q", err)
	}
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "5"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		if ev := storetest.NextEvent(t, w); ev.Object.GetName() != fmt.Sprintf("f%d", i) {
			t.Errorf("replay %d: %s", i, storetest.EventString(ev))
		}
	}
	w.Stop()
	if _, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "11"}); !store.IsExpired(err) {
		t.Errorf("watch from the future: %v, want Expired", err)
	}
	if last.GetResourceVersion() != "10" {
		t.Fatalf("last rv %s", last.GetResourceVersion())
	}
	// Reopening with a smaller log trims it at once.
	s.Close()
	s2, err := Open(path, Options{EventLogSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "7"}); !store.IsExpired(err) {
		t.Errorf("watch from 7 with log 9..10: %v, want Expired", err)
	}
	if w, err := s2.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "8"}); err != nil {
		t.Errorf("watch from 8 with log 9..10: %v", err)
	} else {
		w.Stop()
	}
}

// A watcher that does not read must not block writers: it is closed
// after the events it buffered, and can resume from the last one.
func TestSlowWatcherIsClosedNotBlocking(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t, Options{WatchBuffer: 4})
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const n = 40
	for i := range n {
		storetest.MustCreate(t, s, storetest.Sample(v1.KindFunction, "default", fmt.Sprintf("f%02d", i)))
	}
	var last uint64
	for ev := range w.ResultChan() {
		rv := storetest.RV(t, ev.Object.GetResourceVersion())
		if rv != last+1 {
			t.Fatalf("event rv %d after %d: gap", rv, last)
		}
		last = rv
	}
	if last >= n {
		t.Fatalf("slow watcher received all %d events; expected it to be closed early", last)
	}
	w2, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: strconv.FormatUint(last, 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	for last < n {
		ev := storetest.NextEvent(t, w2)
		if rv := storetest.RV(t, ev.Object.GetResourceVersion()); rv != last+1 {
			t.Fatalf("resumed rv %d after %d", rv, last)
		}
		last++
	}
}

func TestCloseEndsWatchesAndRefusesWrites(t *testing.T) {
	s, _ := openTemp(t, Options{})
	w, err := s.Watch(context.Background(), v1.KindFunction, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, w); ev.Type != store.Bookmark {
		t.Fatalf("first event %s", storetest.EventString(ev))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.ResultChan():
		if ok {
			t.Error("event after close")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch not closed by Close")
	}
	if _, err := s.Create(context.Background(), storetest.Sample(v1.KindFunction, "default", "x")); err == nil {
		t.Error("create after close succeeded")
	}
}

func TestSecondOpenFailsWhileLocked(t *testing.T) {
	_, path := openTemp(t, Options{})
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want a locked error", err)
	}
}

func TestUnknownKind(t *testing.T) {
	s, _ := openTemp(t, Options{})
	_, err := s.Get(context.Background(), "Gadget", "default", "x")
	if err == nil || !strings.Contains(err.Error(), "Gadget") {
		t.Fatalf("unknown kind: %v", err)
	}
	// Aliases resolve.
	storetest.MustCreate(t, s, storetest.Sample(v1.KindFunction, "default", "x"))
	if _, err := s.Get(context.Background(), "fn", "default", "x"); err != nil {
		t.Errorf("get by alias: %v", err)
	}
}

// The route check runs inside the write's transaction: of many colliding
// triggers created at once, in different namespaces, exactly one is
// stored.
func TestConcurrentDuplicateRoutesOneWins(t *testing.T) {
	s, _ := openTemp(t, Options{})
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			tr := storetest.Sample(v1.KindHTTPTrigger, fmt.Sprintf("ns%d", i), "race").(*v1.HTTPTrigger)
			tr.Spec.RelativeURL = "/race"
			_, err := s.Create(context.Background(), tr)
			errs <- err
		}()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !store.IsAlreadyExists(err):
			t.Errorf("unexpected error: %v", err)
		}
	}
	all, _, err := s.List(context.Background(), v1.KindHTTPTrigger, store.ListOptions{})
	if won != 1 || err != nil || len(all) != 1 {
		t.Fatalf("%d creates won, %d triggers stored (%v); want exactly 1", won, len(all), err)
	}
}

func TestCoreConformance(t *testing.T) {
	s, _ := openTemp(t, Options{})
	storetest.RunCore(t, s, "default")
}
