package wasm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Mounts appear at their guest paths next to the archive directory, read
// only: a guest reads them and can neither change nor add a file.
func TestReadOnlyMounts(t *testing.T) {
	own := filepath.Join(t.TempDir(), "deployarchive")
	mustWrite(t, filepath.Join(own, "own.txt"), "mine")
	secrets := t.TempDir()
	mustWrite(t, filepath.Join(secrets, "default", "db", "password"), "pw")
	srv := serve(t, load(t, sharedRuntime(t), LoadRequest{Wasm: hostileModule(t), Name: "default/mounts",
		ArchiveDir: own, Mounts: map[string]string{"/secrets": secrets}}), "").URL
	for path, want := range map[string]string{"/secrets/default/db/password": "pw", "/own.txt": "mine"} {
		if r := ask(t, srv, "read", "path", path); r.status != 200 || r.body != want {
			t.Errorf("read %s: %d %q, want %q", path, r.status, r.body, want)
		}
	}
	for _, path := range []string{"/secrets/default/db/password", "/secrets/default/db/new", "/secrets/x"} {
		if r := ask(t, srv, "write", "path", path); r.status == 200 {
			t.Errorf("the guest wrote %s: %q", path, r.body)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(secrets, "default", "db", "password")); string(b) != "pw" {
		t.Errorf("the secret file now holds %q", b)
	}
	if _, err := os.Stat(filepath.Join(secrets, "default", "db", "new")); err == nil {
		t.Error("the guest created a file in a read-only mount")
	}

	for _, guest := range []string{"/", "secrets", "/a/../b"} {
		_, err := sharedRuntime(t).Load(context.Background(), LoadRequest{Wasm: hostileModule(t), Name: "default/bad", Mounts: map[string]string{guest: secrets}})
		if err == nil || !strings.Contains(err.Error(), "guest path") {
			t.Errorf("mount at %q: %v, want a refusal", guest, err)
		}
	}
}
