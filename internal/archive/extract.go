package archive

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Extract unpacks the zip archive at src into the directory dst, which
// must not exist yet. Entries are written into a temporary directory next
// to dst and renamed to dst at the end, so dst appears complete or not at
// all; on any error nothing is left behind.
func Extract(src, dst string, lim Limits) error {
	lim = lim.withDefaults()
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("extract %s: destination %s already exists", src, dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	zr, size, err := openZip(src)
	if err != nil {
		return err
	}
	defer zr.Close()

	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".extract-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := extractInto(&zr.Reader, src, size, tmp, lim, true); err != nil {
		return err
	}
	// MkdirTemp makes 0700; a package directory is read by other users
	// (the runtime) like any checkout.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("extract %s: %w", src, err)
	}
	ok = true
	return nil
}

// Check runs every check Extract makes on the zip archive at src,
// without keeping anything: a nil error means Extract would accept it.
// Entries are decompressed (so corrupt data and lying headers are found)
// but not written; the directory tree and symlinks are made, with empty
// files, in a temporary directory removed on return, so that symlinks
// are resolved exactly as Extract resolves them. Use it to refuse a bad
// archive when it is uploaded rather than when it is first extracted.
func Check(src string, lim Limits) error {
	zr, size, err := openZip(src)
	if err != nil {
		return err
	}
	defer zr.Close()
	return check(&zr.Reader, src, size, lim)
}

// CheckReader is Check for an archive read from r (size bytes); name is
// how errors call it.
func CheckReader(r io.ReaderAt, size int64, name string, lim Limits) error {
	zr, err := zip.NewReader(r, size)
	if errors.Is(err, zip.ErrInsecurePath) && zr != nil {
		err = nil // checked below, naming the entry
	}
	if err != nil {
		return &EntryError{Archive: name, Reason: "not a valid zip archive", Err: err}
	}
	return check(zr, name, size, lim)
}

func check(zr *zip.Reader, src string, size int64, lim Limits) error {
	tmp, err := os.MkdirTemp("", "isotope-archive-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	return extractInto(zr, src, size, tmp, lim.withDefaults(), false)
}

// extractInto writes every entry of zr under dir, confined by os.Root.
// Without contents, regular files are created empty and their bytes
// only decompressed and counted.
func extractInto(zr *zip.Reader, src string, archiveSize int64, dir string, lim Limits, contents bool) error {
	refuse := func(entry, format string, args ...any) error {
		return &EntryError{Archive: src, Entry: entry, Reason: fmt.Sprintf(format, args...), Err: ErrRefused}
	}
	if len(zr.File) > lim.MaxEntries {
		return refuse("", "%d entries, more than the limit of %d", len(zr.File), lim.MaxEntries)
	}
	if archiveSize < 1 {
		archiveSize = 1
	}
	// First pass: names, types and declared sizes, so a hostile archive
	// is refused before a single byte is written.
	var declared uint64
	var links []*zip.File
	for _, f := range zr.File {
		if _, err := entryName(f.Name); err != nil {
			return refuse(f.Name, "%v", err)
		}
		mode := f.Mode()
		switch {
		case mode.IsDir(), mode.IsRegular():
		case mode&fs.ModeSymlink != 0:
			links = append(links, f)
		default:
			return refuse(f.Name, "unsupported entry type %v", mode.Type())
		}
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxExpandedBytes) {
			return refuse(f.Name, "archive expands to more than the limit of %d bytes", lim.MaxExpandedBytes)
		}
		if declared > ratioFloor && float64(declared)/float64(archiveSize) > lim.MaxRatio {
			return refuse(f.Name, "archive expands more than %g times its size (zip bomb?)", lim.MaxRatio)
		}
	}

	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	// Second pass: write. Sizes are counted from the bytes actually
	// decompressed, since headers can lie.
	var written int64
	budget := func() int64 { return lim.MaxExpandedBytes - written }
	for _, f := range zr.File {
		name, _ := entryName(f.Name)
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if name == "." {
				continue
			}
			if err := root.MkdirAll(name, 0o755); err != nil {
				return &EntryError{Archive: src, Entry: f.Name, Reason: "cannot create directory", Err: err}
			}
		case mode&fs.ModeSymlink != 0:
			target, err := readSmall(f, 4096)
			if err != nil {
				return &EntryError{Archive: src, Entry: f.Name, Reason: "corrupt entry", Err: err}
			}
			if err := checkLinkTarget(name, target); err != nil {
				return refuse(f.Name, "%v", err)
			}
			if err := mkParent(root, name); err != nil {
				return &EntryError{Archive: src, Entry: f.Name, Reason: "cannot create parent directory", Err: err}
			}
			if err := root.Symlink(target, name); err != nil {
				return &EntryError{Archive: src, Entry: f.Name, Reason: "cannot create symlink", Err: err}
			}
		default:
			if name == "." {
				return refuse(f.Name, "a file entry cannot name the archive root")
			}
			n, err := writeEntry(root, f, name, budget(), contents)
			written += n
			if err != nil {
				var ee *EntryError
				if errors.As(err, &ee) {
					ee.Archive = src
					return ee
				}
				return &EntryError{Archive: src, Entry: f.Name, Reason: "cannot extract", Err: err}
			}
			if written > ratioFloor && float64(written)/float64(archiveSize) > lim.MaxRatio {
				return refuse(f.Name, "archive expands more than %g times its size (zip bomb?)", lim.MaxRatio)
			}
		}
	}
	// Symlinks were checked lexically; now that the tree exists, check
	// where each really resolves, which also covers chains of links.
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	for _, f := range links {
		name, _ := entryName(f.Name)
		resolved, err := filepath.EvalSymlinks(filepath.Join(realDir, filepath.FromSlash(name)))
		if err != nil {
			continue // dangling inside the tree: harmless
		}
		if rel, err := filepath.Rel(realDir, resolved); err != nil || !filepath.IsLocal(rel) && rel != "." {
			return refuse(f.Name, "symlink resolves outside the archive directory")
		}
	}
	return nil
}

// entryName validates an entry name and returns it cleaned, with "/"
// separators. Directory entries end in "/" in zips; that is allowed.
func entryName(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty entry name")
	}
	if strings.ContainsRune(raw, 0) {
		return "", errors.New("entry name contains a NUL byte")
	}
	if strings.Contains(raw, `\`) {
		return "", errors.New(`entry name contains a backslash`)
	}
	if strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) || (len(raw) > 1 && raw[1] == ':') {
		return "", errors.New("absolute path")
	}
	for _, part := range strings.Split(strings.TrimSuffix(raw, "/"), "/") {
		if part == ".." {
			return "", errors.New(`path escapes the archive directory ("..")`)
		}
	}
	name := path.Clean(raw)
	if !filepath.IsLocal(filepath.FromSlash(name)) && name != "." {
		return "", errors.New("path is not local to the archive directory")
	}
	return name, nil
}

// checkLinkTarget refuses a symlink whose target is absolute or leaves
// the tree when resolved lexically from the link's directory.
func checkLinkTarget(name, target string) error {
	if target == "" {
		return errors.New("symlink with an empty target")
	}
	if strings.HasPrefix(target, "/") || filepath.IsAbs(target) {
		return fmt.Errorf("symlink to absolute path %q", target)
	}
	joined := path.Join(path.Dir(name), target)
	if joined != "." && !filepath.IsLocal(filepath.FromSlash(joined)) {
		return fmt.Errorf("symlink to %q points outside the archive directory", target)
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if d := path.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

// writeEntry writes one regular file, reading at most budget bytes; with
// contents false the file is created empty and the bytes are discarded.
func writeEntry(root *os.Root, f *zip.File, name string, budget int64, contents bool) (int64, error) {
	if err := mkParent(root, name); err != nil {
		return 0, err
	}
	rc, err := f.Open()
	if err != nil {
		return 0, &EntryError{Entry: f.Name, Reason: "corrupt entry", Err: err}
	}
	defer rc.Close()
	perm := fs.FileMode(0o644)
	if f.Mode()&0o111 != 0 {
		perm = 0o755
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return 0, &EntryError{Entry: f.Name, Reason: "duplicate entry", Err: ErrRefused}
	}
	if err != nil {
		return 0, err
	}
	var dst io.Writer = out
	if !contents {
		dst = io.Discard
	}
	n, err := io.Copy(dst, io.LimitReader(rc, budget+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, &EntryError{Entry: f.Name, Reason: "corrupt entry", Err: err}
	}
	if n > budget {
		return n, &EntryError{Entry: f.Name, Reason: "archive expands past the size limit", Err: ErrRefused}
	}
	return n, nil
}

func readSmall(f *zip.File, max int64) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return "", err
	}
	if int64(len(b)) > max {
		return "", fmt.Errorf("symlink target longer than %d bytes", max)
	}
	return string(b), nil
}
