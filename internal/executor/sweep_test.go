package executor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/store/boltstore"
)

// What a killed run left in the work dir (an instance directory, a
// fetched archive) is gone once a new executor starts on it; the
// directories themselves stay usable.
func TestNewSweepsAnEarlierRunsLeftovers(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	left := []string{
		filepath.Join(work, "instances", "default_env_1234", "userfunc", "main.py"),
		filepath.Join(work, "wasm", "default", "hello", "abcd", "function.wasm"),
	}
	for _, p := range left {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left over"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := boltstore.Open(filepath.Join(dir, "store.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := New(Config{Store: st, Fetcher: &fetcher.InProcess{Packages: st}, WorkDir: work, ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, sub := range []string{"instances", "wasm"} {
		entries, err := os.ReadDir(filepath.Join(work, sub))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Errorf("%s still holds %v after New", sub, entries)
		}
	}
}
