package archive

import (
	"archive/zip"
	"compress/flate"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Every archive Isotope writes is deterministic: the same files give the
// same bytes, hence the same sha256, whoever zips them and whenever. Entries
// come in lexical order, stamped with Epoch, with mode 0644 (0755 when
// any execute bit is set; 0755 for directories) whatever the umask.
// Compression favours speed: archives are built on the critical path of
// every build and upload. WebAssembly modules (*.wasm) are stored
// uncompressed: a function's first load unpacks its deploy archive, and
// inflating a 5.7 MB Go module took 32–90 ms there, more than everything
// else on a cold start; the archive is about three times bigger instead.

// Epoch is the modification time of every entry.
var Epoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func newWriter(w io.Writer) *zip.Writer {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	return zw
}

// Write writes a zip archive of src to w. When src is a directory, the
// entries are its contents relative to it (the directory itself is not an
// entry), with its subdirectories and symlinks (stored as symlinks); when
// src is a file, the archive holds that one file under its base name.
func Write(w io.Writer, src string) error {
	zw := newWriter(w)
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if err := addFile(zw, src, filepath.Base(src), st); err != nil {
			return err
		}
		return zw.Close()
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return addFile(zw, p, filepath.ToSlash(rel), info)
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

// WriteFile writes a zip archive of src into the file dst.
func WriteFile(dst, src string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := Write(f, src); err != nil {
		f.Close()
		os.Remove(dst)
		return err
	}
	return f.Close()
}

// Entry is a file going into an archive: its name there and its path.
type Entry struct{ Name, Path string }

// WriteEntries writes a zip archive of entries to w, sorted by name. A
// path that is a symlink is followed; every path must be a regular file.
func WriteEntries(w io.Writer, entries []Entry) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	zw := newWriter(w)
	for _, e := range sorted {
		info, err := os.Stat(e.Path)
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("archive %s: %s is not a regular file", e.Name, e.Path)
		}
		if err := addFile(zw, e.Path, filepath.ToSlash(e.Name), info); err != nil {
			return err
		}
	}
	return zw.Close()
}

func addFile(zw *zip.Writer, p, name string, info fs.FileInfo) error {
	hdr := &zip.FileHeader{Name: name, Modified: Epoch}
	mode := fs.FileMode(0o644)
	if info.Mode()&0o111 != 0 || info.IsDir() {
		mode = 0o755
	}
	hdr.SetMode(mode | info.Mode().Type())
	switch {
	case info.IsDir():
		hdr.Name += "/"
		hdr.Method = zip.Store
		_, err := zw.CreateHeader(hdr)
		return err
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Method = zip.Store
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, target)
		return err
	case info.Mode().IsRegular():
		hdr.Method = zip.Deflate
		if strings.HasSuffix(name, ".wasm") {
			hdr.Method = zip.Store
		}
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	default:
		return fmt.Errorf("archive %s: %s is not a regular file, directory or symlink", name, p)
	}
}
