package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzLimits are small so that a fuzzed archive cannot make one
// execution slow, yet the ratio check (which starts at 1 MiB) can fire.
var fuzzLimits = Limits{MaxExpandedBytes: 2 << 20, MaxEntries: 64}

// FuzzExtract feeds arbitrary bytes to Extract as a zip archive. Seeds
// (testdata/fuzz/FuzzExtract, rewritten by TestWriteExtractSeeds) are
// valid archives and every hostile case of TestHostileArchives,
// TestLyingHeader and TestCorruptArchives.
//
// Whatever the input there is no panic, and nothing is created outside
// the destination: afterwards the directory holding the archive contains
// only the archive and the destination's parent, which holds only the
// destination on success and nothing on failure (no temporary directory
// left either). An error is an *EntryError naming the archive file and,
// when it is about one entry, quoting that entry's name. On success every
// path under the destination is a directory, a regular file or a symlink
// resolving inside the destination.
//
//	go test -run '^$' -fuzz FuzzExtract -fuzztime 60s ./internal/archive
func FuzzExtract(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		zipPath := filepath.Join(base, "pkg.zip")
		if err := os.WriteFile(zipPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(base, "out")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(out, "pkg")
		err := Extract(zipPath, dst, fuzzLimits)

		checkOnly(t, base, "out", "pkg.zip")
		if err != nil {
			checkOnly(t, out)
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("error %v (%T) is not an *EntryError", err, err)
			}
			if ee.Archive != zipPath || !strings.Contains(err.Error(), zipPath) {
				t.Fatalf("error %q does not name the archive %s", err, zipPath)
			}
			if ee.Entry != "" && !strings.Contains(err.Error(), strconv.Quote(ee.Entry)) {
				t.Fatalf("error %q does not quote its entry %q", err, ee.Entry)
			}
			return
		}
		checkOnly(t, out, "pkg")
		checkConfined(t, dst)
	})
}

// checkOnly fails unless dir holds exactly the names given.
func checkOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, "/") != strings.Join(names, "/") {
		t.Fatalf("%s holds %q, want exactly %q", dir, got, names)
	}
}

// checkConfined walks an extracted tree: only directories, regular files
// and symlinks that resolve inside it.
func checkConfined(t *testing.T, dst string) {
	t.Helper()
	realDst, err := filepath.EvalSymlinks(dst)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch typ := d.Type(); {
		case typ.IsDir(), typ.IsRegular():
		case typ&fs.ModeSymlink != 0:
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // dangling inside the tree
			}
			if rel, err := filepath.Rel(realDst, resolved); err != nil || !filepath.IsLocal(rel) && rel != "." {
				return fmt.Errorf("symlink %s resolves to %s, outside %s", p, resolved, dst)
			}
		default:
			return fmt.Errorf("%s has type %v", p, typ)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// extractSeeds are the archives of the seed corpus, by file name.
func extractSeeds(t *testing.T) map[string][]byte {
	seeds := map[string][]byte{
		"valid-tree": makeZip(t,
			entry{name: "main.go", body: "package main\n"},
			entry{name: "sub/", mode: fs.ModeDir | 0o755},
			entry{name: "sub/run.sh", body: "#!/bin/sh\n", mode: 0o755},
			entry{name: "sub/link", body: "run.sh", mode: fs.ModeSymlink | 0o777},
			entry{name: "sub/deep/x.txt", body: strings.Repeat("x", 500)}),
		"valid-empty":      makeZip(t),
		"valid-dir-link":   makeZip(t, entry{name: "a/b/f", body: "f"}, entry{name: "l", body: "a/b", mode: fs.ModeSymlink | 0o777}),
		"zip-slip":         makeZip(t, entry{name: "ok.txt", body: "fine"}, entry{name: "../evil.txt", body: "pwned"}),
		"zip-slip-nested":  makeZip(t, entry{name: "a/../../evil.txt", body: "pwned"}),
		"absolute":         makeZip(t, entry{name: "/tmp/isotope-evil.txt", body: "pwned"}),
		"backslash":        makeZip(t, entry{name: `..\evil.txt`, body: "pwned"}),
		"symlink-escape":   makeZip(t, entry{name: "sub/link", body: "../../outside", mode: fs.ModeSymlink | 0o777}, entry{name: "sub/link/evil.txt", body: "pwned"}),
		"symlink-absolute": makeZip(t, entry{name: "passwd", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}),
		"symlink-chain":    makeZip(t, entry{name: "a/l1", body: "..", mode: fs.ModeSymlink | 0o777}, entry{name: "l2", body: "a/l1/..", mode: fs.ModeSymlink | 0o777}),
		"zip-bomb":         makeZip(t, entry{name: "small.txt", body: "hello"}, entry{name: "zeros.bin", body: strings.Repeat("\x00", 2<<20)}),
		"duplicate":        makeZip(t, entry{name: "a.txt", body: "1"}, entry{name: "a.txt", body: "2"}),
		"named-pipe":       makeZip(t, entry{name: "fifo", mode: fs.ModeNamedPipe | 0o644}),
		"file-then-dir":    makeZip(t, entry{name: "a", body: "file"}, entry{name: "a/b", body: "under a file"}),
		"not-a-zip":        []byte("this is not a zip archive at all"),
		"dot-entry":        makeZip(t, entry{name: "./", mode: fs.ModeDir | 0o755}, entry{name: "./x", body: "x"}),
		"nul-in-name":      makeZip(t, entry{name: "a\x00b", body: "x"}),
		"windows-drive":    makeZip(t, entry{name: "C:evil", body: "x"}),
		"too-many-entries": manyEntries(t, fuzzLimits.MaxEntries+1),
	}
	valid := seeds["valid-tree"]
	seeds["truncated"] = valid[:len(valid)/2]

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "bad.txt", Method: zip.Store})
	w.Write([]byte("AAAAAAAAAAAAAAAA"))
	zw.Close()
	bad := bytes.Replace(buf.Bytes(), []byte("AAAAAAAAAAAAAAAA"), []byte("BAAAAAAAAAAAAAAA"), 1)
	seeds["bad-crc"] = bad

	body := bytes.Repeat([]byte{0}, 4<<10)
	buf.Reset()
	zw = zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: "liar.bin", Method: zip.Store, CRC32: crc32.ChecksumIEEE(body[:10]), CompressedSize64: uint64(len(body)), UncompressedSize64: 10}
	w, _ = zw.CreateRaw(hdr)
	w.Write(body)
	zw.Close()
	seeds["lying-header"] = buf.Bytes()
	return seeds
}

func manyEntries(t *testing.T, n int) []byte {
	var es []entry
	for i := range n {
		es = append(es, entry{name: fmt.Sprint(i)})
	}
	return makeZip(t, es...)
}

// TestWriteExtractSeeds rewrites testdata/fuzz/FuzzExtract from
// extractSeeds when ISOTOPE_WRITE_FUZZ_SEEDS=1; otherwise it checks every
// seed is committed, so the corpus cannot silently lose a hostile case.
// (Contents are not compared: deflate output may change between Go
// releases, and any version of a seed is as good a start.)
func TestWriteExtractSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzExtract")
	write := os.Getenv("ISOTOPE_WRITE_FUZZ_SEEDS") == "1"
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range extractSeeds(t) {
		p := filepath.Join(dir, "seed-"+name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
		if write {
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("seed %s is missing (%v); rerun with ISOTOPE_WRITE_FUZZ_SEEDS=1", p, err)
		}
	}
}
