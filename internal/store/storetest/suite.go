package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// Run runs the conformance suite. newStore returns an empty store; it is
// called once per subtest and the store is the subtest's to use (the
// factory arranges its cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CRUDEveryKind", func(t *testing.T) { testCRUD(t, newStore(t)) })
	t.Run("AlreadyExists", func(t *testing.T) { testAlreadyExists(t, newStore(t)) })
	t.Run("DuplicateRoutesRefused", func(t *testing.T) { testDuplicateRoutes(t, newStore(t)) })
	t.Run("InvalidStoresNothing", func(t *testing.T) { testInvalid(t, newStore(t)) })
	t.Run("StaleUpdateConflicts", func(t *testing.T) { testStale(t, newStore(t)) })
	t.Run("ConcurrentUpdatesOneWins", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("Status", func(t *testing.T) { testStatus(t, newStore(t)) })
	t.Run("Filtering", func(t *testing.T) { testFiltering(t, newStore(t)) })
	t.Run("ReturnsCopies", func(t *testing.T) { testCopies(t, newStore(t)) })
	t.Run("WatchSeesAllInOrder", func(t *testing.T) { testWatchOrder(t, newStore(t)) })
	t.Run("WatchReplaysFromVersion", func(t *testing.T) { testWatchReplay(t, newStore(t)) })
	t.Run("WatchFilters", func(t *testing.T) { testWatchFilters(t, newStore(t)) })
	t.Run("WatchStops", func(t *testing.T) { testWatchStops(t, newStore(t)) })
}

// Ctx returns a context that ends with the test.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// MustCreate creates obj or fails the test.
func MustCreate(t *testing.T, s store.Store, obj v1.Object) v1.Object {
	t.Helper()
	out, err := s.Create(Ctx(t), obj)
	if err != nil {
		t.Fatalf("create %s %s: %v", v1.KindOf(obj), obj.GetName(), err)
	}
	return out
}

// JSON encodes obj for comparisons and messages.
func JSON(obj any) string {
	b, err := json.Marshal(obj)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// RV parses a resourceVersion or fails the test.
func RV(t *testing.T, rv string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q: %v", rv, err)
	}
	return n
}

// NextEvent waits for the next event, failing the test after 10s or when
// the channel closes.
func NextEvent(t *testing.T, w store.Watcher) store.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return store.Event{}
}

func testCRUD(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	var lastRV uint64
	for i, sample := range Samples("default") {
		kind := v1.KindOf(sample)
		t.Run(kind, func(t *testing.T) {
			created := MustCreate(t, s, sample)
			if created.GetUID() == "" || created.GetGeneration() != 1 || created.GetCreationTimestamp().Time.IsZero() {
				t.Errorf("create did not set uid/generation/creationTimestamp: %s", JSON(created))
			}
			rv := RV(t, created.GetResourceVersion())
			if rv <= lastRV {
				t.Errorf("resourceVersion %d not above previous %d", rv, lastRV)
			}
			lastRV = rv
			gvk := created.GetObjectKind().GroupVersionKind()
			if gvk.Kind != kind || gvk.GroupVersion().String() != v1.APIVersion {
				t.Errorf("returned type meta %v, want %s %s", gvk, v1.APIVersion, kind)
			}
			if sample.GetResourceVersion() != "" || sample.GetUID() != "" {
				t.Errorf("Create modified its argument")
			}

			got, err := s.Get(ctx, kind, "default", sample.GetName())
			if err != nil {
				t.Fatal(err)
			}
			if JSON(got) != JSON(created) {
				t.Errorf("get differs from create:\n%s\n%s", JSON(got), JSON(created))
			}
			list, listRV, err := s.List(ctx, kind, store.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || JSON(list[0]) != JSON(created) {
				t.Errorf("list = %s", JSON(list))
			}
			if RV(t, listRV) < rv {
				t.Errorf("list resourceVersion %s below object's %d", listRV, rv)
			}

			changed := got.DeepCopyObject().(v1.Object)
			ChangeSpec(changed, i)
			updated, err := s.Update(ctx, changed)
			if err != nil {
				t.Fatal(err)
			}
			if updated.GetGeneration() != 2 || RV(t, updated.GetResourceVersion()) <= rv {
				t.Errorf("update: generation %d rv %s (was %d)", updated.GetGeneration(), updated.GetResourceVersion(), rv)
			}
			if updated.GetUID() != created.GetUID() || !updated.GetCreationTimestamp().Time.Equal(created.GetCreationTimestamp().Time) {
				t.Errorf("update changed uid or creationTimestamp")
			}
			lastRV = RV(t, updated.GetResourceVersion())

			// An update that changes nothing writes nothing.
			same, err := s.Update(ctx, updated)
			if err != nil {
				t.Fatal(err)
			}
			if same.GetResourceVersion() != updated.GetResourceVersion() {
				t.Errorf("no-op update bumped resourceVersion %s → %s", updated.GetResourceVersion(), same.GetResourceVersion())
			}
			// A label change is a write but not a new generation.
			relabel := updated.DeepCopyObject().(v1.Object)
			relabel.SetLabels(map[string]string{"app": "hello", "x": "y"})
			relabeled, err := s.Update(ctx, relabel)
			if err != nil {
				t.Fatal(err)
			}
			if relabeled.GetGeneration() != 2 || relabeled.GetLabels()["x"] != "y" || relabeled.GetResourceVersion() == updated.GetResourceVersion() {
				t.Errorf("label update: %s", JSON(relabeled))
			}
			lastRV = RV(t, relabeled.GetResourceVersion())

			err = s.Delete(ctx, kind, "default", sample.GetName(), created.GetResourceVersion())
			if !store.IsConflict(err) {
				t.Errorf("delete with stale resourceVersion: %v, want Conflict", err)
			}
			if err := s.Delete(ctx, kind, "default", sample.GetName(), relabeled.GetResourceVersion()); err != nil {
				t.Fatal(err)
			}
			lastRV++
			_, err = s.Get(ctx, kind, "default", sample.GetName())
			if !store.IsNotFound(err) {
				t.Fatalf("get after delete: %v, want NotFound", err)
			}
			for _, want := range []string{kind, "default", sample.GetName()} {
				if !containsStr(err.Error(), want) {
					t.Errorf("NotFound message %q does not name %q", err, want)
				}
			}
			if err := s.Delete(ctx, kind, "default", sample.GetName(), ""); !store.IsNotFound(err) {
				t.Errorf("second delete: %v, want NotFound", err)
			}
			if _, err := s.Update(ctx, relabeled); !store.IsNotFound(err) {
				t.Errorf("update after delete: %v, want NotFound", err)
			}
		})
	}
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

func asStoreError(err error, target **store.Error) bool { return errors.As(err, target) }

func testAlreadyExists(t *testing.T, s store.Store) {
	for _, sample := range Samples("default") {
		MustCreate(t, s, sample)
		_, err := s.Create(Ctx(t), sample)
		if !store.IsAlreadyExists(err) {
			t.Errorf("second create of %s: %v, want AlreadyExists", v1.KindOf(sample), err)
		}
	}
}

// Two triggers answering the same method, URL and host would shadow each
// other in the router's one table: the second is refused (AlreadyExists,
// 409) naming the first, on create and on update, across namespaces,
// and nothing of it is stored.
func testDuplicateRoutes(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	route := func(ns, name, url string, methods ...string) *v1.HTTPTrigger {
		tr := Sample(v1.KindHTTPTrigger, ns, name).(*v1.HTTPTrigger)
		tr.Spec.RelativeURL, tr.Spec.Methods = url, methods
		return tr
	}
	refused := func(what string, err error) {
		t.Helper()
		if !store.IsAlreadyExists(err) || !strings.Contains(err.Error(), "HTTPTrigger a/first") || !strings.Contains(err.Error(), " /dup/{") {
			t.Errorf("%s: %v, want AlreadyExists naming a/first and the route", what, err)
		}
	}
	first := MustCreate(t, s, route("a", "first", "/dup/{id}", "GET", "POST")).(*v1.HTTPTrigger)

	_, err := s.Create(ctx, route("b", "second", "/dup/{name}", "POST"))
	refused("create of the same route in another namespace", err)
	if _, err := s.Get(ctx, v1.KindHTTPTrigger, "b", "second"); !store.IsNotFound(err) {
		t.Errorf("the refused trigger was stored: %v", err)
	}

	other := MustCreate(t, s, route("b", "other", "/dup/{id}", "PUT"))
	moved := other.DeepCopyObject().(*v1.HTTPTrigger)
	moved.Spec.Methods = []string{"PUT", "GET"}
	_, err = s.Update(ctx, moved)
	refused("update onto the route", err)
	if got, err := s.Get(ctx, v1.KindHTTPTrigger, "b", "other"); err != nil || len(got.(*v1.HTTPTrigger).Spec.Methods) != 1 {
		t.Errorf("the refused update changed the trigger: %v %+v", err, got)
	}

	// A trigger never collides with itself, and another host is another route.
	first.Spec.FunctionReference.Name = "hello2"
	if _, err := s.Update(ctx, first); err != nil {
		t.Errorf("update of a trigger keeping its own route: %v", err)
	}
	hosted := route("b", "hosted", "/dup/{id}", "GET")
	hosted.Spec.Host = "shop.example"
	MustCreate(t, s, hosted)

	if err := s.Delete(ctx, v1.KindHTTPTrigger, "a", "first", ""); err != nil {
		t.Fatal(err)
	}
	MustCreate(t, s, route("b", "second", "/dup/{name}", "POST"))
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	env := Sample(v1.KindEnvironment, "default", "Bad_Name").(*v1.Environment)
	env.Spec.Version = 7
	_, err := s.Create(ctx, env)
	if !store.IsInvalid(err) {
		t.Fatalf("create invalid environment: %v, want Invalid", err)
	}
	var se *store.Error
	if !asStoreError(err, &se) {
		t.Fatalf("error %T is not *store.Error", err)
	}
	fields := map[string]bool{}
	for _, c := range se.Causes {
		fields[c.Field] = true
	}
	for _, f := range []string{"metadata.name", "spec.version"} {
		if !fields[f] {
			t.Errorf("causes %v lack field %s", se.Causes, f)
		}
	}
	if !containsStr(se.Message, `Environment "Bad_Name" is invalid`) {
		t.Errorf("message %q", se.Message)
	}
	if list, _, _ := s.List(ctx, v1.KindEnvironment, store.ListOptions{}); len(list) != 0 {
		t.Errorf("invalid object stored: %s", JSON(list))
	}

	// An invalid update leaves the stored object as it was.
	good := MustCreate(t, s, Sample(v1.KindEnvironment, "default", "good"))
	bad := good.DeepCopyObject().(*v1.Environment)
	bad.Spec.Version = 0
	if _, err := s.Update(ctx, bad); !store.IsInvalid(err) {
		t.Errorf("invalid update: %v, want Invalid", err)
	}
	got, err := s.Get(ctx, v1.KindEnvironment, "default", "good")
	if err != nil || JSON(got) != JSON(good) {
		t.Errorf("after refused update: %v %s", err, JSON(got))
	}
}

func testStale(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	fn := MustCreate(t, s, Sample(v1.KindFunction, "default", "f"))
	a := fn.DeepCopyObject().(v1.Object)
	ChangeSpec(a, 1)
	if _, err := s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	b := fn.DeepCopyObject().(v1.Object)
	ChangeSpec(b, 2)
	_, err := s.Update(ctx, b)
	if !store.IsConflict(err) {
		t.Fatalf("stale update: %v, want Conflict", err)
	}
	if !containsStr(err.Error(), `"f"`) || !containsStr(err.Error(), fn.GetResourceVersion()) {
		t.Errorf("conflict message %q should name the object and the stale version", err)
	}
	// An empty resourceVersion updates unconditionally.
	b.SetResourceVersion("")
	if _, err := s.Update(ctx, b); err != nil {
		t.Errorf("unconditional update: %v", err)
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	cur := MustCreate(t, s, Sample(v1.KindFunction, "default", "race"))
	for round := 0; round < 10; round++ {
		var (
			wg        sync.WaitGroup
			start     = make(chan struct{})
			errs      [2]error
			winners   [2]v1.Object
			successes int
		)
		for i := range 2 {
			obj := cur.DeepCopyObject().(v1.Object)
			ChangeSpec(obj, round*2+i+1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				winners[i], errs[i] = s.Update(ctx, obj)
			}()
		}
		close(start)
		wg.Wait()
		for i := range 2 {
			switch {
			case errs[i] == nil:
				successes++
				cur = winners[i]
			case store.IsConflict(errs[i]):
			default:
				t.Fatalf("round %d: unexpected error %v", round, errs[i])
			}
		}
		if successes != 1 {
			t.Fatalf("round %d: %d updates from one resourceVersion succeeded, want exactly 1 (errors %v)", round, successes, errs)
		}
		got, err := s.Get(ctx, v1.KindFunction, "default", "race")
		if err != nil || JSON(got) != JSON(cur) {
			t.Fatalf("round %d: stored %s, winner %s (%v)", round, JSON(got), JSON(cur), err)
		}
	}
}

func testStatus(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	pkg := MustCreate(t, s, Sample(v1.KindPackage, "default", "p")).(*v1.Package)
	if pkg.Status.BuildStatus != v1.BuildStatusNone {
		t.Errorf("deploy-only package status %q, want none (defaulted)", pkg.Status.BuildStatus)
	}
	st := pkg.DeepCopy()
	st.Status.BuildStatus = v1.BuildStatusSucceeded
	st.Status.BuildLog = "ok"
	st.Spec.BuildCommand = "ignored by UpdateStatus"
	out, err := s.UpdateStatus(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1.Package)
	if got.Status.BuildStatus != v1.BuildStatusSucceeded || got.Spec.BuildCommand != "" || got.Generation != 1 {
		t.Errorf("UpdateStatus result %s", JSON(got))
	}
	// Update keeps the stored status whatever the caller sends.
	upd := got.DeepCopy()
	upd.Status.BuildStatus = v1.BuildStatusFailed
	upd.Spec.BuildCommand = "make"
	out, err = s.Update(ctx, upd)
	if err != nil {
		t.Fatal(err)
	}
	got = out.(*v1.Package)
	if got.Status.BuildStatus != v1.BuildStatusSucceeded || got.Spec.BuildCommand != "make" || got.Generation != 2 {
		t.Errorf("Update result %s", JSON(got))
	}
	// Stale status update.
	if _, err := s.UpdateStatus(ctx, st); !store.IsConflict(err) {
		t.Errorf("stale UpdateStatus: %v, want Conflict", err)
	}
	// Invalid status.
	bad := got.DeepCopy()
	bad.Status.BuildStatus = "exploded"
	if _, err := s.UpdateStatus(ctx, bad); !store.IsInvalid(err) {
		t.Errorf("invalid status: %v, want Invalid", err)
	}
	env := MustCreate(t, s, Sample(v1.KindEnvironment, "default", "e"))
	if _, err := s.UpdateStatus(ctx, env); err == nil {
		t.Errorf("UpdateStatus of an Environment (no status) succeeded")
	}
}

func testFiltering(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	for _, ns := range []string{"a", "b", "a-b"} {
		for i, tier := range []string{"web", "db"} {
			o := Sample(v1.KindHTTPTrigger, ns, fmt.Sprintf("r%d", i))
			o.SetLabels(map[string]string{"tier": tier})
			MustCreate(t, s, o)
		}
	}
	names := func(objs []v1.Object) []string {
		var out []string
		for _, o := range objs {
			out = append(out, o.GetNamespace()+"/"+o.GetName())
		}
		return out
	}
	all, _, err := s.List(ctx, v1.KindHTTPTrigger, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/r0", "a/r1", "a-b/r0", "a-b/r1", "b/r0", "b/r1"}; !slices.Equal(names(all), want) {
		t.Errorf("all = %v, want %v (sorted by namespace, then name)", names(all), want)
	}
	inA, _, err := s.List(ctx, v1.KindHTTPTrigger, store.ListOptions{Namespace: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/r0", "a/r1"}; !slices.Equal(names(inA), want) {
		t.Errorf("namespace a = %v, want %v", names(inA), want)
	}
	sel := labels.SelectorFromSet(labels.Set{"tier": "web"})
	web, _, err := s.List(ctx, v1.KindHTTPTrigger, store.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/r0", "a-b/r0", "b/r0"}; !slices.Equal(names(web), want) {
		t.Errorf("tier=web = %v, want %v", names(web), want)
	}
	notWeb, err := store.ParseSelector("tier!=web")
	if err != nil {
		t.Fatal(err)
	}
	bDB, _, err := s.List(ctx, v1.KindHTTPTrigger, store.ListOptions{Namespace: "b", LabelSelector: notWeb})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b/r1"}; !slices.Equal(names(bDB), want) {
		t.Errorf("b, tier!=web = %v, want %v", names(bDB), want)
	}
	if _, err := s.Get(ctx, v1.KindHTTPTrigger, "c", "r0"); !store.IsNotFound(err) {
		t.Errorf("get in another namespace: %v", err)
	}
}

func testCopies(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	created := MustCreate(t, s, Sample(v1.KindFunction, "default", "c"))
	created.SetLabels(map[string]string{"mutated": "yes"})
	got, err := s.Get(ctx, v1.KindFunction, "default", "c")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLabels()["mutated"] != "" {
		t.Errorf("mutating a returned object changed the store")
	}
}

// collect reads n events from w.
func collect(t *testing.T, w store.Watcher, n int) []store.Event {
	t.Helper()
	var out []store.Event
	for len(out) < n {
		out = append(out, NextEvent(t, w))
	}
	return out
}

// EventString is "TYPE ns/name rv" for comparisons.
func EventString(ev store.Event) string {
	return fmt.Sprintf("%s %s/%s %s", ev.Type, ev.Object.GetNamespace(), ev.Object.GetName(), ev.Object.GetResourceVersion())
}

// changes makes a series of writes to functions in ns and returns the
// events they should produce, as EventStrings.
func changes(t *testing.T, s store.Store, ns string) []string {
	ctx := Ctx(t)
	var want []string
	record := func(typ store.EventType, o v1.Object) {
		want = append(want, EventString(store.Event{Type: typ, Object: o}))
	}
	a := MustCreate(t, s, Sample(v1.KindFunction, ns, "a"))
	record(store.Added, a)
	b := MustCreate(t, s, Sample(v1.KindFunction, ns, "b"))
	record(store.Added, b)
	for i := range 3 {
		ChangeSpec(a, i)
		var err error
		if a, err = s.Update(ctx, a); err != nil {
			t.Fatal(err)
		}
		record(store.Modified, a)
	}
	if err := s.Delete(ctx, v1.KindFunction, ns, "b", ""); err != nil {
		t.Fatal(err)
	}
	// The deletion's resourceVersion is above a's last. In the embedded
	// store it is exactly the next; on the kube-apiserver versions are
	// etcd revisions shared with every other resource (the apiserver's
	// own leases are written in between), so the contract is the order:
	// ">N" in a wanted event means any version above N.
	del := b.DeepCopyObject().(v1.Object)
	del.SetResourceVersion(">" + a.GetResourceVersion())
	record(store.Deleted, del)
	return want
}

// sameEvents reports whether got (EventStrings) matches want, where a
// wanted version ">N" matches any version above N, and checks that got's
// versions strictly increase.
func sameEvents(t *testing.T, got, want []string) bool {
	t.Helper()
	var last uint64
	for i, g := range got {
		rv := RV(t, g[strings.LastIndexByte(g, ' ')+1:])
		if i > 0 && rv <= last {
			t.Errorf("event %q: resourceVersion not above the previous event's %d", g, last)
		}
		last = rv
	}
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		gi, wi := strings.LastIndexByte(g, ' '), strings.LastIndexByte(w, ' ')
		if floor, ok := strings.CutPrefix(w[wi+1:], ">"); ok {
			if g[:gi] != w[:wi] || RV(t, g[gi+1:]) <= RV(t, floor) {
				return false
			}
			continue
		}
		if g != w {
			return false
		}
	}
	return true
}

func testWatchOrder(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	pre := MustCreate(t, s, Sample(v1.KindFunction, "default", "pre"))
	MustCreate(t, s, Sample(v1.KindEnvironment, "default", "other-kind"))
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	first := collect(t, w, 2)
	if EventString(first[0]) != EventString(store.Event{Type: store.Added, Object: pre}) {
		t.Errorf("initial event %s, want ADDED of pre", EventString(first[0]))
	}
	if first[1].Type != store.Bookmark || RV(t, first[1].Object.GetResourceVersion()) < RV(t, pre.GetResourceVersion()) {
		t.Errorf("second event %s, want BOOKMARK at or after %s", EventString(first[1]), pre.GetResourceVersion())
	}
	want := changes(t, s, "default")
	var got []string
	for _, ev := range collect(t, w, len(want)) {
		got = append(got, EventString(ev))
		if ev.Object.GetObjectKind().GroupVersionKind().Kind != v1.KindFunction {
			t.Errorf("event object without kind: %s", JSON(ev.Object))
		}
	}
	if !sameEvents(t, got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func testWatchReplay(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	start := MustCreate(t, s, Sample(v1.KindFunction, "default", "start"))
	want := changes(t, s, "default")
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: start.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []string
	for _, ev := range collect(t, w, len(want)) {
		got = append(got, EventString(ev))
	}
	if !sameEvents(t, got, want) {
		t.Errorf("replay:\n got %q\nwant %q", got, want)
	}
	// Then live events follow the replay.
	live := MustCreate(t, s, Sample(v1.KindFunction, "default", "live"))
	if ev := NextEvent(t, w); EventString(ev) != EventString(store.Event{Type: store.Added, Object: live}) {
		t.Errorf("live event after replay: %s", EventString(ev))
	}
	// A watch from the current version sends only what comes next.
	w2, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: live.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Stop()
	if err := s.Delete(ctx, v1.KindFunction, "default", "live", ""); err != nil {
		t.Fatal(err)
	}
	if ev := NextEvent(t, w2); ev.Type != store.Deleted || ev.Object.GetName() != "live" {
		t.Errorf("watch from current version: %s", EventString(ev))
	}
	if _, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "not-a-number"}); err == nil {
		t.Errorf("watch from a malformed resourceVersion succeeded")
	}
}

func testWatchFilters(t *testing.T, s store.Store) {
	ctx := Ctx(t)
	sel, _ := store.ParseSelector("tier=web")
	w, err := s.Watch(ctx, v1.KindHTTPTrigger, store.WatchOptions{ListOptions: store.ListOptions{Namespace: "a", LabelSelector: sel}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if ev := NextEvent(t, w); ev.Type != store.Bookmark {
		t.Fatalf("first event %s, want BOOKMARK", EventString(ev))
	}
	var want []string
	for _, ns := range []string{"b", "a"} {
		for i, tier := range []string{"db", "web"} {
			o := Sample(v1.KindHTTPTrigger, ns, fmt.Sprintf("r%d", i))
			o.SetLabels(map[string]string{"tier": tier})
			c := MustCreate(t, s, o)
			if ns == "a" && tier == "web" {
				want = append(want, EventString(store.Event{Type: store.Added, Object: c}))
			}
		}
	}
	// A marker that matches, written last: if anything unwanted were
	// delivered it would arrive before it.
	m := Sample(v1.KindHTTPTrigger, "a", "marker")
	m.SetLabels(map[string]string{"tier": "web"})
	want = append(want, EventString(store.Event{Type: store.Added, Object: MustCreate(t, s, m)}))
	var got []string
	for _, ev := range collect(t, w, len(want)) {
		got = append(got, EventString(ev))
	}
	if !slices.Equal(got, want) {
		t.Errorf("filtered watch:\n got %q\nwant %q", got, want)
	}
}

func testWatchStops(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(Ctx(t))
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Watch(Ctx(t), v1.KindFunction, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	w2.Stop()
	for _, w := range []store.Watcher{w, w2} {
		deadline := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-w.ResultChan():
				if !ok {
					break drain
				}
			case <-deadline:
				t.Fatal("watch channel not closed after cancel/Stop")
			}
		}
	}
}
