package storagesvc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/tracing"
)

// DefaultMaxSize is the default cap on one archive: 256 MiB, the limit
// Fission 1.27 enforces on storagesvc bodies.
const DefaultMaxSize = 256 << 20

// Header names the server sets besides the standard ones.
const (
	// HeaderFileSize is Fission's mandatory upload header: the archive's
	// size in bytes.
	HeaderFileSize = "X-File-Size"
	// HeaderChecksum carries the archive's lowercase hex sha256 on upload
	// answers, GET and HEAD.
	HeaderChecksum = "X-Checksum-Sha256"
	// HeaderStorageType is Fission's HEAD header: "local" or "s3".
	HeaderStorageType = "X-FISSION-STORAGETYPE"
	// FormField is the multipart field holding the archive.
	FormField = "uploadfile"
	// ArchivePath is where the archive API lives; mount the Server there
	// (and at /healthz) on any mux.
	ArchivePath = "/v1/archive"
)

// Options configure a Server.
type Options struct {
	// MaxSize caps one archive in bytes (default DefaultMaxSize); larger
	// uploads get 413 and nothing is kept.
	MaxSize int64
	// Token, when set, is required as "Authorization: Bearer <token>"
	// on /v1/archive (not on /healthz).
	Token string
	// Logger receives one line per upload and per failure (default
	// slog.Default()).
	Logger *slog.Logger
}

// UploadResponse is the JSON answer to an upload: Fission's {"id"} plus
// the archive's checksum and size.
type UploadResponse struct {
	ID       string      `json:"id"`
	Checksum v1.Checksum `json:"checksum"`
	Size     int64       `json:"size"`
}

// Server serves Fission's storage service API over a Backend. It is an
// http.Handler for ArchivePath and /healthz.
type Server struct {
	backend Backend
	opts    Options
	log     *slog.Logger
}

// NewServer returns a Server storing archives in backend.
func NewServer(backend Backend, opts Options) *Server {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{backend: backend, opts: opts, log: log}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		w.WriteHeader(http.StatusOK)
		return
	case ArchivePath:
	default:
		http.NotFound(w, r)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="isotope"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
		return
	}
	id := r.URL.Query().Get("id")
	switch {
	case r.Method == http.MethodPost:
		if tracing.Enabled() {
			tracing.Serve(w, r, "storagesvc.upload", []attribute.KeyValue{
				tracing.KeyHTTPRoute.String(ArchivePath), tracing.KeyRequestBodyLen.Int64(r.ContentLength),
			}, s.upload)
			return
		}
		s.upload(w, r)
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && id != "":
		if tracing.Enabled() {
			tracing.Serve(w, r, "storagesvc.download", []attribute.KeyValue{
				tracing.KeyHTTPRoute.String(ArchivePath), tracing.KeyArchiveID.String(id),
			}, func(w http.ResponseWriter, r *http.Request) { s.download(w, r, id) })
			return
		}
		s.download(w, r, id)
	case r.Method == http.MethodGet:
		s.list(w, r)
	case r.Method == http.MethodDelete && id != "":
		s.delete(w, r, id)
	case r.Method == http.MethodDelete || r.Method == http.MethodHead:
		http.Error(w, "id: query parameter is required", http.StatusBadRequest)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		http.Error(w, r.Method+" is not allowed on "+ArchivePath, http.StatusMethodNotAllowed)
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.Token)) == 1
}

// upload streams the multipart field "uploadfile" into the backend. The
// body is never parsed into memory or spooled: the part is read as a
// stream (formReader) and the backend hashes it while writing.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	declared, err := strconv.ParseInt(r.Header.Get(HeaderFileSize), 10, 64)
	if err != nil || declared < 0 {
		http.Error(w, HeaderFileSize+": header is required and must be the archive's size in bytes", http.StatusBadRequest)
		return
	}
	if declared > s.opts.MaxSize {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("%s: archive of %d bytes is over the %d-byte cap", HeaderFileSize, declared, s.opts.MaxSize), http.StatusRequestEntityTooLarge)
		return
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "multipart/form-data" || params["boundary"] == "" {
		http.Error(w, "Content-Type: must be multipart/form-data with a boundary", http.StatusBadRequest)
		return
	}
	part, err := newFormReader(r.Body, params["boundary"]).field(FormField)
	if err != nil {
		code, msg := http.StatusBadRequest, err.Error()
		if errors.Is(err, errNoField) {
			msg = FormField + ": multipart field is missing"
		}
		http.Error(w, msg, code)
		return
	}
	body := &sizeCheckReader{r: part, max: s.opts.MaxSize, want: declared}
	info, err := s.backend.Put(r.Context(), body)
	if err != nil {
		code, msg := http.StatusInternalServerError, err.Error()
		switch {
		case errors.Is(err, ErrTooLarge):
			code = http.StatusRequestEntityTooLarge
			w.Header().Set("Connection", "close")
		case errors.Is(err, ErrNoSpace):
			code = http.StatusInsufficientStorage
		case errors.Is(err, ErrSizeMismatch):
			code = http.StatusBadRequest
		case errors.Is(err, errMultipart) && !errors.Is(err, io.ErrUnexpectedEOF):
			code = http.StatusBadRequest
		case r.Context().Err() != nil || errors.Is(err, io.ErrUnexpectedEOF):
			code, msg = http.StatusBadRequest, "upload interrupted: "+err.Error()
		}
		s.log.Warn("archive upload refused", "status", code, "err", err, "declaredSize", declared)
		http.Error(w, msg, code)
		return
	}
	if err := s.checkZip(r.Context(), info); err != nil {
		// Refused now, not when a fetcher first extracts it for a request.
		if derr := s.backend.Delete(context.WithoutCancel(r.Context()), info.ID); derr != nil {
			s.log.Error("deleting a refused archive", "id", info.ID, "err", derr)
		}
		code := http.StatusBadRequest
		var ee *archive.EntryError
		if !errors.As(err, &ee) {
			code = http.StatusInternalServerError
		}
		s.log.Warn("archive upload refused", "status", code, "err", err)
		http.Error(w, err.Error(), code)
		return
	}
	s.log.Info("archive stored", "id", info.ID, "size", info.Size, "sha256", info.SHA256, "duration", time.Since(start))
	w.Header().Set(HeaderChecksum, info.SHA256)
	writeJSON(w, http.StatusOK, UploadResponse{
		ID:       info.ID,
		Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: info.SHA256},
		Size:     info.Size,
	})
}

// checkZip runs the extractor's checks (package archive) on a stored
// archive that is a zip: one that the fetcher would refuse to extract
// (zip slip, a symlink out, a zip bomb, a corrupt entry) is an
// *archive.EntryError naming the entry. Other archives (a single .wasm,
// a tarball) pass: nothing extracts them.
func (s *Server) checkZip(ctx context.Context, info Info) error {
	rc, _, err := s.backend.Open(ctx, info.ID)
	if err != nil {
		return err
	}
	defer rc.Close()
	head := make([]byte, 4)
	if n, _ := io.ReadFull(rc, head); !archive.HasZipMagic(head[:n]) {
		return nil
	}
	ra, ok := rc.(io.ReaderAt)
	if !ok {
		return nil // a backend without random access: checked at extraction
	}
	if err := archive.CheckReader(ra, info.Size, "upload", archive.Limits{}); err != nil {
		return fmt.Errorf("the archive is a zip that would not extract safely, so it was not stored: %w", err)
	}
	return nil
}

// sizeCheckReader passes bytes through while counting them: past max it
// fails with ErrTooLarge, and it ends with ErrSizeMismatch instead of EOF
// when the count differs from X-File-Size, so the backend keeps nothing.
type sizeCheckReader struct {
	r         io.Reader
	max, want int64
	n         int64
}

func (c *sizeCheckReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	// want is never over max (a larger declared size is refused before
	// reading), so a body over the cap is first of all over X-File-Size.
	switch {
	case c.n > c.want:
		return 0, fmt.Errorf("%w: got more than %d bytes", ErrSizeMismatch, c.want)
	case c.n > c.max:
		return 0, fmt.Errorf("%w: more than the %d-byte cap", ErrTooLarge, c.max)
	case err == io.EOF && c.n != c.want:
		return n, fmt.Errorf("%w: got %d bytes, %s says %d", ErrSizeMismatch, c.n, HeaderFileSize, c.want)
	}
	return n, err
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, id string) {
	rc, info, err := s.backend.Open(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("ETag", `"`+info.SHA256+`"`)
	h.Set(HeaderChecksum, info.SHA256)
	h.Set(HeaderStorageType, s.backend.Type())
	h.Set("Content-Type", "application/octet-stream")
	// ServeContent answers Range, If-Range, If-None-Match and HEAD, and
	// hands an *os.File to sendfile.
	http.ServeContent(w, r, "", info.ModTime, rc)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.backend.Delete(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("archive deleted", "id", id)
	w.WriteHeader(http.StatusOK)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	infos, err := s.backend.List(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	ids := make([]string, 0, len(infos))
	for _, in := range infos {
		ids = append(ids, in.ID)
	}
	slices.Sort(ids)
	writeJSON(w, http.StatusOK, ids)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, ErrInvalidID):
		http.Error(w, "id: "+err.Error(), http.StatusBadRequest)
	default:
		s.log.Error("archive request failed", "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
