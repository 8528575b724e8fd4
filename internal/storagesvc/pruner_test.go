package storagesvc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// fakeClock is a clock that stands still at a chosen time.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// fakePackageStore is a store holding only a fixed list of Packages; the
// pruner needs nothing else of a store. Its other methods are nil and
// would panic if called.
type fakePackageStore struct {
	store.Store
	pkgs []v1.Package
	err  error
}

func (s *fakePackageStore) List(ctx context.Context, kind string, opts store.ListOptions) ([]v1.Object, string, error) {
	if kind != v1.KindPackage {
		return nil, "", errors.New("fakePackageStore lists only Packages")
	}
	out := make([]v1.Object, len(s.pkgs))
	for i := range s.pkgs {
		out[i] = &s.pkgs[i]
	}
	return out, "1", s.err
}

func pkgWith(name, srcURL, deployURL string) v1.Package {
	return v1.Package{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PackageSpec{
			Source:     v1.Archive{Type: v1.ArchiveTypeURL, URL: srcURL},
			Deployment: v1.Archive{Type: v1.ArchiveTypeURL, URL: deployURL},
		},
	}
}

// The pruner keeps referenced archives (by source or deployment URL) and
// young ones, deletes old unreferenced ones, and deletes nothing when the
// references cannot be read.
func TestPruner(t *testing.T) {
	ts := newTestService(t, Options{})
	ctx := context.Background()
	upload := func(age time.Duration, now time.Time) string {
		data := randomBytes(t, 1000)
		res, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), "a.zip", nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ts.dir, strings.TrimPrefix(res.ID, DefaultIDPrefix+"/"))
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	clock := &fakeClock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	srcRef := upload(3*time.Hour, clock.now)
	deployRef := upload(3*time.Hour, clock.now)
	oldOrphan := upload(2*time.Hour, clock.now)
	youngOrphan := upload(10*time.Minute, clock.now)

	st := &fakePackageStore{pkgs: []v1.Package{
		pkgWith("src", ts.client.URLFor(srcRef), ""),
		pkgWith("deploy", "", "http://storagesvc.fission/v1/archive?id="+strings.ReplaceAll(deployRef, "/", "%2F")),
		pkgWith("literal", "", ""),
	}}
	pr := NewPruner(ts.backend, RefsFromStore(st), PrunerOptions{Grace: time.Hour, Clock: clock, Logger: slog.New(slog.DiscardHandler)})

	st.err = errors.New("api down")
	if deleted, err := pr.PruneOnce(ctx); err == nil || len(deleted) != 0 {
		t.Fatalf("with references unavailable: deleted %v, err %v", deleted, err)
	}
	st.err = nil

	deleted, err := pr.PruneOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(deleted, []string{oldOrphan}) {
		t.Fatalf("deleted %v, want only the old orphan %s", deleted, oldOrphan)
	}
	left := mustList(t, ts.client)
	for _, id := range []string{srcRef, deployRef, youngOrphan} {
		if !slices.Contains(left, id) {
			t.Errorf("%s was pruned", id)
		}
	}

	// An hour later the young orphan is old enough to go.
	clock.now = clock.now.Add(time.Hour)
	if deleted, _ := pr.PruneOnce(ctx); !slices.Equal(deleted, []string{youngOrphan}) {
		t.Fatalf("an hour later deleted %v, want %s", deleted, youngOrphan)
	}
}

func TestReferencedIDs(t *testing.T) {
	ids := ReferencedIDs([]v1.Package{
		pkgWith("a", "http://h/v1/archive?id=%2Ffission%2Ffission-functions%2Fabc", "https://x/v1/archive?id=/isotope/archives/def"),
		pkgWith("b", "http://h/no-id", "::bad url"),
	})
	if len(ids) != 2 || !ids["/fission/fission-functions/abc"] || !ids["/isotope/archives/def"] {
		t.Fatalf("got %v", ids)
	}
}
