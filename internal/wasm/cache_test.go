package wasm

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/rewrite"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// snapshot lists every file under dir with its size and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files[p] = fmt.Sprintf("%s %d", info.ModTime().Format(time.RFC3339Nano), info.Size())
		return nil
	})
	return files
}

func TestCompileCacheSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	// A small module keeps the cold compile cheap; the Go guests take
	// the same path.
	wasm := wasmtest.WAGIHello()

	first, err := NewRuntime(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := first.Load(ctx, LoadRequest{Wasm: wasm, Key: "archive-sha"})
	if err != nil {
		t.Fatal(err)
	}
	if s := first.Stats(); s.Compiles != 1 || s.DiskCacheHits != 0 {
		t.Fatalf("first runtime: %+v, want one compile", s)
	}
	m.Close()
	first.Close(ctx)
	before := snapshot(t, dir)
	if len(before) < 2 {
		t.Fatalf("cache dir holds %d files after a compile", len(before))
	}

	second, err := NewRuntime(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close(ctx)
	m, err = second.Load(ctx, LoadRequest{Wasm: wasm, Key: "archive-sha"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if s := second.Stats(); s.Compiles != 0 || s.DiskCacheHits != 1 {
		t.Errorf("second runtime: %+v, want a disk cache hit and no compile", s)
	}
	// wazero writes its cache file only after compiling, so an unchanged
	// directory proves the code was read, not rebuilt.
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("cache dir changed: %d files before, %d after", len(before), len(after))
	}
	for p, v := range before {
		if after[p] != v {
			t.Errorf("cache file %s rewritten", p)
		}
	}
	if r := do(t, "GET", serve(t, m, "").URL+"/", "", nil); r.status != 200 {
		t.Errorf("module from the disk cache: %d %q", r.status, r.body)
	}
}

func TestConcurrentLoadsCompileOnce(t *testing.T) {
	rt := newRuntime(t, Config{CacheDir: wasmtest.CompileCacheDir()})
	wasm := reactorModule(t)
	var wg sync.WaitGroup
	mods := make([]*Module, 6)
	errs := make([]error, 6)
	for i := range mods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mods[i], errs[i] = rt.Load(context.Background(), LoadRequest{Wasm: wasm, Key: "k", Limits: Limits{WarmInstances: -1}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
		defer mods[i].Close()
	}
	if s := rt.Stats(); s.Compiles+s.DiskCacheHits != 1 || s.SharedLoads != 5 || s.Modules != 1 {
		t.Errorf("stats = %+v, want one compile shared by 6 loads", s)
	}
}

// A Load whose Key is already compiled reads nothing: the module file of
// a second function of the same deploy archive is not read or hashed
// again (here it is gone, and the Load still succeeds), while a Key not
// yet compiled must name readable bytes.
func TestLoadOfACompiledKeyReadsNoBytes(t *testing.T) {
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	path := filepath.Join(t.TempDir(), "main.wasm")
	if err := os.WriteFile(path, wasmtest.WAGIHello(), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := rt.Load(ctx, LoadRequest{Path: path, Key: "archive-sha"})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	second, err := rt.Load(ctx, LoadRequest{Path: path, Key: "archive-sha"})
	if err != nil {
		t.Fatalf("second load of a compiled key: %v", err)
	}
	defer second.Close()
	if s := rt.Stats(); s.Compiles != 1 || s.SharedLoads != 1 {
		t.Fatalf("%+v: want one compile, one shared load", s)
	}
	_, err = rt.Load(ctx, LoadRequest{Path: path, Key: "other-archive"})
	if err == nil || !strings.Contains(err.Error(), "main.wasm") {
		t.Fatalf("load of an uncompiled key from a missing file: %v, want an error naming it", err)
	}
}

// The rewrite with interrupt checks is kept in the cache dir too, so a
// new process does not redo it for every module; a damaged copy is
// rewritten again, never compiled as it is.
func TestRewrittenModulesAreCached(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	wasm := wasmtest.WAGIHello()
	load := func() *Runtime {
		t.Helper()
		rt, err := NewRuntime(ctx, Config{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m, err := rt.Load(ctx, LoadRequest{Wasm: wasm})
		if err != nil {
			t.Fatal(err)
		}
		if r := do(t, "GET", serve(t, m, "").URL+"/", "", nil); r.status != 200 || !m.Stats().InterruptChecks {
			t.Fatalf("%d %q, interrupt checks %v", r.status, r.body, m.Stats().InterruptChecks)
		}
		m.Close()
		return rt
	}
	first := load()
	first.Close(ctx)
	files, _ := filepath.Glob(filepath.Join(dir, "*", "isotope-rewritten", "*.wasm"))
	if len(files) != 1 {
		t.Fatalf("rewritten modules in the cache: %v, want one", files)
	}
	want, err := rewrite.Rewrite(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, want) {
		t.Fatal("the cached rewrite is not the rewrite")
	}
	// Damaged: the next process rewrites and replaces it.
	if err := os.WriteFile(files[0], []byte("\x00asm\x01\x00\x00\x00garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := load()
	defer second.Close(ctx)
	if got, _ := os.ReadFile(files[0]); bytes.Contains(got, []byte("garbage")) {
		// Removed, not yet rewritten, is fine too; garbage is not.
		t.Fatal("the damaged rewrite is still cached")
	}
}

// The same module under another key (a new deploy archive of code
// already loaded) shares the compiled module instead of being decoded
// and compiled again; the code is freed with the last Module of either.
func TestSameModuleUnderAnotherKeyIsShared(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t, Config{KeepIdleCompiled: -1})
	mod := wasmtest.WAGIHello()
	a := load(t, rt, LoadRequest{Wasm: mod, Key: "archive-a"})
	b := load(t, rt, LoadRequest{Wasm: mod, Key: "archive-b"})
	c := load(t, rt, LoadRequest{Wasm: mod, Key: "archive-b"})
	if s := rt.Stats(); s.Compiles != 1 || s.SharedLoads != 2 {
		t.Fatalf("three loads of one module under two keys: %+v, want one compile and two shared loads", s)
	}
	for _, m := range []*Module{a, b, c} {
		if r := do(t, "GET", serve(t, m, "").URL+"/", "", nil); r.status != 200 || r.body != "hello\n" {
			t.Fatalf("%d %q", r.status, r.body)
		}
	}
	a.Close()
	if r := do(t, "GET", serve(t, b, "").URL+"/", "", nil); r.status != 200 {
		t.Fatalf("after the first key's Module closed: %d %q", r.status, r.body)
	}
	b.Close()
	c.Close()
	if s := rt.Stats(); s.Modules != 0 {
		t.Fatalf("%d compiled modules held after every Module closed", s.Modules)
	}
	// Loaded again: compiled again (nothing was kept).
	d, err := rt.Load(ctx, LoadRequest{Wasm: mod, Key: "archive-c"})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if s := rt.Stats(); s.Compiles != 2 {
		t.Fatalf("%+v, want a second compile", s)
	}
}
