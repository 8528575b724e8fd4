package cli

import (
	"archive/zip"
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

// writeZip writes a zip with the given entry names to dir/name.
func writeZip(t *testing.T, dir, name string, entries ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range entries {
		w, err := zw.Create(e)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("pwned"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// A zip-slip archive is refused when the function or package is created
// (it used to be stored and fail only at the first request), naming the
// flag, the file and the entry; nothing is stored or uploaded.
func TestZipSlipRefusedAtCreate(t *testing.T) {
	a := newTestAPI(t)
	slip := writeZip(t, t.TempDir(), "slip.zip", "main.wasm", "../../../../tmp/isotope-slip")
	a.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	for _, args := range [][]string{
		{"fn", "create", "--name", "f", "--env", "wasm", "--deploy", slip},
		{"fn", "create", "--name", "f", "--env", "wasm", "--code", slip},
		{"pkg", "create", "--name", "p", "--env", "wasm", "--src", slip},
		{"archive", "upload", "--name", slip},
	} {
		a.fails(args, slip, `entry "../../../../tmp/isotope-slip"`, `("..")`)
	}
	for _, kind := range []string{v1.KindFunction, v1.KindPackage} {
		if objs, _, _ := a.Store.List(context.Background(), kind, store.ListOptions{}); len(objs) != 0 {
			t.Errorf("%d %s stored", len(objs), kind)
		}
	}
	if out := a.ok("archive", "list").Stdout; out != "" {
		t.Errorf("archives uploaded: %q", out)
	}
	good := writeZip(t, t.TempDir(), "good.zip", "main.wasm")
	a.ok("fn", "create", "--name", "f", "--env", "wasm", "--deploy", good)
}
