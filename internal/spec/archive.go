package spec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"isotope.dev/isotope/internal/archive"
)

// Uploader stores an archive that is too large to inline in a Package
// (more than v1.ArchiveLiteralSizeLimit bytes) and returns its URL and the
// lowercase hex sha256 of what it stored ("" if it does not compute one).
// The storage service's client implements it.
type Uploader interface {
	Upload(ctx context.Context, name string, r io.Reader, size int64) (url string, sum string, err error)
}

// builtArchive is an ArchiveUploadSpec's archive, built in memory: a zip,
// or the file itself when the spec names exactly one plain file.
type builtArchive struct {
	name   string
	data   []byte
	sum    string // lowercase hex sha256 of data
	files  []string
	upload string // the name it is uploaded under
}

func checkGlob(g string) error {
	if strings.TrimSpace(g) == "" {
		return errors.New("empty glob")
	}
	_, err := path.Match(filepath.ToSlash(g), "")
	return err
}

// archiveRoot is where an ArchiveUploadSpec's globs are resolved: its
// rootdir, relative to the spec directory's parent (the project directory
// `spec init` was run in), or that parent itself. A spec directory may
// come from anyone (a cloned repository): rootdir may not leave the
// project directory, so that applying it cannot upload ~/.ssh.
func archiveRoot(specDir string, a *ArchiveUploadSpec) (string, error) {
	abs, err := filepath.Abs(specDir)
	if err != nil {
		return "", err
	}
	project := filepath.Dir(abs)
	if a.RootDir == "" {
		return project, nil
	}
	if err := checkRootDir(a.RootDir); err != nil {
		return "", fmt.Errorf("rootdir %q: %v", a.RootDir, err)
	}
	root := filepath.Join(project, filepath.FromSlash(a.RootDir))
	if err := within(project, root); err != nil {
		return "", fmt.Errorf("rootdir %q: %v", a.RootDir, err)
	}
	return root, nil
}

// checkRootDir and checkInclude refuse, before any file is read, a
// rootdir or include glob that names a place outside the archive's root:
// an absolute path, or ".." past the start.
func checkRootDir(dir string) error {
	if filepath.IsAbs(dir) || path.IsAbs(filepath.ToSlash(dir)) {
		return errors.New("must be relative to the project directory (the spec directory's parent)")
	}
	if escapes(dir) {
		return errors.New(`leaves the project directory ("..")`)
	}
	return nil
}

func checkInclude(g string) error {
	if filepath.IsAbs(g) || path.IsAbs(filepath.ToSlash(g)) {
		return errors.New("absolute paths are not allowed: name files relative to rootdir (the project directory by default)")
	}
	if escapes(g) {
		return errors.New(`leaves the archive's root directory ("..")`)
	}
	return nil
}

// escapes reports whether a relative path climbs above its start.
func escapes(p string) bool {
	c := path.Clean(filepath.ToSlash(p))
	return c == ".." || strings.HasPrefix(c, "../")
}

// within refuses p unless it is dir or under it once symlinks are
// resolved (a path that does not exist yet is judged as written).
func within(dir, p string) error {
	real := func(x string) string {
		if r, err := filepath.EvalSymlinks(x); err == nil {
			return r
		}
		return filepath.Clean(x)
	}
	rel, err := filepath.Rel(real(dir), real(p))
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return fmt.Errorf("%s is outside %s", p, dir)
	}
	return nil
}

// buildArchive zips the files an ArchiveUploadSpec names with
// archive.WriteEntries, so unchanged files give an unchanged checksum.
func buildArchive(specDir string, a *ArchiveUploadSpec) (*builtArchive, error) {
	root, err := archiveRoot(specDir, a)
	if err != nil {
		return nil, err
	}
	files := map[string]string{} // entry name → file
	plain := 0                   // files named by an include, not found in a directory
	add := func(name, p string) error {
		if excluded(a.Exclude, name) {
			return nil
		}
		if prev, dup := files[name]; dup && prev != p {
			return fmt.Errorf("%s and %s would both be %q in the archive", prev, p, name)
		}
		files[name] = p
		return nil
	}
	for _, g := range a.Include {
		if err := checkInclude(g); err != nil {
			return nil, fmt.Errorf("include %q: %v", g, err)
		}
		matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(g)))
		if err != nil {
			return nil, fmt.Errorf("include %q: %v", g, err)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("include %q matches no file under %s", g, root)
		}
		for _, m := range matches {
			// A symlink in the project may point anywhere.
			if err := within(root, m); err != nil {
				return nil, fmt.Errorf("include %q: %v (through a symlink)", g, err)
			}
			st, err := os.Stat(m)
			if err != nil {
				return nil, err
			}
			base := filepath.Base(m)
			if !st.IsDir() {
				if st.Mode().IsRegular() {
					if err := add(base, m); err != nil {
						return nil, err
					}
					plain++
				}
				continue
			}
			err = filepath.WalkDir(m, func(p string, de fs.DirEntry, err error) error {
				if err != nil || !de.Type().IsRegular() {
					return err
				}
				rel, err := filepath.Rel(m, p)
				if err != nil {
					return err
				}
				return add(path.Join(base, filepath.ToSlash(rel)), p)
			})
			if err != nil {
				return nil, err
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("every file matched by include is excluded")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 1 && plain == 1 {
		// One plain file goes as it is, as Fission's spec apply and
		// `fn create --code` send it: a runtime gets helloWorld.js, not
		// a zip of it.
		return singleFile(a.Name, names[0], files[names[0]])
	}

	entries := make([]archive.Entry, len(names))
	for i, n := range names {
		entries[i] = archive.Entry{Name: n, Path: files[n]}
	}
	var buf bytes.Buffer
	if err := archive.WriteEntries(&buf, entries); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return &builtArchive{name: a.Name, data: buf.Bytes(), sum: hex.EncodeToString(sum[:]), files: names, upload: a.Name + ".zip"}, nil
}

// singleFile is the archive of one plain file: its bytes. A file that is
// itself a zip is checked as the fetcher will extract it.
func singleFile(name, entry, file string) (*builtArchive, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if archive.HasZipMagic(data) {
		if err := archive.CheckReader(bytes.NewReader(data), int64(len(data)), file, archive.Limits{}); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(data)
	return &builtArchive{name: name, data: data, sum: hex.EncodeToString(sum[:]), files: []string{entry}, upload: entry}, nil
}

// excluded reports whether an exclude glob matches rel, its base name or
// one of its parent directories (so "node_modules" drops that tree).
func excluded(globs []string, rel string) bool {
	for _, g := range globs {
		g = strings.TrimSuffix(filepath.ToSlash(g), "/")
		if ok, _ := path.Match(g, path.Base(rel)); ok {
			return true
		}
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			if ok, _ := path.Match(g, p); ok {
				return true
			}
			if ok, _ := path.Match(g, path.Base(p)); ok {
				return true
			}
		}
	}
	return false
}
