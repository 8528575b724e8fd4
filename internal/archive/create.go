package archive

import (
	"archive/zip"
	"compress/flate"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Write writes a zip archive of src to w. When src is a directory, the
// entries are its contents relative to it (the directory itself is not an
// entry), in lexical order; when src is a file, the archive holds that one
// file under its base name. Symlinks are stored as symlinks. Compression
// favours speed: archives are built on the critical path of every build.
// WebAssembly modules (*.wasm) are stored uncompressed: a function's
// first load unpacks its deploy archive, and inflating a 5.7 MB Go module
// took 32–90 ms there, more than everything else on a cold start; the
// archive is about three times bigger instead.
func Write(w io.Writer, src string) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
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

func addFile(zw *zip.Writer, p, name string, info fs.FileInfo) error {
	hdr, err := zip.FileInfoHeader(info)
	if err != nil {
		return err
	}
	hdr.Name = name
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
