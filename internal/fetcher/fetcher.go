// Package fetcher is Isotope's fetcher: the sidecar that brings archives
// into a directory shared with a builder or a runtime, uploads build
// output to the storage service, and specializes runtimes. It speaks
// Fission's fetcher API (reference/fission.md §3b) on port 8000:
//
//	POST /fetch             FunctionFetchRequest        → 200 or error text
//	POST /upload            ArchiveUploadRequest        → ArchiveUploadResponse
//	POST /specialize        FunctionSpecializeRequest   → 200 or error text
//	GET  /healthz           200
//	GET  /readiness-healthz 200 once ready, else 503
//	GET  /version           build info (JSON)
//
// Beyond Fission: downloads are size-capped and sha256-verified against
// the Package's checksum; zips are extracted with package archive, which
// refuses unsafe entries and zip bombs and renames the result into place
// atomically.
//
// Secrets and ConfigMaps: a request's secretList and configMapList are
// always accepted. Their keys are written as files
// (<SecretDir>/<ns>/<name>/<key>, <ConfigDir>/<ns>/<name>/<key>) when
// Config.Secrets provides their data (the isotope fetcher role reads
// them where it reads Packages: on Kubernetes the core/v1 objects);
// without it the lists are logged and otherwise ignored.
package fetcher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/tracing"
)

// PackageGetter reads Packages; store.Store satisfies it.
type PackageGetter interface {
	Get(ctx context.Context, kind, namespace, name string) (v1.Object, error)
}

// SecretSource provides the data of Secrets and ConfigMaps.
type SecretSource interface {
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
	ConfigMap(ctx context.Context, namespace, name string) (map[string]string, error)
}

// Defaults for Config fields left at zero.
const (
	DefaultMaxArchiveBytes = 256 << 20 // Fission 1.27's storagesvc cap
	DefaultRuntimeURL      = "http://127.0.0.1:8888"
	DefaultSecretDir       = "/secrets"
	DefaultConfigDir       = "/configs"
)

// Config configures a Fetcher.
type Config struct {
	// SharedDir is the directory shared with the builder or runtime
	// (/packages in builder pods, /userfunc in function pods).
	SharedDir string
	// SecretDir and ConfigDir receive secrets and configmaps as files.
	SecretDir, ConfigDir string
	// Packages is where source and deployment fetches read Packages.
	// Without it only url fetches work.
	Packages PackageGetter
	// Secrets, when set, provides the data of the secretList and
	// configMapList entries of a fetch; when nil those are ignored.
	Secrets SecretSource
	// HTTPClient downloads archives and calls the runtime;
	// http.DefaultClient when nil.
	HTTPClient *http.Client
	// StorageToken is sent as a bearer token to the storage service
	// named in a request's storagesvcurl (upload and download).
	StorageToken string
	// RuntimeURL is the runtime a specialize calls (default
	// http://127.0.0.1:8888, Fission's co-located runtime).
	RuntimeURL string
	// MaxArchiveBytes caps a downloaded archive (default 256 MiB).
	MaxArchiveBytes int64
	// MaxExpandedBytes and MaxRatio bound zip extraction (package
	// archive's defaults when zero).
	MaxExpandedBytes int64
	MaxRatio         float64
	// Logger receives one line per operation; discarded when nil.
	Logger *slog.Logger
}

// Fetcher serves fetch, upload and specialize requests for one shared
// directory. It is safe for concurrent use.
type Fetcher struct {
	cfg      Config
	http     *http.Client
	log      *slog.Logger
	notReady atomic.Bool
	locks    keyedMutex
}

// New returns a Fetcher. It creates SharedDir if needed when first used.
func New(cfg Config) *Fetcher {
	if cfg.SecretDir == "" {
		cfg.SecretDir = DefaultSecretDir
	}
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = DefaultConfigDir
	}
	if cfg.RuntimeURL == "" {
		cfg.RuntimeURL = DefaultRuntimeURL
	}
	if cfg.MaxArchiveBytes <= 0 {
		cfg.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	f := &Fetcher{cfg: cfg, http: cfg.HTTPClient, log: cfg.Logger}
	if f.http == nil {
		f.http = http.DefaultClient
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	return f
}

// Error is a failure with the HTTP status the API answers it with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// StatusOf returns the HTTP status for an error returned by the Fetcher:
// 400 for a bad request, 404 for a missing package, 422 for an archive
// that is refused (checksum mismatch, unsafe entries), 500 otherwise.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, archive.ErrRefused) {
		return http.StatusUnprocessableEntity
	}
	var ee *archive.EntryError
	if errors.As(err, &ee) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// sharedPath checks a filename from a request and returns its path under
// the shared directory. Names must be local and canonical: no "..", no
// absolute paths, no separators at either end.
func (f *Fetcher) sharedPath(field, name string) (string, error) {
	if name == "" {
		return "", errorf(http.StatusBadRequest, "%s is empty", field)
	}
	if !filepath.IsLocal(name) || filepath.Clean(name) != name || strings.HasPrefix(name, ".") {
		return "", errorf(http.StatusBadRequest, "%s %q is not a plain name inside the shared directory", field, name)
	}
	return filepath.Join(f.cfg.SharedDir, name), nil
}

// Fetch brings the requested archive into <SharedDir>/<filename>:
// extracted into a directory when it is a zip (unless keeparchive), the
// file as is otherwise. A target that already exists is left alone, as
// in Fission. Then secrets and configmaps are written.
func (f *Fetcher) Fetch(ctx context.Context, req FunctionFetchRequest) error {
	ctx, span := traceFetch(ctx, req)
	err := f.fetch(ctx, req)
	tracing.End(span, err)
	return err
}

func (f *Fetcher) fetch(ctx context.Context, req FunctionFetchRequest) error {
	start := time.Now()
	dst, err := f.sharedPath("filename", req.Filename)
	if err != nil {
		return err
	}
	unlock := f.locks.lock(req.Filename)
	defer unlock()
	if _, err := os.Lstat(dst); err == nil {
		f.log.Info("fetch: target exists, nothing to do", "filename", req.Filename)
		return f.writeSecrets(ctx, req)
	}
	if err := os.MkdirAll(f.cfg.SharedDir, 0o755); err != nil {
		return err
	}

	src, err := f.archiveFor(ctx, req)
	if err != nil {
		return err
	}
	tmp, err := f.download(ctx, req, src)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)

	isZip, err := archive.IsZip(tmp)
	if err != nil {
		return err
	}
	if isZip && !req.KeepArchive {
		err = archive.Extract(tmp, dst, archive.Limits{MaxExpandedBytes: f.cfg.MaxExpandedBytes, MaxRatio: f.cfg.MaxRatio})
	} else {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		return err
	}
	f.log.Info("fetched", "type", req.FetchType.String(), "package", req.Package.Namespace+"/"+req.Package.Name,
		"filename", req.Filename, "extracted", isZip && !req.KeepArchive, "duration", time.Since(start))
	return f.writeSecrets(ctx, req)
}

// source is where a fetch's bytes come from.
type source struct {
	what    string // for messages: "package ns/name source archive"
	literal []byte
	url     string
	sha256  string // expected, lowercase hex; "" means unchecked
}

// archiveFor resolves the request to a literal or a URL.
func (f *Fetcher) archiveFor(ctx context.Context, req FunctionFetchRequest) (source, error) {
	switch req.FetchType {
	case FetchURL:
		if req.URL == "" {
			return source{}, errorf(http.StatusBadRequest, "fetchType 2 (url) needs url")
		}
		return source{what: "url " + req.URL, url: req.URL}, nil
	case FetchSource, FetchDeployment:
	default:
		return source{}, errorf(http.StatusBadRequest, "fetchType %d is not 0 (source), 1 (deployment) or 2 (url)", req.FetchType)
	}
	ns, name := req.Package.Namespace, req.Package.Name
	if ns == "" {
		ns = v1.DefaultNamespace
	}
	if name == "" {
		return source{}, errorf(http.StatusBadRequest, "package.name is empty")
	}
	if f.cfg.Packages == nil {
		return source{}, errorf(http.StatusBadRequest, "this fetcher has no access to Packages; only fetchType 2 (url) works")
	}
	pkg, err := f.getPackage(ctx, ns, name)
	if err != nil {
		return source{}, err
	}
	if rv := req.Package.ResourceVersion; rv != "" && rv != pkg.ResourceVersion {
		f.log.Warn("fetch: package resourceVersion differs from the request", "package", ns+"/"+name,
			"requested", rv, "stored", pkg.ResourceVersion)
	}
	ar := pkg.Spec.Source
	if req.FetchType == FetchDeployment {
		st := pkg.Status.BuildStatus
		if st != v1.BuildStatusSucceeded && st != v1.BuildStatusNone {
			return source{}, errorf(http.StatusConflict, "package %s/%s: cannot fetch its deployment archive: buildstatus is %q, not succeeded or none", ns, name, st)
		}
		ar = pkg.Spec.Deployment
	}
	what := fmt.Sprintf("package %s/%s %s archive", ns, name, req.FetchType)
	if ar.IsEmpty() {
		return source{}, errorf(http.StatusBadRequest, "%s is empty", what)
	}
	s := source{what: what, sha256: strings.ToLower(ar.Checksum.Sum)}
	if len(ar.Literal) > 0 {
		s.literal = ar.Literal
	} else {
		s.url = f.resolveURL(ar.URL, req.StorageSvcURL)
	}
	return s, nil
}

// getPackage reads a Package, retrying a few times on NotFound as
// Fission does (the fetch can race the Package's creation in a cache).
func (f *Fetcher) getPackage(ctx context.Context, ns, name string) (*v1.Package, error) {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		obj, err := f.cfg.Packages.Get(ctx, v1.KindPackage, ns, name)
		if err == nil {
			pkg, ok := obj.(*v1.Package)
			if !ok {
				return nil, fmt.Errorf("package %s/%s: store returned %T", ns, name, obj)
			}
			return pkg, nil
		}
		if !store.IsNotFound(err) {
			return nil, fmt.Errorf("get package %s/%s: %w", ns, name, err)
		}
		if attempt == 5 {
			return nil, &Error{Code: http.StatusNotFound, Err: fmt.Errorf("package %s/%s not found: %w", ns, name, err)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// resolveURL makes a relative archive URL (an id path) absolute against
// the storage service.
func (f *Fetcher) resolveURL(raw, storage string) string {
	u, err := url.Parse(raw)
	if err != nil || u.IsAbs() || storage == "" {
		return raw
	}
	base, err := url.Parse(strings.TrimRight(storage, "/") + "/")
	if err != nil {
		return raw
	}
	return base.ResolveReference(u).String()
}

// download writes the source's bytes to a temp file in the shared
// directory, verifying size and checksum, and returns its path.
func (f *Fetcher) download(ctx context.Context, req FunctionFetchRequest, s source) (string, error) {
	tmp, err := os.CreateTemp(f.cfg.SharedDir, "."+req.Filename+".fetch-")
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		tmp.Close()
		if !ok {
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	if s.literal != nil {
		if _, err := w.Write(s.literal); err != nil {
			return "", err
		}
	} else {
		if err := f.get(ctx, s, req.StorageSvcURL, w); err != nil {
			return "", err
		}
	}
	if s.sha256 != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != s.sha256 {
			return "", &Error{Code: http.StatusUnprocessableEntity,
				Err: fmt.Errorf("%s: checksum mismatch: sha256 of the bytes is %s, the package says %s", s.what, got, s.sha256)}
		}
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	ok = true
	return tmp.Name(), nil
}

func (f *Fetcher) get(ctx context.Context, s source, storage string, w io.Writer) error {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s: bad url: %v", s.what, err)
	}
	if f.cfg.StorageToken != "" && sameHost(s.url, storage) {
		hreq.Header.Set("Authorization", "Bearer "+f.cfg.StorageToken)
	}
	tracing.Inject(ctx, hreq.Header)
	resp, err := f.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("%s: download: %w", s.what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		code := http.StatusBadGateway
		if resp.StatusCode == http.StatusNotFound {
			code = http.StatusNotFound
		}
		return errorf(code, "%s: download %s: %s: %s", s.what, s.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	max := f.cfg.MaxArchiveBytes
	if resp.ContentLength > max {
		return errorf(http.StatusUnprocessableEntity, "%s: %d bytes, more than the limit of %d", s.what, resp.ContentLength, max)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("%s: download: %w", s.what, err)
	}
	if n > max {
		return errorf(http.StatusUnprocessableEntity, "%s: more than the limit of %d bytes", s.what, max)
	}
	return nil
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && ua.Host != "" && ua.Scheme == ub.Scheme && ua.Host == ub.Host
}

// writeSecrets writes the request's secrets and configmaps as files when
// a SecretSource is configured.
func (f *Fetcher) writeSecrets(ctx context.Context, req FunctionFetchRequest) error {
	if len(req.Secrets) == 0 && len(req.ConfigMaps) == 0 {
		return nil
	}
	if f.cfg.Secrets == nil {
		f.log.Info("fetch: no secret source configured; secretList and configMapList not written",
			"secrets", len(req.Secrets), "configmaps", len(req.ConfigMaps))
		return nil
	}
	for i, s := range req.Secrets {
		data, err := f.cfg.Secrets.Secret(ctx, s.Namespace, s.Name)
		if err != nil {
			return configError(err, "spec.secrets[%d]: secret %s/%s named by the function: %w", i, s.Namespace, s.Name, err)
		}
		if err := writeKeys(f.cfg.SecretDir, "secret", s.Namespace, s.Name, data); err != nil {
			return err
		}
	}
	for i, c := range req.ConfigMaps {
		data, err := f.cfg.Secrets.ConfigMap(ctx, c.Namespace, c.Name)
		if err != nil {
			return configError(err, "spec.configmaps[%d]: configmap %s/%s named by the function: %w", i, c.Namespace, c.Name, err)
		}
		b := make(map[string][]byte, len(data))
		for k, v := range data {
			b[k] = []byte(v)
		}
		if err := writeKeys(f.cfg.ConfigDir, "configmap", c.Namespace, c.Name, b); err != nil {
			return err
		}
	}
	return nil
}

// configError is a secret or config map that could not be read: 404
// when it does not exist (the function cannot start until it does), the
// error as it is otherwise.
func configError(err error, format string, args ...any) error {
	e := fmt.Errorf(format, args...)
	if store.IsNotFound(err) {
		return &Error{Code: http.StatusNotFound, Err: e}
	}
	return e
}

// writeKeys writes one file per key under dir/ns/name, as Fission does
// (mode 0750 for directories, 0640 for files).
func writeKeys(dir, what, ns, name string, data map[string][]byte) error {
	for _, part := range []string{ns, name} {
		if part == "" || !filepath.IsLocal(part) || strings.ContainsRune(part, '/') {
			return errorf(http.StatusBadRequest, "%s %s/%s: bad namespace or name", what, ns, name)
		}
	}
	d := filepath.Join(dir, ns, name)
	if err := os.MkdirAll(d, 0o750); err != nil {
		return err
	}
	for k, v := range data {
		if k == "" || !filepath.IsLocal(k) || strings.ContainsRune(k, '/') {
			return errorf(http.StatusBadRequest, "%s %s/%s: key %q is not a valid file name", what, ns, name, k)
		}
		if err := writeAtomic(filepath.Join(d, k), v, 0o640); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(p string, data []byte, perm fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// keyedMutex serializes work per key (one fetch per target filename).
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
