package storagesvc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A Fission client uploads exactly as `curl -F uploadfile=@f -H
// 'X-File-Size: N'` does, byte for byte, and gets {"id"} back; GET ?id=
// with the escaped id returns the same bytes. The 2 MiB case also goes
// through curl's "Expect: 100-continue" handshake.
func TestFissionStyleCurlUploadAndDownload(t *testing.T) {
	ts := newTestService(t, Options{})
	addr := strings.TrimPrefix(ts.server.URL, "http://")
	for _, size := range []int{0, 3000, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := randomBytes(t, size)
			expect := size > 1<<20
			head, tail := curlHead("f.zip"), curlTail()
			cl := int64(len(head) + size + len(tail))

			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			io.WriteString(conn, curlRequestHeader(addr, int64(size), cl, expect))
			if expect {
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
					t.Fatalf("want 100 Continue, got %q, %v", line, err)
				}
				br.ReadString('\n') // blank line
			}
			io.WriteString(conn, head)
			conn.Write(data)
			io.WriteString(conn, tail)
			resp, body := readRawResponse(t, br)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("upload: %d %s", resp.StatusCode, body)
			}
			var got struct {
				ID       string `json:"id"`
				Checksum struct{ Type, Sum string }
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.ID, DefaultIDPrefix+"/") {
				t.Errorf("id %q: want the path-like shape %s/<uuid>", got.ID, DefaultIDPrefix)
			}
			want := sha256Hex(data)
			if got.Checksum.Type != "sha256" || got.Checksum.Sum != want || resp.Header.Get(HeaderChecksum) != want {
				t.Errorf("checksum: JSON %+v, header %q; want sha256 %s", got.Checksum, resp.Header.Get(HeaderChecksum), want)
			}

			// Download as a Fission fetcher does: the id path-escaped in ?id=.
			u := ts.server.URL + "/v1/archive?id=" + url.PathEscape(got.ID)
			if !strings.Contains(u, "%2Fisotope%2Farchives%2F") {
				t.Fatalf("escaped URL %s", u)
			}
			dl, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Body.Close()
			back, _ := io.ReadAll(dl.Body)
			if dl.StatusCode != 200 || !bytes.Equal(back, data) {
				t.Fatalf("download: %d, %d bytes, equal=%v", dl.StatusCode, len(back), bytes.Equal(back, data))
			}
		})
	}
}

// The real curl, when the machine has it.
func TestRealCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	ts := newTestService(t, Options{})
	data := randomBytes(t, 1500<<10)
	f := filepath.Join(t.TempDir(), "f.zip")
	os.WriteFile(f, data, 0o644)
	out, err := exec.Command(curl, "-sS", "--fail", "-F", "uploadfile=@"+f, "-H", fmt.Sprintf("X-File-Size: %d", len(data)), ts.server.URL+"/v1/archive").Output()
	if err != nil {
		t.Fatalf("curl upload: %v", err)
	}
	var got UploadResponse
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("curl output %q: %v", out, err)
	}
	dst := filepath.Join(t.TempDir(), "back")
	if err := exec.Command(curl, "-sS", "--fail", "-o", dst, ts.client.URLFor(got.ID)).Run(); err != nil {
		t.Fatalf("curl download: %v", err)
	}
	back, _ := os.ReadFile(dst)
	if !bytes.Equal(back, data) {
		t.Fatal("curl round trip differs")
	}
}

// A download can resume: HEAD gives the ETag (the sha256) and size, a
// Range request with If-Range fetches the rest, a stale If-Range gets
// the whole archive, If-None-Match gets 304.
func TestRangeAndETagResume(t *testing.T) {
	ts := newTestService(t, Options{})
	ctx := context.Background()
	data := randomBytes(t, 1<<20)
	res, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), "a.zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	etag := `"` + sha256Hex(data) + `"`

	req, _ := http.NewRequest(http.MethodHead, res.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != etag || resp.ContentLength != int64(len(data)) ||
		resp.Header.Get("Accept-Ranges") != "bytes" || resp.Header.Get(HeaderStorageType) != "local" {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}

	get := func(h map[string]string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, res.URL, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	// "Interrupted" first half, then resume.
	r1, first := get(map[string]string{"Range": "bytes=0-299999"})
	r2, rest := get(map[string]string{"Range": "bytes=300000-", "If-Range": etag})
	if r1.StatusCode != 206 || r2.StatusCode != 206 || !bytes.Equal(append(first, rest...), data) {
		t.Fatalf("resume: %d %d, %d+%d bytes", r1.StatusCode, r2.StatusCode, len(first), len(rest))
	}
	if r3, all := get(map[string]string{"Range": "bytes=300000-", "If-Range": `"stale"`}); r3.StatusCode != 200 || !bytes.Equal(all, data) {
		t.Fatalf("stale If-Range: %d, %d bytes", r3.StatusCode, len(all))
	}
	if r4, _ := get(map[string]string{"If-None-Match": etag}); r4.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", r4.StatusCode)
	}
	info, err := ts.client.Head(ctx, res.ID)
	if err != nil || info.SHA256 != sha256Hex(data) || info.Size != int64(len(data)) {
		t.Fatalf("client Head: %+v %v", info, err)
	}
}

// Over the cap: a declared size is refused before the body is read, a
// lying X-File-Size is caught while streaming; either way nothing is kept.
func TestSizeCap(t *testing.T) {
	ts := newTestService(t, Options{MaxSize: 64 << 10})
	ctx := context.Background()

	_, err := ts.client.Upload(ctx, bytes.NewReader(make([]byte, 100<<10)), 100<<10, "big.zip", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusRequestEntityTooLarge || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("declared over cap: %v", err)
	}

	// X-File-Size says 60000 (under the cap), the body carries 100 KiB:
	// counted while streaming and refused once it passes the declared size.
	data := randomBytes(t, 100<<10)
	body := curlHead("lie.zip") + string(data) + curlTail()
	req, _ := http.NewRequest(http.MethodPost, ts.server.URL+"/v1/archive", strings.NewReader(body))
	req.Header.Set("Content-Type", "multipart/form-data; boundary="+curlBoundary)
	req.Header.Set(HeaderFileSize, "60000")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "does not match") {
			t.Fatalf("lying size: %d %s", resp.StatusCode, msg)
		}
	} // else: the server closed the connection on us, also a refusal.
	if ids := mustList(t, ts.client); len(ids) != 0 {
		t.Fatalf("listed after refusals: %v", ids)
	}
	waitFor(t, "an empty archive directory", func() bool { return len(dirNames(t, ts.dir)) == 0 })
}

// fakeFullDisk is a temp file on a disk that fills up after limit bytes:
// writes past it fail with ENOSPC, as a real full filesystem reports.
type fakeFullDisk struct {
	*os.File
	limit, n int64
}

func (f *fakeFullDisk) Write(p []byte) (int, error) {
	if f.n+int64(len(p)) > f.limit {
		return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.n += int64(len(p))
	return f.File.Write(p)
}

// A full disk answers 507 and leaves nothing behind (injected ENOSPC).
func TestFullDiskInjected(t *testing.T) {
	ts := newTestService(t, Options{})
	ts.backend.createTemp = func(dir, pattern string) (tempFile, error) {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		return &fakeFullDisk{File: f, limit: 512 << 10}, nil
	}
	_, err := ts.client.Upload(context.Background(), bytes.NewReader(randomBytes(t, 1<<20)), 1<<20, "a.zip", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusInsufficientStorage || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("want 507, got %v", err)
	}
	if names := dirNames(t, ts.dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}

// A full disk for real: a 1 MiB tmpfs (needs root and mount rights).
func TestFullDiskTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	b, err := NewLocalBackend(dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hs := httptest.NewServer(NewServer(b, Options{Logger: slog.New(slog.DiscardHandler)}))
	defer hs.Close()
	c := NewClient(hs.URL, "")
	ctx := context.Background()
	_, err = c.Upload(ctx, bytes.NewReader(randomBytes(t, 2<<20)), 2<<20, "big.zip", nil)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("want 507 on a full tmpfs, got %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
	// The space is back: a small archive fits.
	small := randomBytes(t, 100<<10)
	res, err := c.Upload(ctx, bytes.NewReader(small), int64(len(small)), "small.zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	var back bytes.Buffer
	if err := c.Download(ctx, res.ID, &back); err != nil || !bytes.Equal(back.Bytes(), small) {
		t.Fatalf("download after a full disk: %v", err)
	}
}
