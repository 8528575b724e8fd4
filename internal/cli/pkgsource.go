package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
)

// archiveRequest is what one of --src, --deploy or --code named.
type archiveRequest struct {
	flag     string   // the flag, for errors ("src")
	paths    []string // files, directories, globs or one http(s) URL
	raw      bool     // --code: one file, kept as is (not zipped)
	checksum string   // --srcchecksum / --deploychecksum for a URL
	insecure bool     // --insecure: no checksum for a URL
}

// archiveFlags are the flags that give a package's code, on fn and pkg
// create and update: --code, --src, --deploy and the checks of URLs.
type archiveFlags struct {
	code                        string
	src, deploy                 []string
	srcChecksum, deployChecksum string
	insecure                    bool
}

func (o *archiveFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.code, "code", "", "one source file, used as the deploy archive as is")
	f.StringArrayVar(&o.src, "src", nil, "source archive: a .zip, files, a directory or a glob, zipped (repeatable; alias --sourcearchive)")
	f.StringArrayVar(&o.deploy, "deploy", nil, "deploy archive: a .zip, files, a directory or a glob, zipped (repeatable; alias --deployarchive)")
	f.StringVar(&o.srcChecksum, "srcchecksum", "", "sha256 of a --src given as a URL")
	f.StringVar(&o.deployChecksum, "deploychecksum", "", "sha256 of a --deploy given as a URL")
	f.BoolVar(&o.insecure, "insecure", false, "take a URL archive without a checksum")
}

// given reports whether any of --code, --src or --deploy names code.
func (o *archiveFlags) given() bool {
	return o.code != "" || len(o.src) > 0 || len(o.deploy) > 0
}

// archives builds the source and deploy archives the flags name. They are
// empty when the flags name none. With --spec, a local file or directory
// becomes an ArchiveUploadSpec document (returned in docs) that `spec
// apply` zips, named after pkgName.
func (o *archiveFlags) archives(ctx context.Context, g *Globals, cmd *cobra.Command, sf *specFlags, pkgName string) (src, deploy v1.Archive, docs []any, err error) {
	mk := func(req archiveRequest, suffix string) (v1.Archive, error) {
		a, doc, err := sf.archive(ctx, g, cmd, req, pkgName+"-"+suffix)
		if doc != nil {
			docs = append(docs, doc)
		}
		return a, err
	}
	if len(o.src) > 0 {
		src, err = mk(archiveRequest{flag: "src", paths: o.src, checksum: o.srcChecksum, insecure: o.insecure}, "src")
		if err != nil {
			return
		}
	}
	switch {
	case len(o.deploy) > 0 && o.code != "":
		err = fmt.Errorf("--code and --deploy both name a deploy archive; give one")
	case len(o.deploy) > 0:
		deploy, err = mk(archiveRequest{flag: "deploy", paths: o.deploy, checksum: o.deployChecksum, insecure: o.insecure}, "deploy")
	case o.code != "":
		deploy, err = mk(archiveRequest{flag: "code", paths: []string{o.code}, raw: true, checksum: o.deployChecksum, insecure: o.insecure}, "deploy")
	}
	return
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// makeArchive turns the user's files into a Package archive: a literal
// when it is at most v1.ArchiveLiteralSizeLimit, else an upload to the
// storage service (g.storageURL). A single .zip is used as is; anything else
// is zipped deterministically (sorted entries, fixed times), so the same
// files always give the same checksum.
func makeArchive(ctx context.Context, g *Globals, req archiveRequest, progressOut io.Writer) (v1.Archive, error) {
	if len(req.paths) == 1 && isURL(req.paths[0]) {
		return urlArchive(ctx, g, req)
	}
	f, size, name, err := buildArchiveFile(req)
	if err != nil {
		return v1.Archive{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if size <= v1.ArchiveLiteralSizeLimit {
		b, err := io.ReadAll(f)
		if err != nil {
			return v1.Archive{}, err
		}
		sum := sha256.Sum256(b)
		return v1.Archive{
			Type:     v1.ArchiveTypeLiteral,
			Literal:  b,
			Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])},
		}, nil
	}
	var progress io.Writer
	if fd, ok := progressOut.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(fd.Fd())) {
		progress = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(progressOut),
			progressbar.OptionSetDescription("uploading "+name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish())
	}
	res, err := g.storageClient().Upload(ctx, f, size, name, progress)
	if err != nil {
		return v1.Archive{}, fmt.Errorf("--%s: %w", req.flag, err)
	}
	return v1.Archive{Type: v1.ArchiveTypeURL, URL: res.URL, Checksum: res.Checksum}, nil
}

// urlArchive refers to an archive already at a URL. Without a checksum
// flag it downloads the archive once to compute one, unless --insecure.
func urlArchive(ctx context.Context, g *Globals, req archiveRequest) (v1.Archive, error) {
	a := v1.Archive{Type: v1.ArchiveTypeURL, URL: req.paths[0]}
	switch {
	case req.checksum != "":
		sum := strings.ToLower(req.checksum)
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return a, fmt.Errorf("--%schecksum: %q is not a hex sha256", req.flag, req.checksum)
		}
		a.Checksum = v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: sum}
	case req.insecure:
	default:
		h := sha256.New()
		if err := g.storageClient().Download(ctx, a.URL, h); err != nil {
			return a, fmt.Errorf("--%s: computing the checksum of %s (give --%schecksum or --insecure to skip): %w", req.flag, a.URL, req.flag, err)
		}
		a.Checksum = v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(h.Sum(nil))}
	}
	return a, nil
}

// buildArchiveFile writes the archive to a temporary file and returns it
// rewound, with its size and a display name.
func buildArchiveFile(req archiveRequest) (*os.File, int64, string, error) {
	paths, err := expandPaths(req.flag, req.paths)
	if err != nil {
		return nil, 0, "", err
	}
	tmp, err := os.CreateTemp("", "isotope-archive-*.zip")
	if err != nil {
		return nil, 0, "", err
	}
	fail := func(err error) (*os.File, int64, string, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, 0, "", err
	}
	name := filepath.Base(paths[0])
	single := len(paths) == 1
	st, err := os.Stat(paths[0])
	if err != nil {
		return fail(fmt.Errorf("--%s: %w", req.flag, err))
	}
	switch {
	case req.raw:
		if !single || st.IsDir() {
			return fail(fmt.Errorf("--%s: takes exactly one file (use --src or --deploy for directories)", req.flag))
		}
		if err := checkZipFile(req.flag, paths[0]); err != nil {
			return fail(err)
		}
		err = copyFile(tmp, paths[0])
	case single && !st.IsDir() && strings.EqualFold(filepath.Ext(paths[0]), ".zip"):
		if err := checkZipFile(req.flag, paths[0]); err != nil {
			return fail(err)
		}
		err = copyFile(tmp, paths[0])
	default:
		if !single || !st.IsDir() {
			name = strings.TrimSuffix(name, filepath.Ext(name)) + ".zip"
		} else {
			name += ".zip"
		}
		err = zipPaths(tmp, paths)
	}
	if err != nil {
		return fail(fmt.Errorf("--%s: %w", req.flag, err))
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	return tmp, size, name, nil
}

// checkZipFile refuses, before anything is uploaded or stored, a zip that
// the fetcher would refuse to extract (package archive: zip slip, links
// out, zip bombs, corrupt entries), naming the flag, the file and the
// entry. Files that are not zips pass.
func checkZipFile(flag, path string) error {
	isZip, err := archive.IsZip(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	if !isZip {
		return nil
	}
	if err := archive.Check(path, archive.Limits{}); err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	return nil
}

// expandPaths expands globs and checks that every path exists.
func expandPaths(flag string, in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		if strings.ContainsAny(p, "*?[") {
			m, err := filepath.Glob(p)
			if err != nil {
				return nil, fmt.Errorf("--%s: bad pattern %q: %w", flag, p, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("--%s: %q matches no file", flag, p)
			}
			out = append(out, m...)
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: no file given", flag)
	}
	return out, nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// zipPaths zips files and directories: a file goes in under its base
// name, a directory's contents go in relative to the directory (so
// `--src ./myfn` puts myfn/go.mod at the archive's root). Symbolic links
// are followed to regular files only; archive.WriteEntries makes the
// archive, deterministic as every archive Isotope writes.
func zipPaths(w io.Writer, paths []string) error {
	var entries []archive.Entry
	seen := map[string]string{}
	add := func(name, path string) error {
		name = filepath.ToSlash(name)
		if prev, ok := seen[name]; ok && prev != path {
			return fmt.Errorf("%s and %s would both be %q in the archive", prev, path, name)
		}
		seen[name] = path
		entries = append(entries, archive.Entry{Name: name, Path: path})
		return nil
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			if err := add(filepath.Base(p), p); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			info, err := os.Stat(path) // follows links
			if err != nil || !info.Mode().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(p, path)
			if err != nil {
				return err
			}
			return add(rel, path)
		})
		if err != nil {
			return err
		}
	}
	return archive.WriteEntries(w, entries)
}

// readArchive returns an archive's bytes from its literal or by
// downloading its URL, checking its sha256 when it has one.
func readArchive(ctx context.Context, g *Globals, a v1.Archive, w io.Writer) error {
	h := sha256.New()
	switch {
	case len(a.Literal) > 0:
		h.Write(a.Literal)
		if err := verifySum(a, h.Sum(nil)); err != nil {
			return err
		}
		_, err := w.Write(a.Literal)
		return err
	case a.URL != "":
		// Buffer to a temp file so nothing unverified reaches w.
		tmp, err := os.CreateTemp("", "isotope-download-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		if err := g.storageClient().Download(ctx, a.URL, io.MultiWriter(tmp, h)); err != nil {
			return fmt.Errorf("download %s: %w", a.URL, err)
		}
		if err := verifySum(a, h.Sum(nil)); err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err = io.Copy(w, tmp)
		return err
	}
	return fmt.Errorf("the archive is empty")
}

func verifySum(a v1.Archive, sum []byte) error {
	if a.Checksum.Sum == "" {
		return nil
	}
	got := hex.EncodeToString(sum)
	if !strings.EqualFold(got, a.Checksum.Sum) {
		return fmt.Errorf("archive checksum mismatch: got sha256 %s, the package says %s", got, a.Checksum.Sum)
	}
	return nil
}

// writeOutput writes an archive to the file named by -o, or to stdout.
// The file appears only once every byte is there and verified.
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		return write(stdout) // readArchive verifies before writing
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
