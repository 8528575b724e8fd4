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
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/hmac"
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
	// Large socket buffers: archives are streamed in big chunks.
	t.WriteBufferSize = copyBufSize
	t.ReadBufferSize = copyBufSize
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

	h := sha256.New()
	var data io.Reader = &exactReader{r: r, left: size}
	if progress != nil {
		data = io.TeeReader(data, progress)
	}
	data = io.TeeReader(data, h)
	body := io.MultiReader(bytes.NewReader(preamble), data, bytes.NewReader(trailer))

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+ArchivePath, io.NopCloser(body))
	if err != nil {
		return UploadResult{}, err
	}
	req.ContentLength = int64(len(preamble)) + size + int64(len(trailer))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set(HeaderFileSize, strconv.FormatInt(size, 10))
	resp, err := c.do(req)
	if err != nil {
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
	sum := hex.EncodeToString(h.Sum(nil))
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

// exactReader yields exactly left bytes of r, failing if r ends sooner.
type exactReader struct {
	r    io.Reader
	left int64
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
		return n, fmt.Errorf("%w: input ended %d bytes short of the declared size", io.ErrUnexpectedEOF, e.left)
	}
	if err == io.EOF {
		err = nil
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
	return c.HTTP.Do(req)
}

// Open starts downloading an archive by id or by full download URL. The
// returned reader fails instead of ending cleanly if the bytes do not
// match the sha256 the server reported. The caller closes it.
func (c *Client) Open(ctx context.Context, idOrURL string) (io.ReadCloser, Info, error) {
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
	info := infoFromHeaders(req.URL, resp)
	rc := &verifyReader{rc: resp.Body, want: info.SHA256, url: req.URL.String()}
	if info.SHA256 != "" {
		rc.h = sha256.New()
	}
	return rc, info, nil
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
	rc, _, err := c.Open(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = copyLarge(w, rc)
	return err
}

// copyLarge copies in copyBufSize chunks, so writing a large archive to
// a file takes a few thousand write calls rather than io.Copy's 32 KiB
// ones.
func copyLarge(w io.Writer, r io.Reader) (int64, error) {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, *bufp)
}

// DownloadURL writes the archive at a full download URL (as found in a
// Package's spec) to w, checking the sha256 the server reports, and
// returns its Info. No token is sent.
func DownloadURL(ctx context.Context, rawURL string, w io.Writer) (Info, error) {
	if !strings.HasPrefix(rawURL, "http://") && !strings.HasPrefix(rawURL, "https://") {
		return Info{}, fmt.Errorf("archive url %q: must be http:// or https://", rawURL)
	}
	rc, info, err := NewClient("", "").Open(ctx, rawURL)
	if err != nil {
		return Info{}, err
	}
	defer rc.Close()
	n, err := copyLarge(w, rc)
	info.Size = n
	return info, err
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
