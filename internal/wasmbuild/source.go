package wasmbuild

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Source is a copy of the user's source in a work directory of its own,
// so the build may write anything next to it (object files, target/)
// and SRC_PKG is never modified.
type Source struct {
	// Dir is the root of the copy: a directory source's contents, or
	// the directory holding a single-file source.
	Dir string
	// File is a single-file source's name inside Dir; empty when the
	// source is a directory.
	File string

	work string
}

// Stage copies src into a new temporary directory. A single file is
// copied under the name fileName gives it (Fission's fetcher names a
// single-file source after the package, without an extension, so the
// builder must choose one). A directory whose only content is one
// directory (a zip of a folder) is descended into. Close removes the
// copy.
func Stage(src, prefix string, fileName func(base string) string) (*Source, error) {
	if _, err := os.Stat(src); err != nil { // before making anything
		return nil, fmt.Errorf("source %s: %w", src, unwrapPath(err))
	}
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	// The build runs inside dir; a fixed name keeps paths in compiler
	// messages and in the module short and the same from build to build.
	dir := filepath.Join(work, "src")
	s := &Source{Dir: dir, work: work}
	if err := os.Mkdir(dir, 0o755); err != nil {
		s.Close()
		return nil, err
	}
	if s.File, err = CopySource(src, dir, fileName); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// CopySource copies the user's source into the directory dir: a single
// file under the name fileName gives it (returned), a directory's
// contents (descending into a directory whose only content is one
// directory, a zip of a folder) with "" returned.
func CopySource(src, dir string, fileName func(base string) string) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, unwrapPath(err))
	}
	if !st.IsDir() {
		name := fileName(filepath.Base(src))
		return name, copyFile(src, filepath.Join(dir, name), 0o644)
	}
	for {
		next, ok, err := soleSubdir(src)
		if err != nil {
			return "", err
		}
		if !ok {
			break
		}
		src = next
	}
	return "", CopyTree(src, dir)
}

// Close removes the work directory.
func (s *Source) Close() error { return os.RemoveAll(s.work) }

// Scratch is a directory next to the source copy, inside the work
// directory, for what the build makes that is not part of the source
// (CARGO_HOME, probe programs). It is created on first use.
func (s *Source) Scratch(name string) (string, error) {
	p := filepath.Join(s.work, name)
	return p, os.MkdirAll(p, 0o755)
}

// Has reports whether the source directory holds a regular file name at
// its top.
func (s *Source) Has(name string) bool {
	if s.File != "" {
		return false
	}
	st, err := os.Stat(filepath.Join(s.Dir, name))
	return err == nil && st.Mode().IsRegular()
}

// HasDir reports whether the source directory holds a directory name at
// its top.
func (s *Source) HasDir(name string) bool {
	if s.File != "" {
		return false
	}
	st, err := os.Stat(filepath.Join(s.Dir, name))
	return err == nil && st.IsDir()
}

// TopFiles returns the names of the regular files at the top of the
// source whose extension (".c", ".rs") is in exts, sorted.
func (s *Source) TopFiles(exts ...string) ([]string, error) {
	if s.File != "" {
		for _, e := range exts {
			if filepath.Ext(s.File) == e {
				return []string{s.File}, nil
			}
		}
		return nil, nil
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		for _, x := range exts {
			if filepath.Ext(e.Name()) == x {
				out = append(out, e.Name())
				break
			}
		}
	}
	return out, nil // os.ReadDir sorts by name
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// soleSubdir reports whether dir holds only one directory (ignoring dot
// files and __MACOSX) and returns it.
func soleSubdir(dir string) (string, bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", false, err
	}
	var sub string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || n == "__MACOSX" {
			continue
		}
		if !e.IsDir() || sub != "" {
			return "", false, nil
		}
		sub = n
	}
	if sub == "" {
		return "", false, nil
	}
	return filepath.Join(dir, sub), true, nil
}

// CopyTree copies the directory src into dst, leaving out .git and
// __MACOSX, keeping symlinks as links and skipping what is not a file.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "__MACOSX") {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm()|0o600)
		}
		return nil // sockets, devices: not source
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
