package storagesvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/tracing"
)

// Client talks to a storage service (Isotope's or Fission's) over
// /v1/archive. The zero value is not usable; call NewClient.
type Client struct {
	base  string
	token string
	// HTTP is the client used for every request; replace it to change
	// transports or timeouts. It has no overall timeout by default, since
	// archives can be large: bound calls with their context.
	HTTP *http.Client
}

// NewClient returns a client for the storage service at baseURL (e.g.
// "http://127.0.0.1:8889", the API listener that mounts /v1/archive, or
// "http://storagesvc.fission"). A non-empty token is sent as a bearer
// token, only to baseURL's own host.
func NewClient(baseURL, token string) *Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// Archives are read in copyBufSize chunks; a read that size or at
	// least this buffer's size goes straight from the socket into the
	// chunk, so the buffer is only for headers and chunk tails.
	t.WriteBufferSize = 64 << 10
	t.ReadBufferSize = 64 << 10
	// Signed for Fission's storagesvc channel when ISOTOPE_INTERNAL_AUTH_SECRET
	// (or FISSION_INTERNAL_AUTH_SECRET) is set; unchanged otherwise.
	rt := hmac.Transport(hmac.SecretsFromEnv(), hmac.ServiceStoragesvc, t)
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, HTTP: &http.Client{Transport: rt}}
}

// UploadResult is what Upload returns: the id, the download URL to store
// in a Package's spec, and the archive's checksum.
type UploadResult struct {
	ID       string      `json:"id"`
	URL      string      `json:"url"`
	Checksum v1.Checksum `json:"checksum"`
	Size     int64       `json:"size"`
}

// URLFor returns the download URL of an archive id, as Fission builds it
// and stores it in Package specs: <base>/v1/archive?id=<escaped id>.
func (c *Client) URLFor(id string) string {
	return c.base + ArchivePath + "?id=" + url.QueryEscape(id)
}

// StatusError is a non-success answer from the storage service. It
// matches ErrNotFound (404), ErrTooLarge (413) and ErrNoSpace (507)
// under errors.Is.
type StatusError struct {
	Method, URL string
	Code        int
	Message     string // first line of the answer's body
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d: %s", e.Method, e.URL, e.Code, msg)
}

func (e *StatusError) Unwrap() error {
	switch e.Code {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusInsufficientStorage:
		return ErrNoSpace
	}
	return nil
}

func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	return &StatusError{Method: resp.Request.Method, URL: resp.Request.URL.String(), Code: resp.StatusCode, Message: msg}
}

// Upload streams size bytes from r to the storage service as Fission's
// multipart "uploadfile" field named after name, with X-File-Size and an
// exact Content-Length. Nothing is buffered beyond a copy chunk. When
// progress is not nil every byte sent is also written to it (a
// progressbar.ProgressBar is such a writer). The sha256 is computed on
// the way and must match the server's, if the server reports one.
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, name string, progress io.Writer) (UploadResult, error) {
	if size < 0 {
		return UploadResult{}, fmt.Errorf("upload %s: size must be known (got %d)", name, size)
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if _, err := mw.CreateFormFile(FormField, filepath.Base(name)); err != nil {
		return UploadResult{}, err
	}
	headLen := head.Len()
	mw.Close() // appends the closing boundary after the part's header
	preamble, trailer := head.Bytes()[:headLen], head.Bytes()[headLen:]

	src := &exactReader{r: r, left: size}
	body := sendBody(ctx, preamble, src, trailer, progress)
	// However the request ends, the sending goroutine is stopped and
	// waited for: it never outlives Upload.
	defer body.finish()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+ArchivePath, body)
	if err != nil {
		return UploadResult{}, err
	}
	req.ContentLength = int64(len(preamble)) + size + int64(len(trailer))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set(HeaderFileSize, strconv.FormatInt(size, 10))
	resp, err := c.do(req)
	if err != nil {
		// A failure reading r (say, a file shorter than size) is the
		// cause; the transport only saw the pipe break.
		if body.finish(); src.err != nil {
			err = src.err
		}
		return UploadResult{}, fmt.Errorf("upload %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return UploadResult{}, fmt.Errorf("upload %s: %w", name, statusError(resp))
	}
	var ur UploadResponse
	if err := json.NewDecoder(resp.Body).Decode(&ur); err != nil || ur.ID == "" {
		return UploadResult{}, fmt.Errorf("upload %s: the storage service's answer has no id (%v)", name, err)
	}
	if err := body.finish(); err != nil {
		// The server answered before taking all of the archive: what
		// it stored is not what was meant to be sent.
		return UploadResult{}, fmt.Errorf("upload %s: the storage service answered before receiving the whole archive: %w", name, err)
	}
	sum := hex.EncodeToString(body.h.Sum(nil))
	if ur.Checksum.Sum != "" && ur.Checksum.Sum != sum {
		return UploadResult{}, fmt.Errorf("upload %s: checksum mismatch: sent sha256 %s, server stored %s", name, sum, ur.Checksum.Sum)
	}
	return UploadResult{
		ID:       ur.ID,
		URL:      c.URLFor(ur.ID),
		Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: sum},
		Size:     size,
	}, nil
}

// uploadBody is an upload's request body, fed by a goroutine that
// sends the multipart preamble, then the archive's bytes, read, hashed
// and written in overlapping stages (hashCopy), then the trailer.
// Hashing thus costs no extra pass over the data and, on a machine with
// a core to spare, no extra time.
//
// It is a pipe that hands over whole chunks: the transport's small reads
// copy out of the current chunk, and the two goroutines meet once per
// chunk rather than once per read as with io.Pipe.
type uploadBody struct {
	h      hash.Hash
	chunks chan []byte   // chunks to send; closed after the last
	used   chan struct{} // one per chunk, once it has been read
	gone   chan struct{} // closed by Close: no chunk is read any more
	sent   chan struct{} // closed when the sending goroutine is done

	mu        sync.Mutex // guards cur and closed
	cur       []byte
	curActive bool // cur is a chunk whose used token is not yet sent
	closed    bool
	closeOnce sync.Once

	// dataErr is why the archive's bytes were not all sent (nil once
	// they were), endErr why the body ended (nil: cleanly); both set
	// before chunks is closed.
	dataErr, endErr error
}

func sendBody(ctx context.Context, preamble []byte, src io.Reader, trailer []byte, progress io.Writer) *uploadBody {
	b := &uploadBody{
		h:      sha256.New(),
		chunks: make(chan []byte),
		used:   make(chan struct{}, 1),
		gone:   make(chan struct{}),
		sent:   make(chan struct{}),
	}
	go func() {
		defer close(b.sent)
		_, err := b.write(preamble)
		if err == nil {
			var dst io.Writer = writerFunc(b.write)
			if progress != nil {
				dst = io.MultiWriter(dst, progress)
			}
			_, err = hashCopy(ctx, dst, src, b.h, nil)
		}
		b.dataErr = err
		if err == nil {
			_, err = b.write(trailer)
		}
		b.endErr = err
		close(b.chunks)
	}()
	return b
}

// write hands p to the transport and returns once it has all been read
// (p's buffer is then free for the next chunk) or the body was closed.
func (b *uploadBody) write(p []byte) (int, error) {
	select {
	case b.chunks <- p:
	case <-b.gone:
		return 0, errUploadEnded
	}
	select {
	case <-b.used:
		return len(p), nil
	case <-b.gone:
		// The transport may have read all of p just before the body
		// was closed: then p went out.
		select {
		case <-b.used:
			return len(p), nil
		default:
			return 0, errUploadEnded
		}
	}
}

// Read implements io.Reader for the transport.
func (b *uploadBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.cur) == 0 {
		if b.closed {
			return 0, io.ErrClosedPipe
		}
		b.mu.Unlock()
		var next []byte
		var ok bool
		select {
		case next, ok = <-b.chunks:
		case <-b.gone:
		}
		b.mu.Lock()
		if b.closed {
			return 0, io.ErrClosedPipe
		}
		if !ok {
			if b.endErr != nil {
				return 0, b.endErr
			}
			return 0, io.EOF
		}
		b.cur, b.curActive = next, true
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	if len(b.cur) == 0 && b.curActive {
		b.curActive = false
		b.used <- struct{}{}
	}
	return n, nil
}

// Close implements io.Closer: the transport is done with the body. Any
// chunk being read is let go only after the read in progress, so a
// buffer is never reused while it is copied from.
func (b *uploadBody) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed, b.cur = true, nil
		b.mu.Unlock()
		close(b.gone)
	})
	return nil
}

// finish closes the body if the transport has not, waits for the
// sending goroutine, and reports whether all of the archive's bytes went
// out. After finish the hash is safe to read. Calling it again is
// harmless.
func (b *uploadBody) finish() error {
	b.Close()
	<-b.sent
	return b.dataErr
}

// errUploadEnded is what the sending goroutine of an upload sees when
// the request is over before it is done.
var errUploadEnded = errors.New("upload request ended")

// writerFunc turns a function into an io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// exactReader yields exactly left bytes of r, failing if r ends sooner.
// err keeps the error it failed with, other than io.EOF.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("%w: input ended %d bytes short of the declared size", io.ErrUnexpectedEOF, e.left)
	} else if err == io.EOF {
		err = nil
	}
	if err != nil {
		e.err = err
	}
	return n, err
}

// resolve turns an id or a full archive URL into a URL.
func (c *Client) resolve(idOrURL string) string {
	if strings.HasPrefix(idOrURL, "http://") || strings.HasPrefix(idOrURL, "https://") {
		return idOrURL
	}
	return c.URLFor(idOrURL)
}

// do sends req, adding the bearer token when req goes to the client's
// own host (never to a URL found in a Package that points elsewhere).
func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		if base, err := url.Parse(c.base); err == nil && base.Scheme == req.URL.Scheme && base.Host == req.URL.Host {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	tracing.Inject(req.Context(), req.Header)
	return c.HTTP.Do(req)
}

// Open starts downloading an archive by id or by full download URL. The
// returned reader fails instead of ending cleanly if the bytes do not
// match the sha256 the server reported. The caller closes it.
func (c *Client) Open(ctx context.Context, idOrURL string) (io.ReadCloser, Info, error) {
	resp, info, err := c.get(ctx, idOrURL)
	if err != nil {
		return nil, Info{}, err
	}
	rc := &verifyReader{rc: resp.Body, want: info.SHA256, url: resp.Request.URL.String()}
	if info.SHA256 != "" {
		rc.h = sha256.New()
	}
	return rc, info, nil
}

// get sends GET for an archive and returns the 200 answer, whose body
// the caller closes, and the Info its headers give.
func (c *Client) get(ctx context.Context, idOrURL string) (*http.Response, Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.resolve(idOrURL), nil)
	if err != nil {
		return nil, Info{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, Info{}, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, Info{}, statusError(resp)
	}
	return resp, infoFromHeaders(req.URL, resp), nil
}

func infoFromHeaders(u *url.URL, resp *http.Response) Info {
	info := Info{ID: u.Query().Get("id"), Size: resp.ContentLength}
	sum := resp.Header.Get(HeaderChecksum)
	if sum == "" {
		sum = strings.Trim(resp.Header.Get("ETag"), `"`)
	}
	if isHexSHA256(sum) {
		info.SHA256 = sum
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		info.ModTime = t
	}
	return info
}

// verifyReader hashes what passes through and turns a clean EOF into an
// error when the sum differs from want.
type verifyReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
	url  string
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	if v.h != nil {
		v.h.Write(p[:n])
		if err == io.EOF {
			if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
				return n, fmt.Errorf("download %s: sha256 mismatch: got %s, want %s", v.url, got, v.want)
			}
		}
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.rc.Close() }

// Download writes an archive (by id or full download URL) to w, checking
// its sha256 when the server reports one. On error w may hold part of
// the bytes: write to a temp file and rename on success.
func (c *Client) Download(ctx context.Context, id string, w io.Writer) error {
	_, err := c.download(ctx, id, w)
	return err
}

// DownloadURL writes the archive at a full download URL (as found in a
// Package's spec) to w, checking the sha256 the server reports, and
// returns its Info. No token is sent.
func DownloadURL(ctx context.Context, rawURL string, w io.Writer) (Info, error) {
	if !strings.HasPrefix(rawURL, "http://") && !strings.HasPrefix(rawURL, "https://") {
		return Info{}, fmt.Errorf("archive url %q: must be http:// or https://", rawURL)
	}
	return NewClient("", "").download(ctx, rawURL, w)
}

// download copies an archive to w with reading, hashing and writing
// overlapping (hashCopy), then checks the sha256 the server reported.
// The Info's Size is the number of bytes written.
func (c *Client) download(ctx context.Context, idOrURL string, w io.Writer) (Info, error) {
	resp, info, err := c.get(ctx, idOrURL)
	if err != nil {
		return Info{}, err
	}
	defer resp.Body.Close()
	var h hash.Hash
	if info.SHA256 != "" {
		h = sha256.New()
	}
	n, err := hashCopy(ctx, fileWriter{w}, resp.Body, h, nil)
	info.Size = n
	if err != nil {
		return info, err
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 {
			return info, fmt.Errorf("download %s: sha256 mismatch: got %s, want %s", resp.Request.URL, got, info.SHA256)
		}
	}
	return info, nil
}

// Head returns an archive's Info (size, sha256, modification time)
// without downloading it.
func (c *Client) Head(ctx context.Context, id string) (Info, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.resolve(id), nil)
	if err != nil {
		return Info{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return Info{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Info{}, &StatusError{Method: req.Method, URL: req.URL.String(), Code: resp.StatusCode}
	}
	return infoFromHeaders(req.URL, resp), nil
}

// List returns every archive id.
func (c *Client) List(ctx context.Context) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+ArchivePath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	var ids []string
	if err := json.NewDecoder(resp.Body).Decode(&ids); err != nil {
		return nil, fmt.Errorf("list archives: decode answer: %w", err)
	}
	return ids, nil
}

// Delete removes an archive.
func (c *Client) Delete(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.resolve(id), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	io.Copy(io.Discard, resp.Body)
	return nil
}

// WaitHealthy polls /healthz until it answers 200 or ctx ends.
func (c *Client) WaitHealthy(ctx context.Context) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := c.HTTP.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
