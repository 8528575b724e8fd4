package sealed

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

func open(t *testing.T, dir string) (*Store, *boltstore.Store) {
	t.Helper()
	key, _, err := LoadOrCreateKey(filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	b, err := boltstore.Open(filepath.Join(dir, "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(b, key, filepath.Join(dir, KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func secret(name string, data map[string][]byte) *v1.Secret {
	return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Data: data}
}

const plaintext = "correct-horse-battery-staple"

// The bbolt file holds no plaintext; the decorated store gives it back;
// the key file is 0600.
func TestSealedAtRest(t *testing.T) {
	dir := t.TempDir()
	s, b := open(t, dir)
	ctx := context.Background()
	if _, err := s.Create(ctx, secret("db", map[string][]byte{"password": []byte(plaintext)})); err != nil {
		t.Fatal(err)
	}
	got, err := store.GetAs[*v1.Secret](ctx, s, "default", "db")
	if err != nil || string(got.Data["password"]) != plaintext {
		t.Fatalf("get: %v %q", err, got.Data["password"])
	}
	raw, err := store.GetAs[*v1.Secret](ctx, b, "default", "db")
	if err != nil || bytes.Contains(raw.Data["password"], []byte(plaintext)) || !bytes.HasPrefix(raw.Data["password"], prefix) {
		t.Fatalf("inner store holds %q (%v), want a sealed value", raw.Data["password"], err)
	}
	objs, _, err := s.List(ctx, v1.KindSecret, store.ListOptions{})
	if err != nil || len(objs) != 1 || string(objs[0].(*v1.Secret).Data["password"]) != plaintext {
		t.Fatalf("list: %v %v", err, objs)
	}
	b.Close()
	db, _ := os.ReadFile(filepath.Join(dir, "isotope.db"))
	if bytes.Contains(db, []byte(plaintext)) {
		t.Fatal("the bbolt file holds the secret's plaintext")
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, fi.Mode())
	}
}

// Another key file opens nothing, names the file, and loses nothing:
// the right key opens the secret again.
func TestWrongKeyFile(t *testing.T) {
	dir := t.TempDir()
	s, b := open(t, dir)
	ctx := context.Background()
	if _, err := s.Create(ctx, secret("db", map[string][]byte{"password": []byte(plaintext)})); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), KeyFileName)
	key2, _, err := LoadOrCreateKey(other)
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := New(b, key2, other)
	_, err = wrong.Get(ctx, v1.KindSecret, "default", "db")
	if err == nil || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), `"password"`) {
		t.Fatalf("get with the wrong key: %v, want an error naming the key file and the key", err)
	}
	if got, err := store.GetAs[*v1.Secret](ctx, s, "default", "db"); err != nil || string(got.Data["password"]) != plaintext {
		t.Fatalf("right key afterwards: %v", err)
	}
}

// A sealed value moved to another secret does not open there.
func TestSealedValueBoundToItsPlace(t *testing.T) {
	dir := t.TempDir()
	s, b := open(t, dir)
	ctx := context.Background()
	if _, err := s.Create(ctx, secret("a", map[string][]byte{"k": []byte(plaintext)})); err != nil {
		t.Fatal(err)
	}
	raw, _ := store.GetAs[*v1.Secret](ctx, b, "default", "a")
	moved := secret("b", map[string][]byte{"k": raw.Data["k"]})
	if _, err := b.Create(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, v1.KindSecret, "default", "b"); err == nil {
		t.Fatal("a sealed value opened under another secret's name")
	}
}

// Bad keys, oversized data and insecure key files are refused with the
// field or file named.
func TestHostileInput(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	ctx := context.Background()
	for _, tc := range []struct {
		sec  *v1.Secret
		want string
	}{
		{secret("x", map[string][]byte{"../x": []byte("v")}), "data[../x]"},
		{secret("x", map[string][]byte{"a/b": []byte("v")}), "data[a/b]"},
		{secret("x", map[string][]byte{"..": []byte("v")}), "data[..]"},
		{secret("../x", map[string][]byte{"k": []byte("v")}), "metadata.name"},
		{secret("x", map[string][]byte{"big": bytes.Repeat([]byte("a"), v1.MaxConfigSize+1)}), "data: Too long"},
	} {
		_, err := s.Create(ctx, tc.sec)
		if !store.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %s %v: %v, want Invalid naming %s", tc.sec.Name, len(tc.sec.Data), err, tc.want)
		}
	}
	if objs, _, _ := s.List(ctx, v1.KindSecret, store.ListOptions{}); len(objs) != 0 {
		t.Fatalf("refused secrets were stored: %v", objs)
	}
	loose := filepath.Join(t.TempDir(), KeyFileName)
	os.WriteFile(loose, bytes.Repeat([]byte("ab"), 32), 0o644)
	if _, _, err := LoadOrCreateKey(loose); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loose key file: %v", err)
	}
	junk := filepath.Join(t.TempDir(), KeyFileName)
	os.WriteFile(junk, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateKey(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Fatalf("junk key file: %v", err)
	}
}

// Watchers of secrets see opened values.
func TestWatchOpens(t *testing.T) {
	s, _ := open(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := s.Watch(ctx, v1.KindSecret, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := s.Create(ctx, secret("db", map[string][]byte{"password": []byte(plaintext)})); err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if sec, ok := ev.Object.(*v1.Secret); ok && ev.Type == store.Added {
			if string(sec.Data["password"]) != plaintext {
				t.Fatalf("watched value %q", sec.Data["password"])
			}
			return
		}
	}
	t.Fatal("watch ended without the secret")
}
