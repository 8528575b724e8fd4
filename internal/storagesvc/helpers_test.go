package storagesvc

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// childEnv makes the test binary run as a storage service process (for
// the server-killed-mid-upload test): it serves the directory named by
// the variable on 127.0.0.1:0 and prints "ADDR <host:port>".
const childEnv = "ISOTOPE_STORAGESVC_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

func runChild(dir string) int {
	b, err := NewLocalBackend(dir, LocalOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	srv := NewServer(b, Options{Logger: slog.New(slog.DiscardHandler)})
	return exitCode(http.Serve(ln, srv))
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

// testService is a storage service on a real loopback listener over a
// real directory.
type testService struct {
	backend *LocalBackend
	server  *httptest.Server
	client  *Client
	dir     string
}

func newTestService(t testing.TB, opts Options) *testService {
	t.Helper()
	dir := t.TempDir()
	b, err := NewLocalBackend(dir, LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	hs := httptest.NewServer(NewServer(b, opts))
	t.Cleanup(hs.Close)
	return &testService{backend: b, server: hs, client: NewClient(hs.URL, opts.Token), dir: dir}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// curlBoundary is the boundary style of curl 7.88 (-F): 24 dashes and 16
// hex digits in the header; each delimiter line adds the usual "--".
const curlBoundary = "------------------------05fe102c1bc3c4d3"

// curlHead and curlTail frame data exactly as `curl -F uploadfile=@name`
// does (checked byte for byte against curl 7.88.1).
func curlHead(name string) string {
	return "--" + curlBoundary + "\r\n" +
		`Content-Disposition: form-data; name="uploadfile"; filename="` + name + "\"\r\n" +
		"Content-Type: application/octet-stream\r\n\r\n"
}

func curlTail() string { return "\r\n--" + curlBoundary + "--\r\n" }

// curlRequestHeader is the request header curl sends for
// `curl -F uploadfile=@name -H 'X-File-Size: N' URL`; curl adds
// "Expect: 100-continue" for bodies over 1 MiB.
func curlRequestHeader(host string, fileSize, contentLength int64, expect bool) string {
	var b strings.Builder
	b.WriteString("POST /v1/archive HTTP/1.1\r\n")
	b.WriteString("Host: " + host + "\r\n")
	b.WriteString("User-Agent: curl/7.88.1\r\nAccept: */*\r\n")
	fmt.Fprintf(&b, "X-File-Size: %d\r\n", fileSize)
	fmt.Fprintf(&b, "Content-Length: %d\r\n", contentLength)
	b.WriteString("Content-Type: multipart/form-data; boundary=" + curlBoundary + "\r\n")
	if expect {
		b.WriteString("Expect: 100-continue\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// startRawUpload opens a TCP connection and sends curl's request header
// and the first part of the body, declaring a body of fileSize bytes,
// then returns the connection without finishing.
func startRawUpload(t *testing.T, addr string, fileSize int64, first []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	head, tail := curlHead("big.zip"), curlTail()
	cl := int64(len(head)) + fileSize + int64(len(tail))
	if _, err := io.WriteString(conn, curlRequestHeader(addr, fileSize, cl, false)+head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(first); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readRawResponse reads one HTTP response from a raw connection.
func readRawResponse(t *testing.T, br *bufio.Reader) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dirNames lists a directory's entries, without the lock file.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != lockName {
			names = append(names, e.Name())
		}
	}
	return names
}

// tempFileWritten reports whether an upload in progress has written at
// least one byte to its temp file.
func tempFileWritten(dir string) bool {
	matches, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.Size() > 0 {
			return true
		}
	}
	return false
}

func mustList(t *testing.T, c *Client) []string {
	t.Helper()
	ids, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
