package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// entry describes one zip entry for building test archives.
type entry struct {
	name string
	body string
	mode fs.FileMode // 0 means a regular 0644 file
}

func makeZip(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layout writes the archive into base/pkg.zip and returns it and the
// destination base/out/pkg (base/out exists, pkg does not).
func layout(t *testing.T, data []byte) (base, zipPath, dst string) {
	t.Helper()
	base = t.TempDir()
	zipPath = filepath.Join(base, "pkg.zip")
	if err := os.WriteFile(zipPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(base, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	return base, zipPath, filepath.Join(base, "out", "pkg")
}

// tree lists every path under dir, relative, sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// assertRefused checks err names entry and says why, and that nothing
// but the original archive and the empty out/ directory exists in base.
func assertRefused(t *testing.T, err error, base, entryName, why string) {
	t.Helper()
	if err == nil {
		t.Fatal("hostile archive was extracted")
	}
	var ee *EntryError
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not an *EntryError", err, err)
	}
	if ee.Entry != entryName {
		t.Errorf("error names entry %q, want %q (%v)", ee.Entry, entryName, err)
	}
	if entryName != "" && !strings.Contains(err.Error(), strconv.Quote(entryName)) {
		t.Errorf("message %q does not name the entry %q", err, entryName)
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("message %q does not say %q", err, why)
	}
	got := strings.Join(tree(t, base), " ")
	if want := ". out pkg.zip"; got != want {
		t.Errorf("files after refusal: %q, want %q", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "sub", "deep", "x.txt"), bytes.Repeat([]byte("x"), 5000), 0o644))
	must(os.Symlink("deep/x.txt", filepath.Join(src, "sub", "link")))

	base := t.TempDir()
	zipPath := filepath.Join(base, "a.zip")
	must(WriteFile(zipPath, src))
	if ok, err := IsZip(zipPath); err != nil || !ok {
		t.Fatalf("IsZip = %v, %v", ok, err)
	}
	dst := filepath.Join(base, "out")
	must(Extract(zipPath, dst, Limits{}))

	if got, want := strings.Join(tree(t, dst), " "), strings.Join(tree(t, src), " "); got != want {
		t.Fatalf("extracted tree %q, want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(dst, "sub", "link"))
	must(err)
	if len(b) != 5000 {
		t.Errorf("symlinked file has %d bytes", len(b))
	}
	st, err := os.Stat(filepath.Join(dst, "sub", "run.sh"))
	must(err)
	if st.Mode().Perm()&0o100 == 0 {
		t.Errorf("executable bit lost: %v", st.Mode())
	}
	// A second extraction onto an existing destination is refused.
	if err := Extract(zipPath, dst, Limits{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("extract onto existing dir: %v", err)
	}
	// A single file archives under its base name.
	var buf bytes.Buffer
	must(Write(&buf, filepath.Join(src, "main.go")))
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	must(err)
	if len(zr.File) != 1 || zr.File[0].Name != "main.go" {
		t.Errorf("single-file archive entries: %v", zr.File)
	}
}

// WebAssembly modules go into archives uncompressed (their first load
// unpacks them on the cold-start path); other files are deflated.
func TestWriteStoresWasmUncompressed(t *testing.T) {
	src := t.TempDir()
	body := bytes.Repeat([]byte("\x00asm compressible "), 4096)
	for _, name := range []string{"main.wasm", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(src, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, src); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint16{"main.wasm": zip.Store, "notes.txt": zip.Deflate}
	for _, f := range zr.File {
		if f.Method != want[f.Name] {
			t.Errorf("%s stored with method %d, want %d", f.Name, f.Method, want[f.Name])
		}
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := Extract(bytesFile(t, buf.Bytes()), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "main.wasm")); !bytes.Equal(got, body) {
		t.Errorf("main.wasm does not round-trip")
	}
}

// bytesFile writes b to a temporary file and returns its path.
func bytesFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHostileArchives(t *testing.T) {
	zeros := strings.Repeat("\x00", 2<<20)
	cases := []struct {
		name    string
		entries []entry
		lim     Limits
		bad     string // entry the error must name
		why     string
	}{
		{"zip slip", []entry{{name: "ok.txt", body: "fine"}, {name: "../evil.txt", body: "pwned"}}, Limits{}, "../evil.txt", `".."`},
		{"zip slip nested", []entry{{name: "a/../../evil.txt", body: "pwned"}}, Limits{}, "a/../../evil.txt", `".."`},
		{"absolute path", []entry{{name: "/tmp/isotope-evil.txt", body: "pwned"}}, Limits{}, "/tmp/isotope-evil.txt", "absolute path"},
		{"backslash", []entry{{name: `..\evil.txt`, body: "pwned"}}, Limits{}, `..\evil.txt`, "backslash"},
		{"symlink escape", []entry{{name: "sub/link", body: "../../outside", mode: fs.ModeSymlink | 0o777}, {name: "sub/link/evil.txt", body: "pwned"}}, Limits{}, "sub/link", "outside the archive directory"},
		{"symlink absolute", []entry{{name: "passwd", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}}, Limits{}, "passwd", "absolute path"},
		{"zip bomb ratio", []entry{{name: "small.txt", body: "hello"}, {name: "zeros.bin", body: zeros}}, Limits{}, "zeros.bin", "zip bomb"},
		{"size cap", []entry{{name: "zeros.bin", body: zeros}}, Limits{MaxExpandedBytes: 1 << 20, MaxRatio: 1e9}, "zeros.bin", "limit of 1048576 bytes"},
		{"too many entries", []entry{{name: "a"}, {name: "b"}, {name: "c"}}, Limits{MaxEntries: 2}, "", "3 entries"},
		{"duplicate", []entry{{name: "a.txt", body: "1"}, {name: "a.txt", body: "2"}}, Limits{}, "a.txt", "duplicate entry"},
		{"named pipe", []entry{{name: "fifo", mode: fs.ModeNamedPipe | 0o644}}, Limits{}, "fifo", "unsupported entry type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base, zipPath, dst := layout(t, makeZip(t, c.entries...))
			err := Extract(zipPath, dst, c.lim)
			assertRefused(t, err, base, c.bad, c.why)
			if !errors.Is(err, ErrRefused) {
				t.Errorf("%v does not wrap ErrRefused", err)
			}
		})
	}
}

// TestLyingHeader: an entry whose header declares fewer bytes than its
// data holds is caught while reading, not trusted.
func TestLyingHeader(t *testing.T) {
	body := bytes.Repeat([]byte{0}, 64<<10)
	var raw bytes.Buffer
	zw := zip.NewWriter(&raw)
	hdr := &zip.FileHeader{Name: "liar.bin", Method: zip.Store}
	hdr.CRC32 = crc32.ChecksumIEEE(body[:10])
	hdr.CompressedSize64 = uint64(len(body))
	hdr.UncompressedSize64 = 10
	w, err := zw.CreateRaw(hdr)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	zw.Close()
	base, zipPath, dst := layout(t, raw.Bytes())
	assertRefused(t, Extract(zipPath, dst, Limits{}), base, "liar.bin", "corrupt entry")
}

func TestCorruptArchives(t *testing.T) {
	t.Run("not a zip", func(t *testing.T) {
		base, zipPath, dst := layout(t, []byte("this is not a zip archive at all"))
		err := Extract(zipPath, dst, Limits{})
		assertRefused(t, err, base, "", "not a valid zip archive")
		if !strings.Contains(err.Error(), zipPath) {
			t.Errorf("error %q does not name the archive file", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		data := makeZip(t, entry{name: "a.txt", body: strings.Repeat("abc", 1000)})
		base, zipPath, dst := layout(t, data[:len(data)/2])
		assertRefused(t, Extract(zipPath, dst, Limits{}), base, "", "not a valid zip archive")
	})
	t.Run("bad entry data", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: "good.txt", Method: zip.Store})
		w.Write([]byte("good"))
		w, _ = zw.CreateHeader(&zip.FileHeader{Name: "bad.txt", Method: zip.Store})
		w.Write([]byte("AAAAAAAAAAAAAAAA"))
		zw.Close()
		data := buf.Bytes()
		i := bytes.Index(data, []byte("AAAAAAAAAAAAAAAA"))
		data[i] = 'B' // CRC no longer matches
		base, zipPath, dst := layout(t, data)
		assertRefused(t, Extract(zipPath, dst, Limits{}), base, "bad.txt", "checksum")
	})
}

func TestIsZip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("package main"), 0o644)
	if ok, err := IsZip(p); err != nil || ok {
		t.Errorf("IsZip(go file) = %v, %v", ok, err)
	}
	os.WriteFile(p, nil, 0o644)
	if ok, err := IsZip(p); err != nil || ok {
		t.Errorf("IsZip(empty) = %v, %v", ok, err)
	}
}

// The same files make the same archive bytes, whatever their times and
// permission bits beyond executable or not: Write, WriteEntries.
func TestArchivesAreDeterministic(t *testing.T) {
	tree := func(mode os.FileMode, mtime time.Time) string {
		dir := t.TempDir()
		for name, body := range map[string]string{"a.txt": "a", "sub/b.txt": "b", "run.sh": "#!/bin/sh\n"} {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			m := mode
			if name == "run.sh" {
				m |= 0o111
			}
			if err := os.WriteFile(p, []byte(body), m); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, m)
			os.Chtimes(p, mtime, mtime)
		}
		return dir
	}
	a := tree(0o644, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
	b := tree(0o600, time.Now())
	zipOf := func(dir string) ([]byte, []byte) {
		var w, e bytes.Buffer
		if err := Write(&w, dir); err != nil {
			t.Fatal(err)
		}
		entries := []Entry{{"sub/b.txt", filepath.Join(dir, "sub", "b.txt")}, {"a.txt", filepath.Join(dir, "a.txt")}, {"run.sh", filepath.Join(dir, "run.sh")}}
		if err := WriteEntries(&e, entries); err != nil {
			t.Fatal(err)
		}
		return w.Bytes(), e.Bytes()
	}
	wa, ea := zipOf(a)
	wb, eb := zipOf(b)
	if !bytes.Equal(wa, wb) || !bytes.Equal(ea, eb) {
		t.Fatal("the same files made different archives")
	}
	zr, err := zip.NewReader(bytes.NewReader(ea), int64(len(ea)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range zr.File {
		got = append(got, fmt.Sprintf("%s %v", f.Name, f.Mode()))
	}
	if want := "a.txt -rw-r--r--,run.sh -rwxr-xr-x,sub/b.txt -rw-r--r--"; strings.Join(got, ",") != want {
		t.Errorf("entries %v, want %s", got, want)
	}
	if err := WriteEntries(io.Discard, []Entry{{"d", a}}); err == nil {
		t.Error("a directory entry was accepted")
	}
}
