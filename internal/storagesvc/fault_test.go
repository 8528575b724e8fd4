package storagesvc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A client that dies mid-upload (its connection closes after part of
// the body) leaves nothing: no listed archive, no temp file.
func TestClientKilledMidUpload(t *testing.T) {
	ts := newTestService(t, Options{})
	addr := strings.TrimPrefix(ts.server.URL, "http://")
	conn := startRawUpload(t, addr, 8<<20, randomBytes(t, 1<<20))
	waitFor(t, "the upload to reach the disk", func() bool { return tempFileWritten(ts.dir) })
	conn.Close()
	waitFor(t, "the partial upload to be removed", func() bool { return len(dirNames(t, ts.dir)) == 0 })
	if ids := mustList(t, ts.client); len(ids) != 0 {
		t.Fatalf("listed: %v", ids)
	}
}

// startChild runs the test binary as a storage service process on dir
// and returns it with its base URL.
func startChild(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if err != nil || !ok {
		t.Fatalf("child did not report its address: %q %v", line, err)
	}
	return cmd, "http://" + addr
}

// A server killed (SIGKILL) mid-upload leaves no partial archive: after a
// restart on the same directory only the complete archive is listed, and
// the startup sweep has removed the temp file.
func TestServerKilledMidUpload(t *testing.T) {
	dir := t.TempDir()
	cmd, base := startChild(t, dir)
	c := NewClient(base, "")
	ctx := context.Background()
	done := randomBytes(t, 300<<10)
	res, err := c.Upload(ctx, bytes.NewReader(done), int64(len(done)), "done.zip", nil)
	if err != nil {
		t.Fatal(err)
	}

	conn := startRawUpload(t, strings.TrimPrefix(base, "http://"), 8<<20, randomBytes(t, 1<<20))
	defer conn.Close()
	waitFor(t, "the upload to reach the disk", func() bool { return tempFileWritten(dir) })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !tempFileWritten(dir) {
		t.Fatal("the killed server's temp file should still be on disk before the restart")
	}

	_, base = startChild(t, dir)
	c = NewClient(base, "")
	if ids := mustList(t, c); len(ids) != 1 || ids[0] != res.ID {
		t.Fatalf("after restart listed %v, want only %s", ids, res.ID)
	}
	for _, n := range dirNames(t, dir) {
		if strings.HasPrefix(n, tempPrefix) {
			t.Fatalf("temp file %s survived the restart", n)
		}
	}
	var back bytes.Buffer
	if err := c.Download(ctx, res.ID, &back); err != nil || !bytes.Equal(back.Bytes(), done) {
		t.Fatalf("complete archive after restart: %v", err)
	}
}

// Many uploads and downloads at once, each verified by sha256 (run with
// -race).
func TestConcurrentUploadsAndDownloads(t *testing.T) {
	ts := newTestService(t, Options{})
	ctx := context.Background()
	shared := randomBytes(t, 512<<10)
	sharedRes, err := ts.client.Upload(ctx, bytes.NewReader(shared), int64(len(shared)), "shared.zip", nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker*2)
	ids := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Add(2)
		go func() { // uploader
			defer wg.Done()
			for i := range perWorker {
				data := randomBytes(t, rand.IntN(700<<10))
				res, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), fmt.Sprintf("w%d-%d.zip", w, i), nil)
				if err != nil {
					errs <- err
					return
				}
				ids <- res.ID
				var back bytes.Buffer
				if err := ts.client.Download(ctx, res.ID, &back); err != nil || !bytes.Equal(back.Bytes(), data) {
					errs <- fmt.Errorf("round trip of %s: %v", res.ID, err)
				}
			}
		}()
		go func() { // reader of one shared archive, and of the list
			defer wg.Done()
			for range perWorker {
				var back bytes.Buffer
				if err := ts.client.Download(ctx, sharedRes.ID, &back); err != nil || !bytes.Equal(back.Bytes(), shared) {
					errs <- fmt.Errorf("shared download: %v", err)
				}
				if _, err := ts.client.List(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	if got := len(mustList(t, ts.client)); got != workers*perWorker+1 {
		t.Fatalf("listed %d archives, want %d", got, workers*perWorker+1)
	}
}

// Bad requests are refused with a message naming what is wrong, and
// nothing is stored.
func TestBadRequests(t *testing.T) {
	ts := newTestService(t, Options{})
	post := func(header map[string]string, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.server.URL+ArchivePath, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mp := "multipart/form-data; boundary=" + curlBoundary
	good := curlHead("f") + "hello" + curlTail()
	cases := []struct {
		name   string
		header map[string]string
		body   string
		want   string
	}{
		{"no size", map[string]string{"Content-Type": mp}, good, HeaderFileSize},
		{"bad size", map[string]string{"Content-Type": mp, HeaderFileSize: "five"}, good, HeaderFileSize},
		{"not multipart", map[string]string{"Content-Type": "application/zip", HeaderFileSize: "5"}, "hello", "multipart"},
		{"no uploadfile", map[string]string{"Content-Type": mp, HeaderFileSize: "5"},
			strings.Replace(good, `name="uploadfile"`, `name="file"`, 1), FormField},
		{"size mismatch", map[string]string{"Content-Type": mp, HeaderFileSize: "6"}, good, "does not match"},
		{"truncated body", map[string]string{"Content-Type": mp, HeaderFileSize: "5"}, curlHead("f") + "hello", "interrupted"},
	}
	for _, c := range cases {
		code, msg := post(c.header, c.body)
		if code != http.StatusBadRequest || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 400 naming %q", c.name, code, msg, c.want)
		}
	}
	ctx := context.Background()
	for _, id := range []string{"../../etc/passwd", DefaultIDPrefix + "/../x", DefaultIDPrefix + "/NOT-A-UUID"} {
		if _, err := ts.client.Head(ctx, id); err == nil {
			t.Errorf("HEAD %q accepted", id)
		}
		var se *StatusError
		if err := ts.client.Download(ctx, id, io.Discard); !errors.As(err, &se) || se.Code != http.StatusBadRequest {
			t.Errorf("GET %q: %v, want 400", id, err)
		}
	}
	missing := DefaultIDPrefix + "/00000000-0000-4000-8000-000000000000"
	if err := ts.client.Download(ctx, missing, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("GET missing: %v", err)
	}
	if err := ts.client.Delete(ctx, missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("DELETE missing: %v", err)
	}
	if ids := mustList(t, ts.client); len(ids) != 0 {
		t.Fatalf("stored after bad requests: %v", ids)
	}
	if names := dirNames(t, ts.dir); len(names) != 0 {
		t.Fatalf("left in the directory: %v", names)
	}
}

// With a token, /v1/archive needs it and /healthz does not; the client
// sends it only to its own host.
func TestToken(t *testing.T) {
	ts := newTestService(t, Options{Token: "s3cret"})
	if _, err := NewClient(ts.server.URL, "").List(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := NewClient(ts.server.URL, "wrong").List(context.Background()); err == nil {
		t.Fatal("wrong token accepted")
	}
	if _, err := ts.client.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.server.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
}

// Upload, list, download (by id and by URL), delete through the client;
// a download whose bytes were changed on disk fails its sha256 check.
func TestClientRoundTripAndVerification(t *testing.T) {
	ts := newTestService(t, Options{})
	ctx := context.Background()
	data := randomBytes(t, 200<<10)
	var progress bytes.Buffer
	res, err := ts.client.Upload(ctx, bytes.NewReader(data), int64(len(data)), "/some/dir/a.zip", &progress)
	if err != nil {
		t.Fatal(err)
	}
	if res.URL != ts.client.URLFor(res.ID) || res.Checksum.Sum != sha256Hex(data) || progress.Len() != len(data) {
		t.Fatalf("result %+v, progress saw %d bytes", res, progress.Len())
	}
	if ids := mustList(t, ts.client); len(ids) != 1 || ids[0] != res.ID {
		t.Fatalf("list: %v", ids)
	}
	var byURL bytes.Buffer
	info, err := DownloadURL(ctx, res.URL, &byURL)
	if err != nil || !bytes.Equal(byURL.Bytes(), data) || info.SHA256 != res.Checksum.Sum || info.ID != res.ID {
		t.Fatalf("DownloadURL: %+v %v", info, err)
	}
	if _, err := ts.client.Upload(ctx, bytes.NewReader(data[:10]), 20, "short.zip", nil); err == nil {
		t.Fatal("upload of fewer bytes than declared succeeded")
	}

	// Corrupt the stored bytes (the sidecar keeps the original sum).
	p := filepath.Join(ts.dir, strings.TrimPrefix(res.ID, DefaultIDPrefix+"/"))
	tampered := bytes.Clone(data)
	tampered[1000] ^= 0xff
	if err := os.WriteFile(p, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ts.client.Download(ctx, res.ID, io.Discard); err == nil || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("tampered download: %v", err)
	}

	if err := ts.client.Delete(ctx, res.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Head(ctx, res.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	// The short upload's temporary file goes when its handler sees the
	// connection end, which may be after the client gave up on it.
	deadline := time.Now().Add(10 * time.Second)
	for names := dirNames(t, ts.dir); len(names) != 0; names = dirNames(t, ts.dir) {
		if time.Now().After(deadline) {
			t.Fatalf("left in the directory: %v", names)
		}
		time.Sleep(10 * time.Millisecond) // poll resolution
	}
}

// Two backends never share a directory.
func TestDirectoryLock(t *testing.T) {
	ts := newTestService(t, Options{})
	if _, err := NewLocalBackend(ts.dir, LocalOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second backend on the same dir: %v", err)
	}
}
