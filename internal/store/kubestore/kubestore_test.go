package kubestore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/store/storetest"
	"isotope.dev/isotope/internal/testing/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// newStore returns a store on the shared control plane with every
// isotope object deleted first, so each conformance subtest starts from
// an empty store (the suite's subtests run one after another).
func newStore(t *testing.T) store.Store {
	env := kubetest.Start(t)
	s, err := kubestore.New(env.Config, kubestore.Options{CreateNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := storetest.Ctx(t)
	for _, k := range v1.Kinds() {
		if k.Core {
			continue // core/v1: a namespace has its own (TestCoreKinds)
		}
		objs, _, err := s.List(ctx, k.Kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := s.Delete(ctx, k.Kind, o.GetNamespace(), o.GetName(), ""); err != nil && !store.IsNotFound(err) {
				t.Fatal(err)
			}
		}
		if objs, _, err := s.List(ctx, k.Kind, store.ListOptions{}); err != nil || len(objs) != 0 {
			t.Fatalf("%s left after cleanup: %d (%v)", k.Kind, len(objs), err)
		}
	}
	return s
}

// Secrets and config maps are the cluster's core/v1 objects
// (decision 0021): the core suite passes on them, what the store writes
// is a real Secret or ConfigMap, objects made by others read back, and
// an update keeps what v1 does not model.
func TestCoreKinds(t *testing.T) {
	env := kubetest.Start(t)
	s, err := kubestore.New(env.Config, kubestore.Options{CreateNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "core")
	storetest.RunCore(t, s, ns)

	ctx := storetest.Ctx(t)
	storetest.MustCreate(t, s, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns}, Data: map[string][]byte{"password": []byte("s3cret")}})
	var sec corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &sec); err != nil {
		t.Fatalf("the store's secret is not a core/v1 Secret: %v", err)
	}
	if string(sec.Data["password"]) != "s3cret" || sec.Type != corev1.SecretTypeOpaque {
		t.Errorf("core/v1 Secret = %+v", sec)
	}

	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "made-by-kubectl", Namespace: ns},
		Data:       map[string]string{"mode": "fast"},
		BinaryData: map[string][]byte{"blob": {0, 1, 2}},
	}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	got, err := store.GetAs[*v1.ConfigMap](ctx, s, ns, "made-by-kubectl")
	if err != nil || got.Data["mode"] != "fast" {
		t.Fatalf("a ConfigMap made outside the store: %v %+v", err, got)
	}
	got.Data["mode"] = "slow"
	if _, err := s.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["mode"] != "slow" || len(cm.BinaryData["blob"]) != 3 {
		t.Errorf("after an update through the store: data %v binaryData %v, want mode=slow and the blob kept", cm.Data, cm.BinaryData)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore)
}

// A version older than the apiserver's watch cache (but not compacted)
// is refused in the stream: the watcher closes without events, and the
// consumer's next Watch from it says Expired instead of closing again.
func TestWatchOlderThanWatchCacheExpires(t *testing.T) {
	env := kubetest.Start(t)
	s, err := kubestore.New(env.Config, kubestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := storetest.Ctx(t)
	// Once etcd is compacted, the pre-flight probe answers first.
	inStream := env.CompactedRevision() == 0
	for try := 1; ; try++ {
		w, err := s.Watch(ctx, v1.KindTimeTrigger, store.WatchOptions{ResourceVersion: "3"})
		if store.IsExpired(err) {
			if inStream && try != 2 {
				t.Errorf("Expired on attempt %d, want 2 (a stream refused in-band, then Expired)", try)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if try > 1 {
			t.Fatalf("attempt %d opened a watch again", try)
		}
		select {
		case ev, ok := <-w.ResultChan():
			if ok {
				t.Fatalf("event from a version older than the watch cache: %s", storetest.EventString(ev))
			}
		case <-time.After(30 * time.Second):
			t.Fatal("stream from a too-old version did not end within 30s")
		}
	}
}

// A version etcd has compacted is refused at Watch with ReasonExpired,
// and a consumer that lists again and watches from the list's version
// carries on.
func TestWatchFromCompactedVersionExpires(t *testing.T) {
	env := kubetest.Start(t)
	s, err := kubestore.New(env.Config, kubestore.Options{CreateNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := storetest.Ctx(t)
	ns := env.Namespace(t, "expire")
	f := storetest.MustCreate(t, s, storetest.Sample(v1.KindFunction, ns, "old"))
	for i := range 3 {
		storetest.ChangeSpec(f, i)
		if f, err = s.Update(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	env.CompactEtcd(t)

	_, err = s.Watch(ctx, v1.KindFunction, store.WatchOptions{ListOptions: store.ListOptions{Namespace: ns}, ResourceVersion: "2"})
	if !store.IsExpired(err) {
		t.Fatalf("watch from a compacted version: %v, want Expired", err)
	}
	_, listRV, err := s.List(ctx, v1.KindFunction, store.ListOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ListOptions: store.ListOptions{Namespace: ns}, ResourceVersion: listRV})
	if err != nil {
		t.Fatalf("watch from the list's version after compaction: %v", err)
	}
	defer w.Stop()
	if err := s.Delete(ctx, v1.KindFunction, ns, "old", ""); err != nil {
		t.Fatal(err)
	}
	if ev := storetest.NextEvent(t, w); ev.Type != store.Deleted || ev.Object.GetName() != "old" {
		t.Errorf("after re-list: %s", storetest.EventString(ev))
	}
	if _, err := s.Watch(ctx, v1.KindFunction, store.WatchOptions{ResourceVersion: "0"}); !store.IsExpired(err) {
		t.Errorf("watch from 0: %v, want Expired", err)
	}
}

// A namespace-scoped store works in its namespace only.
func TestNamespaceScope(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.Namespace(t, "scoped")
	other := env.Namespace(t, "other")
	s, err := kubestore.New(env.Config, kubestore.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx := storetest.Ctx(t)
	unscoped, err := kubestore.New(env.Config, kubestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustCreate(t, unscoped, storetest.Sample(v1.KindEnvironment, other, "elsewhere"))

	noNS := storetest.Sample(v1.KindEnvironment, "", "here")
	created := storetest.MustCreate(t, s, noNS)
	if created.GetNamespace() != ns {
		t.Errorf("created in %q, want the store's namespace %q", created.GetNamespace(), ns)
	}
	all, _, err := s.List(ctx, v1.KindEnvironment, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].GetName() != "here" {
		t.Errorf("scoped list of all namespaces: %s", storetest.JSON(all))
	}
	if _, err := s.Get(ctx, v1.KindEnvironment, other, "elsewhere"); !store.IsInvalid(err) {
		t.Errorf("get outside the scope: %v, want Invalid", err)
	}
	if _, err := s.Create(ctx, storetest.Sample(v1.KindEnvironment, other, "x")); !store.IsInvalid(err) {
		t.Errorf("create outside the scope: %v, want Invalid", err)
	}
	if _, err := kubestore.New(env.Config, kubestore.Options{Namespace: "Not_A_Namespace"}); err == nil {
		t.Errorf("New with a malformed namespace succeeded")
	}
}

// Without CreateNamespaces a missing namespace is NotFound naming it.
func TestMissingNamespace(t *testing.T) {
	env := kubetest.Start(t)
	s, err := kubestore.New(env.Config, kubestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = s.Create(ctx, storetest.Sample(v1.KindEnvironment, "no-such-namespace", "e"))
	if !store.IsNotFound(err) || !containsAll(err.Error(), "no-such-namespace", "Environment") {
		t.Errorf("create in a missing namespace: %v, want NotFound naming it", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !contains(s, sub) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
