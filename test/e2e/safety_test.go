package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// send makes one request to url with the given Host (empty: the real
// one) and headers, and returns the status, the body and the headers.
func send(t *testing.T, method, url, host string, body io.Reader, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// forbidden checks a 403 Status naming the failed header.
func forbidden(t *testing.T, what string, code int, body, header, want string) {
	t.Helper()
	var st struct {
		Kind, Reason, Message string
		Code                  int
		Details               struct{ Causes []struct{ Field string } }
	}
	if code != 403 || json.Unmarshal([]byte(body), &st) != nil || st.Reason != "Forbidden" ||
		len(st.Details.Causes) != 1 || st.Details.Causes[0].Field != header || !strings.Contains(st.Message, want) {
		t.Errorf("%s: %d %s, want 403 naming %s and saying %q", what, code, body, header, want)
	}
}

const envsPath = "/apis/isotope.dev/v1/namespaces/default/environments"

// A page on another site, or one that rebinds its name to 127.0.0.1,
// cannot drive the tokenless loopback API through the browser; the CLI,
// which sends no browser headers, works as before, and --api-host admits
// a name.
func TestWebPagesCannotDriveTheAPI(t *testing.T) {
	p := startPlatform(t, "")
	marker := filepath.Join(t.TempDir(), "pwned")
	env := `{"metadata":{"name":"pwn"},"spec":{"version":2,"runtime":{"image":"x","container":{"name":"x","command":["sh","-c","touch ` + marker + `"]}}}}`

	// The text/plain POST a page can send without a CORS preflight.
	code, body, _ := send(t, "POST", p.api+envsPath, "", strings.NewReader(env),
		map[string]string{"Content-Type": "text/plain;charset=UTF-8", "Origin": "http://evil.example"})
	forbidden(t, "cross-origin text/plain POST", code, body, "Origin", `Origin "http://evil.example"`)
	code, body, _ = send(t, "POST", p.api+envsPath, "", strings.NewReader(env),
		map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
	forbidden(t, "cross-site POST", code, body, "Sec-Fetch-Site", "cross-site")
	// A multipart upload needs no preflight either.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("uploadfile", "x.zip")
	fw.Write([]byte("data"))
	mw.Close()
	code, body, _ = send(t, "POST", p.api+"/v1/archive", "", bytes.NewReader(mp.Bytes()),
		map[string]string{"Content-Type": mw.FormDataContentType(), "X-File-Size": "4", "Origin": "http://evil.example"})
	forbidden(t, "cross-origin archive upload", code, body, "Origin", "cross-origin POST")
	// DNS rebinding: same-origin for the browser, but a foreign Host.
	for _, m := range []string{"GET", "POST"} {
		code, body, _ = send(t, m, p.api+envsPath, "evil.example:8889", strings.NewReader(env), map[string]string{"Content-Type": "application/json"})
		forbidden(t, m+" with a foreign Host", code, body, "Host", "start the server with --api-host evil.example to allow it")
	}
	code, body, _ = send(t, "GET", p.router+"/metrics", "evil.example", nil, nil)
	forbidden(t, "router /metrics with a foreign Host", code, body, "Host", "--api-host evil.example")
	// Without a browser's headers, a text/plain write is still refused.
	if code, body, _ = send(t, "POST", p.api+envsPath, "", strings.NewReader(env), map[string]string{"Content-Type": "text/plain"}); code != 415 {
		t.Errorf("text/plain POST: %d %s, want 415", code, body)
	}
	if out := p.ok("env", "list"); strings.Contains(out, "pwn") {
		t.Fatalf("a refused request created an environment:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the refused environment's command ran")
	}

	// Function traffic takes any Host.
	if code, _, _ = send(t, "GET", p.router+"/nowhere", "shop.example", nil, nil); code != 404 {
		t.Errorf("function path with its own Host: %d, want the router's 404", code)
	}
	// The CLI: JSON writes, a multipart archive upload, reads.
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	big := writeFile(t, t.TempDir(), "big.bin", bytes.Repeat([]byte("x"), 300<<10))
	if id := strings.TrimSpace(p.ok("archive", "upload", "--name", big)); id == "" {
		t.Error("archive upload printed no id")
	}
	if out := p.ok("env", "list"); !strings.Contains(out, "wasm") {
		t.Errorf("env list:\n%s", out)
	}

	// A name given with --api-host is admitted.
	q := startPlatform(t, "", "--api-host", "build-box.example")
	if code, body, _ = send(t, "GET", q.api+envsPath, "build-box.example:8889", nil, nil); code != 200 {
		t.Errorf("GET with an --api-host name: %d %s", code, body)
	}
}

// A second route on the same method, URL and host is refused naming the
// first (it used to be stored and silently shadowed), and so is a route
// on one of the router's own paths.
func TestRoutesMustNotCollide(t *testing.T) {
	p := startPlatform(t, "")
	hello := writeFile(t, t.TempDir(), "hello.wasm", wasmtest.WAGIHello())
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "one", "--env", "wasm", "--code", hello)
	p.ok("fn", "create", "--name", "two", "--env", "wasm", "--code", hello)
	p.ok("route", "create", "--name", "first", "--function", "one", "--url", "/dup", "--method", "GET")
	stderr := p.fails("route", "create", "--name", "second", "--function", "two", "--url", "/dup", "--method", "GET")
	if !strings.Contains(stderr, "already routed by HTTPTrigger default/first") {
		t.Errorf("duplicate route: %s", stderr)
	}
	p.ok("route", "create", "--name", "other", "--function", "two", "--url", "/other", "--method", "GET")
	stderr = p.fails("route", "update", "--name", "other", "--url", "/dup")
	if !strings.Contains(stderr, "already routed by HTTPTrigger default/first") {
		t.Errorf("update onto a taken route: %s", stderr)
	}
	for _, url := range []string{"/metrics", "/_version", "/fission-function/default/one"} {
		stderr = p.fails("route", "create", "--name", "reserved", "--function", "two", "--url", url)
		if !strings.Contains(stderr, "is reserved") {
			t.Errorf("route on %s: %s", url, stderr)
		}
	}
	out := p.ok("route", "list")
	if strings.Contains(out, "second") || strings.Contains(out, "reserved") {
		t.Errorf("refused routes were stored:\n%s", out)
	}
	p.waitServes(t, "/dup", 200)
	p.waitServes(t, "/other", 200)
}

// A deploy archive with a zip-slip entry is refused when the function is
// created, naming the entry (it used to be accepted and fail at the
// first request), and by the storage service on upload.
func TestZipSlipDeployRefusedAtCreate(t *testing.T) {
	p := startPlatform(t, "")
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range []string{"main.wasm", "../../../../../tmp/isotope-e2e-slip"} {
		w, _ := zw.Create(n)
		w.Write(wasmtest.WAGIHello())
	}
	zw.Close()
	slip := writeFile(t, dir, "slip.zip", buf.Bytes())
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	stderr := p.fails("fn", "create", "--name", "slip", "--env", "wasm", "--deploy", slip)
	if !strings.Contains(stderr, `entry "../../../../../tmp/isotope-e2e-slip"`) || !strings.Contains(stderr, slip) {
		t.Errorf("fn create --deploy slip.zip: %s", stderr)
	}
	if out := p.ok("fn", "list"); strings.Contains(out, "slip") {
		t.Errorf("the function was created:\n%s", out)
	}
	// Past the CLI: a raw upload to the storage service.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("uploadfile", "slip.zip")
	fw.Write(buf.Bytes())
	mw.Close()
	code, body, _ := send(t, "POST", p.api+"/v1/archive", "", &mp,
		map[string]string{"Content-Type": mw.FormDataContentType(), "X-File-Size": strconv.Itoa(buf.Len())})
	if code != 400 || !strings.Contains(body, "isotope-e2e-slip") {
		t.Errorf("raw upload of slip.zip: %d %s", code, body)
	}
	if ids := p.archiveIDs(t); len(ids) != 0 {
		t.Errorf("archives kept: %v", ids)
	}
}

var requestIDRE = regexp.MustCompile(`request id ([0-9a-f]{16})`)

// A function that crashes gets a short 502 ("the function crashed", the
// reason the runtime marks) with a request id; the wasm
// stack trace stays in the server's log under that id. A function's own
// 500 passes unchanged.
func TestFailureBodiesAreScrubbed(t *testing.T) {
	p := startPlatform(t, "")
	dir := t.TempDir()
	trap := writeFile(t, dir, "trap.wasm", wasmtest.Trap())
	own := writeFile(t, dir, "own.wasm", wasmtest.WAGIStatic("Status: 500\nContent-Type: text/plain\n\nmy own failure\n"))
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "trap", "--env", "wasm", "--code", trap, "--url", "/trap")
	p.ok("fn", "create", "--name", "own", "--env", "wasm", "--code", own, "--url", "/own")
	p.waitServes(t, "/trap", 502)
	_, body, hdr := send(t, "GET", p.router+"/trap", "", nil, nil)
	m := requestIDRE.FindStringSubmatch(body)
	if m == nil || hdr.Get("X-Isotope-Request-Id") != m[1] || !strings.Contains(body, "Bad Gateway: the function crashed") {
		t.Fatalf("502 body %q (X-Isotope-Request-Id %q) lacks a short message and a matching request id", body, hdr.Get("X-Isotope-Request-Id"))
	}
	for _, leak := range []string{"wasm", "stack", "unreachable", p.dataDir, "/v1/archive"} {
		if strings.Contains(body, leak) {
			t.Errorf("the 502 body leaks %q: %q", leak, body)
		}
	}
	waitFor(t, 10*time.Second, "the log line of request "+m[1], func() error {
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if strings.Contains(line, "request_id="+m[1]) && strings.Contains(line, "unreachable") {
				return nil
			}
		}
		return io.EOF
	})
	if body := p.waitServes(t, "/own", 500); strings.TrimSpace(body) != "my own failure" {
		t.Errorf("the function's own 500 was changed: %q", body)
	}
}

// A mistyped command or flag fails (it used to print help and exit 0),
// suggesting what was meant.
func TestTypoCommandsFail(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fn", "craete", "--name", "x"}, `unknown command "craete" for "isotope fn"; did you mean "create"?`},
		{[]string{"route", "lst"}, `did you mean "list"?`},
		{[]string{"fnn", "list"}, `did you mean "fn"?`},
		{[]string{"fn", "create", "--nmae", "x"}, "unknown flag: --nmae; did you mean --name?"},
	} {
		cmd := exec.Command(binary, c.args...)
		cmd.Env = append(os.Environ(), "ISOTOPE_URL=http://127.0.0.1:1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("isotope %s: %v, stderr %q; want a non-zero exit saying %q", strings.Join(c.args, " "), err, stderr.String(), c.want)
		}
	}
	if out, err := exec.Command(binary, "fn").Output(); err != nil || !strings.Contains(string(out), "Usage:") {
		t.Errorf("isotope fn alone: %v, want its help and exit 0", err)
	}
}
