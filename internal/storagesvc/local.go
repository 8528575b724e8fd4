package storagesvc

import (
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
	"strings"
	"syscall"

	"github.com/google/uuid"
)

// DefaultIDPrefix is the path-like prefix of local archive ids, in the
// shape of Fission's "/fission/fission-functions/<uuid>".
const DefaultIDPrefix = "/isotope/archives"

// LocalOptions configure a LocalBackend.
type LocalOptions struct {
	// IDPrefix is prepended to each archive's uuid to form its id
	// (default DefaultIDPrefix). Setting it to "/fission/fission-functions"
	// and pointing the backend at a Fission volume's fission-functions
	// directory serves the archives Fission stored there, with their ids.
	IDPrefix string
}

// LocalBackend keeps archives as files in one directory:
//
//	<uuid>          the archive's bytes
//	<uuid>.sha256   its lowercase hex sha256, so HEAD and ETag never rehash
//	.tmp-*          uploads in progress; never listed, swept at startup
//	.lock           flock held while a backend has the directory open
//
// An archive exists exactly when its <uuid> file exists: the sidecar is
// written and renamed first, then the fsynced data file is renamed into
// place, so a crash at any point leaves either a whole archive or only
// temp files and a stray sidecar, both removed by the next startup sweep.
type LocalBackend struct {
	dir    string
	prefix string
	lock   *os.File

	// createTemp opens a new temp file; tests replace it to simulate a
	// full disk.
	createTemp func(dir, pattern string) (tempFile, error)
}

// tempFile is what Put needs of the file it writes; *os.File has it.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

const (
	tempPrefix    = ".tmp-"
	sidecarSuffix = ".sha256"
	lockName      = ".lock"
)

// NewLocalBackend opens (creating it if needed) the archive directory dir,
// takes an exclusive lock on it so that two servers never share it (the
// startup sweep would delete the other's uploads in progress), and
// deletes what a killed server left behind.
func NewLocalBackend(dir string, opts LocalOptions) (*LocalBackend, error) {
	if dir == "" {
		return nil, errors.New("archive directory: must not be empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("archive directory %s: %w", abs, err)
	}
	prefix := opts.IDPrefix
	if prefix == "" {
		prefix = DefaultIDPrefix
	}
	if !strings.HasPrefix(prefix, "/") || path.Clean(prefix) != prefix || prefix == "/" {
		return nil, fmt.Errorf("archive id prefix %q: must be a clean absolute path like %q", prefix, DefaultIDPrefix)
	}
	lock, err := os.OpenFile(filepath.Join(abs, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("archive directory %s: %w", abs, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("archive directory %s is in use by another storage service", abs)
		}
		return nil, fmt.Errorf("archive directory %s: lock: %w", abs, err)
	}
	b := &LocalBackend{dir: abs, prefix: prefix, lock: lock, createTemp: createOSTemp}
	if err := b.sweep(); err != nil {
		lock.Close()
		return nil, err
	}
	return b, nil
}

func createOSTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

// Close releases the directory lock.
func (b *LocalBackend) Close() error { return b.lock.Close() }

// Dir is the directory holding the archives.
func (b *LocalBackend) Dir() string { return b.dir }

// Type implements Backend.
func (b *LocalBackend) Type() string { return "local" }

// sweep deletes temp files and sidecars whose archive is gone.
func (b *LocalBackend) sweep() error {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return fmt.Errorf("archive directory %s: %w", b.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix):
		case strings.HasSuffix(name, sidecarSuffix):
			if _, err := os.Lstat(filepath.Join(b.dir, strings.TrimSuffix(name, sidecarSuffix))); !errors.Is(err, fs.ErrNotExist) {
				continue
			}
		default:
			continue
		}
		if err := os.Remove(filepath.Join(b.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive directory %s: removing leftover %s: %w", b.dir, name, err)
		}
	}
	return nil
}

// writebackChunk is how much an upload writes before asking the kernel
// to start putting it on disk (see startWriteback).
const writebackChunk = 8 << 20

// Put implements Backend.
func (b *LocalBackend) Put(ctx context.Context, r io.Reader) (info Info, err error) {
	name := uuid.NewString()
	f, err := b.createTemp(b.dir, tempPrefix+name+"-")
	if err != nil {
		return Info{}, noSpace(fmt.Errorf("create temp file: %w", err))
	}
	tmp := f.Name()
	var sidecar string
	committed := false
	defer func() {
		if committed {
			return
		}
		f.Close()
		os.Remove(tmp)
		if sidecar != "" {
			os.Remove(sidecar)
		}
	}()

	// Read, hash and write overlap (hashCopy); as the file grows the
	// kernel is asked to start writing it out, so the fsync below only
	// waits for the tail.
	h := sha256.New()
	var flushed int64
	size, err := hashCopy(ctx, fileWriter{tempWriter{f}}, r, h, func(written int64) {
		if written-flushed >= writebackChunk {
			startWriteback(f, flushed, written-flushed)
			flushed = written
		}
	})
	if err != nil {
		return Info{}, err
	}
	if err := f.Sync(); err != nil {
		return Info{}, noSpace(fmt.Errorf("fsync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		return Info{}, noSpace(fmt.Errorf("close %s: %w", tmp, err))
	}
	sum := hex.EncodeToString(h.Sum(nil))

	final := filepath.Join(b.dir, name)
	sidecar = final + sidecarSuffix
	if err := writeFileAtomic(b.dir, sidecar, []byte(sum+"\n")); err != nil {
		sidecar = "" // writeFileAtomic cleaned up after itself
		return Info{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return Info{}, fmt.Errorf("rename %s: %w", tmp, err)
	}
	committed = true
	if err := syncDir(b.dir); err != nil {
		// The archive is complete; only its durability across a power
		// loss is in doubt. Take it back rather than promise it.
		os.Remove(final)
		os.Remove(sidecar)
		return Info{}, noSpace(fmt.Errorf("fsync %s: %w", b.dir, err))
	}
	st, err := os.Stat(final)
	if err != nil {
		return Info{}, err
	}
	return Info{ID: b.prefix + "/" + name, Size: size, SHA256: sum, ModTime: st.ModTime()}, nil
}

// tempWriter names the temp file in write errors and makes a full disk
// match ErrNoSpace.
type tempWriter struct{ f tempFile }

func (w tempWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = noSpace(fmt.Errorf("write %s: %w", w.f.Name(), err))
	}
	return n, err
}

// writeFileAtomic writes data to a temp file in dir, fsyncs it and
// renames it to dst; on error nothing is left.
func writeFileAtomic(dir, dst string, data []byte) error {
	f, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return noSpace(fmt.Errorf("create temp file: %w", err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return noSpace(fmt.Errorf("write %s: %w", dst, err))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// path maps an id to its file, refusing anything this backend could not
// have issued (so an id can never name a file outside the directory).
func (b *LocalBackend) path(id string) (string, error) {
	name, ok := strings.CutPrefix(id, b.prefix+"/")
	if !ok {
		return "", fmt.Errorf("%w %q: want %s/<uuid>", ErrInvalidID, id, b.prefix)
	}
	u, err := uuid.Parse(name)
	if err != nil || u.String() != name {
		return "", fmt.Errorf("%w %q: want %s/<uuid>", ErrInvalidID, id, b.prefix)
	}
	return filepath.Join(b.dir, name), nil
}

// Stat implements Backend.
func (b *LocalBackend) Stat(ctx context.Context, id string) (Info, error) {
	p, err := b.path(id)
	if err != nil {
		return Info{}, err
	}
	st, err := os.Stat(p)
	if err != nil {
		return Info{}, notFound(id, err)
	}
	return b.info(id, p, st)
}

// info completes an Info from the file's stat and its sidecar. A missing
// or damaged sidecar (only possible if someone edited the directory) is
// rebuilt by hashing the file once.
func (b *LocalBackend) info(id, p string, st fs.FileInfo) (Info, error) {
	info := Info{ID: id, Size: st.Size(), ModTime: st.ModTime()}
	data, err := os.ReadFile(p + sidecarSuffix)
	if sum := strings.TrimSpace(string(data)); err == nil && isHexSHA256(sum) {
		info.SHA256 = sum
		return info, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return Info{}, notFound(id, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Info{}, fmt.Errorf("hash %s: %w", p, err)
	}
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	_ = writeFileAtomic(b.dir, p+sidecarSuffix, []byte(info.SHA256+"\n"))
	return info, nil
}

func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func notFound(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return err
}

// Open implements Backend. The reader is the *os.File itself, so the
// HTTP server can hand it to sendfile.
func (b *LocalBackend) Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error) {
	p, err := b.path(id)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, Info{}, notFound(id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	info, err := b.info(id, p, st)
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

// Delete implements Backend. The data file goes first, so the archive
// disappears atomically; the sidecar follows.
func (b *LocalBackend) Delete(ctx context.Context, id string) error {
	p, err := b.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return notFound(id, err)
	}
	os.Remove(p + sidecarSuffix)
	return syncDir(b.dir)
}

// List implements Backend.
func (b *LocalBackend) List(ctx context.Context) ([]Info, error) {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	out := []Info{}
	for _, e := range entries {
		name := e.Name()
		if u, err := uuid.Parse(name); err != nil || u.String() != name || !e.Type().IsRegular() {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue // deleted since ReadDir
		}
		info, err := b.info(b.prefix+"/"+name, filepath.Join(b.dir, name), st)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}
