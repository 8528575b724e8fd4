package storetest

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// RunCore runs the conformance suite of the core kinds (Secret,
// ConfigMap: CoreSamples) in namespace ns. Unlike Run it does not need an
// empty store: on Kubernetes a namespace holds Secrets and ConfigMaps of
// its own (kube-root-ca.crt, service-account tokens), so the suite only
// counts what it made, by the label suite=core. Generation is not
// checked: core/v1 Secrets and ConfigMaps have none on Kubernetes.
func RunCore(t *testing.T, s store.Store, ns string) {
	t.Run("CRUD", func(t *testing.T) { testCoreCRUD(t, s, ns) })
	t.Run("InvalidStoresNothing", func(t *testing.T) { testCoreInvalid(t, s, ns) })
	t.Run("Watch", func(t *testing.T) { testCoreWatch(t, s, ns) })
}

var coreSel = labels.SelectorFromSet(labels.Set{"suite": "core"})

// coreSample is the sample of kind, named name, labelled suite=core.
func coreSample(kind, ns, name string) v1.Object {
	o := Sample(kind, ns, name)
	o.SetLabels(map[string]string{"suite": "core"})
	return o
}

func testCoreCRUD(t *testing.T, s store.Store, ns string) {
	ctx := Ctx(t)
	for i, kind := range []string{v1.KindSecret, v1.KindConfigMap} {
		t.Run(kind, func(t *testing.T) {
			sample := coreSample(kind, ns, "crud")
			created := MustCreate(t, s, sample)
			if created.GetUID() == "" || created.GetResourceVersion() == "" || created.GetCreationTimestamp().Time.IsZero() {
				t.Errorf("create did not set uid/resourceVersion/creationTimestamp: %s", JSON(created))
			}
			if gvk := created.GetObjectKind().GroupVersionKind(); gvk.Kind != kind || gvk.GroupVersion().String() != v1.APIVersion {
				t.Errorf("returned type meta %v, want %s %s", gvk, v1.APIVersion, kind)
			}
			if !sameData(created, sample) {
				t.Errorf("created data differs: %s, gave %s", JSON(created), JSON(sample))
			}
			if _, err := s.Create(ctx, sample); !store.IsAlreadyExists(err) {
				t.Errorf("second create: %v, want AlreadyExists", err)
			}
			got, err := s.Get(ctx, kind, ns, "crud")
			if err != nil {
				t.Fatal(err)
			}
			if JSON(got) != JSON(created) {
				t.Errorf("get differs from create:\n%s\n%s", JSON(got), JSON(created))
			}
			list, _, err := s.List(ctx, kind, store.ListOptions{Namespace: ns, LabelSelector: coreSel})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || JSON(list[0]) != JSON(created) {
				t.Errorf("list = %s", JSON(list))
			}

			changed := got.DeepCopyObject().(v1.Object)
			ChangeSpec(changed, i+7)
			updated, err := s.Update(ctx, changed)
			if err != nil {
				t.Fatal(err)
			}
			if RV(t, updated.GetResourceVersion()) <= RV(t, created.GetResourceVersion()) || !sameData(updated, changed) {
				t.Errorf("update: %s (was rv %s)", JSON(updated), created.GetResourceVersion())
			}
			if again, err := s.Get(ctx, kind, ns, "crud"); err != nil || JSON(again) != JSON(updated) {
				t.Errorf("get after update: %v %s, want %s", err, JSON(again), JSON(updated))
			}
			same, err := s.Update(ctx, updated)
			if err != nil || same.GetResourceVersion() != updated.GetResourceVersion() {
				t.Errorf("no-op update: %v, resourceVersion %s → %s", err, updated.GetResourceVersion(), same.GetResourceVersion())
			}
			stale := got.DeepCopyObject().(v1.Object)
			ChangeSpec(stale, 99)
			if _, err := s.Update(ctx, stale); !store.IsConflict(err) || !strings.Contains(err.Error(), got.GetResourceVersion()) {
				t.Errorf("stale update: %v, want Conflict naming version %s", err, got.GetResourceVersion())
			}
			if _, err := s.UpdateStatus(ctx, updated); err == nil {
				t.Errorf("UpdateStatus of a %s (no status) succeeded", kind)
			}
			if err := s.Delete(ctx, kind, ns, "crud", created.GetResourceVersion()); !store.IsConflict(err) {
				t.Errorf("delete with a stale resourceVersion: %v, want Conflict", err)
			}
			if err := s.Delete(ctx, kind, ns, "crud", updated.GetResourceVersion()); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get(ctx, kind, ns, "crud")
			if !store.IsNotFound(err) {
				t.Fatalf("get after delete: %v, want NotFound", err)
			}
			for _, want := range []string{kind, ns, "crud"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NotFound message %q does not name %q", err, want)
				}
			}
			if err := s.Delete(ctx, kind, ns, "crud", ""); !store.IsNotFound(err) {
				t.Errorf("second delete: %v, want NotFound", err)
			}
		})
	}
}

// sameData reports whether a and b (both Secrets or both ConfigMaps)
// hold the same keys and values.
func sameData(a, b v1.Object) bool {
	switch x := a.(type) {
	case *v1.Secret:
		return JSON(x.Data) == JSON(b.(*v1.Secret).Data)
	case *v1.ConfigMap:
		return JSON(x.Data) == JSON(b.(*v1.ConfigMap).Data)
	}
	return false
}

// testCoreInvalid: keys that cannot be file names and data over 1 MiB
// are refused with the field named, on create and update, and nothing
// stored changes.
func testCoreInvalid(t *testing.T, s store.Store, ns string) {
	ctx := Ctx(t)
	big := strings.Repeat("x", v1.MaxConfigSize)
	for _, kind := range []string{v1.KindSecret, v1.KindConfigMap} {
		set := func(o v1.Object, k, v string) {
			switch x := o.(type) {
			case *v1.Secret:
				x.Data = map[string][]byte{k: []byte(v)}
			case *v1.ConfigMap:
				x.Data = map[string]string{k: v}
			}
		}
		cases := []struct{ key, value, field string }{
			{"../escape", "v", "data[../escape]"},
			{"a/b", "v", "data[a/b]"},
			{"..", "v", "data[..]"},
			{"big", big, "data"},
		}
		for _, c := range cases {
			o := coreSample(kind, ns, "bad")
			set(o, c.key, c.value)
			_, err := s.Create(ctx, o)
			if !store.IsInvalid(err) || !hasCause(err, c.field) {
				t.Errorf("create %s with key %q (%d bytes): %.300v, want Invalid naming %s", kind, c.key, len(c.value), err, c.field)
			}
		}
		if _, err := s.Get(ctx, kind, ns, "bad"); !store.IsNotFound(err) {
			t.Errorf("a refused %s was stored: %v", kind, err)
		}
		good := MustCreate(t, s, coreSample(kind, ns, "good"))
		for _, c := range cases {
			bad := good.DeepCopyObject().(v1.Object)
			set(bad, c.key, c.value)
			if _, err := s.Update(ctx, bad); !store.IsInvalid(err) || !hasCause(err, c.field) {
				t.Errorf("update %s with key %q: %.300v, want Invalid naming %s", kind, c.key, err, c.field)
			}
		}
		if got, err := s.Get(ctx, kind, ns, "good"); err != nil || JSON(got) != JSON(good) {
			t.Errorf("after refused updates: %v %s, want %s", err, JSON(got), JSON(good))
		}
		if err := s.Delete(ctx, kind, ns, "good", ""); err != nil {
			t.Fatal(err)
		}
	}
}

func hasCause(err error, field string) bool {
	var se *store.Error
	if !asStoreError(err, &se) {
		return false
	}
	for _, c := range se.Causes {
		if c.Field == field {
			return true
		}
	}
	return false
}

// testCoreWatch: a watch of Secrets sees its objects created, changed
// and deleted, as v1 Secrets with their kind, and nothing else.
func testCoreWatch(t *testing.T, s store.Store, ns string) {
	ctx := Ctx(t)
	pre := MustCreate(t, s, coreSample(v1.KindSecret, ns, "pre"))
	w, err := s.Watch(ctx, v1.KindSecret, store.WatchOptions{ListOptions: store.ListOptions{Namespace: ns, LabelSelector: coreSel}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	first := collect(t, w, 2)
	if EventString(first[0]) != EventString(store.Event{Type: store.Added, Object: pre}) || first[1].Type != store.Bookmark {
		t.Errorf("initial events %s, %s; want ADDED of pre, then BOOKMARK", EventString(first[0]), EventString(first[1]))
	}
	MustCreate(t, s, coreSample(v1.KindConfigMap, ns, "other-kind"))
	var want []string
	a := MustCreate(t, s, coreSample(v1.KindSecret, ns, "a"))
	want = append(want, EventString(store.Event{Type: store.Added, Object: a}))
	ChangeSpec(a, 1)
	if a, err = s.Update(ctx, a); err != nil {
		t.Fatal(err)
	}
	want = append(want, EventString(store.Event{Type: store.Modified, Object: a}))
	if err := s.Delete(ctx, v1.KindSecret, ns, "a", ""); err != nil {
		t.Fatal(err)
	}
	del := a.DeepCopyObject().(v1.Object)
	del.SetResourceVersion(">" + a.GetResourceVersion())
	want = append(want, EventString(store.Event{Type: store.Deleted, Object: del}))
	var got []string
	for _, ev := range collect(t, w, len(want)) {
		got = append(got, EventString(ev))
		if _, ok := ev.Object.(*v1.Secret); !ok || ev.Object.GetObjectKind().GroupVersionKind().Kind != v1.KindSecret {
			t.Errorf("event object %T %s, want a *v1.Secret with its kind", ev.Object, JSON(ev.Object))
		}
	}
	if !sameEvents(t, got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
	if ev := got[1]; !strings.Contains(ev, "/a ") {
		t.Errorf("modified event %s", ev)
	}
	for _, o := range []struct{ kind, name string }{{v1.KindSecret, "pre"}, {v1.KindConfigMap, "other-kind"}} {
		if err := s.Delete(ctx, o.kind, ns, o.name, ""); err != nil {
			t.Error(fmt.Errorf("cleanup: %w", err))
		}
	}
}
