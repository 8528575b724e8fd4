package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Concurrent builds that need the same layer compress it once; the cache
// keeps the most recently used layers of a kind and drops the rest.
func TestCachedLayerOnceAndPruned(t *testing.T) {
	dir := t.TempDir()
	var made atomic.Int32
	entries := func() ([]entry, error) {
		made.Add(1)
		return []entry{fileEntry("/a/b", 0o644, []byte("content"))}, nil
	}
	var wg sync.WaitGroup
	digests := make([]string, 8)
	for i := range digests {
		wg.Go(func() {
			l, err := cachedLayer(dir, "binary", "same", entries)
			if err != nil {
				t.Error(err)
				return
			}
			d, _ := l.Digest()
			digests[i] = d.String()
		})
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Errorf("the layer was written %d times, want once", made.Load())
	}
	for _, d := range digests {
		if d != digests[0] {
			t.Fatalf("digests differ: %v", digests)
		}
	}
	for i := range 2 * cachedLayers {
		if _, err := cachedLayer(dir, "binary", fmt.Sprint(i), entries); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cachedLayer(dir, "toolchain-go", "kept", entries); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(dir, "binary-*.tar.gz"))
	if len(blobs) != cachedLayers {
		t.Errorf("%d binary layers cached, want %d", len(blobs), cachedLayers)
	}
	if blobs, _ := filepath.Glob(filepath.Join(dir, "toolchain-go-*.tar.gz")); len(blobs) != 1 {
		t.Errorf("pruning binaries took the toolchain's layer: %v", blobs)
	}
}

// The tar stream is canonical: parents added and first, sorted, epoch
// times, numeric owners; the same entries in any order give the same
// bytes.
func TestWriteTarCanonical(t *testing.T) {
	a := []entry{fileEntry("/usr/local/bin/x", 0o755, []byte("x")), dirEntry("/home/u", 0o755, 7, 7), fileEntry("/etc/passwd", 0o644, []byte("p"))}
	b := []entry{a[2], a[0], a[1]}
	var ba, bb bytes.Buffer
	if err := writeTar(&ba, a); err != nil {
		t.Fatal(err)
	}
	if err := writeTar(&bb, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ba.Bytes(), bb.Bytes()) {
		t.Error("the same entries in another order give other bytes")
	}
	var names []string
	tr := tar.NewReader(&ba)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Unix() != 0 || h.Uname != "" {
			t.Errorf("%s: %v %q", h.Name, h.ModTime, h.Uname)
		}
		names = append(names, h.Name)
	}
	want := []string{"etc/", "etc/passwd", "home/", "home/u/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/x"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("entries %v, want %v", names, want)
	}
	// compress is as deterministic as the tar it wraps.
	var c1, c2 bytes.Buffer
	i1, _ := compress(&c1, a)
	i2, _ := compress(&c2, b)
	if i1 != i2 || !bytes.Equal(c1.Bytes(), c2.Bytes()) {
		t.Errorf("compressed layers differ: %+v %+v", i1, i2)
	}
	zr, err := gzip.NewReader(&c1)
	if err != nil || !zr.ModTime.IsZero() {
		t.Errorf("gzip header time %v (%v)", zr.ModTime, err)
	}
}
