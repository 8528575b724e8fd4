package router

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/testing/testlog"
)

// secrets is what a failure inside the platform says and a caller must
// not see: a wasm stack trace, a data-dir path, a storage URL, panic text.
const secrets = "wasm error: unreachable\nwasm stack trace:\n\tmain.handler(i32)\n" +
	"open /home/dev/.isotope/functions/default/x: permission denied; " +
	"GET http://127.0.0.1:8889/v1/archive?id=%2Fisotope%2Farchives%2Fabc; panic: runtime error: index out of range"

var requestIDRE = regexp.MustCompile(`request id ([0-9a-f]{16})`)

// checkScrubbed asserts a short answer with a request id that is also in
// the header and, with the hidden detail, in the router's log.
func checkScrubbed(t *testing.T, logs *testlog.Buffer, what string, code, wantCode int, body string, hdr http.Header, want string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("%s: %d %q, want %d", what, code, body, wantCode)
	}
	for _, s := range []string{"stack trace", ".isotope", "/v1/archive", "panic", "unreachable"} {
		if strings.Contains(body, s) {
			t.Errorf("%s: the answer leaks %q: %q", what, s, body)
		}
	}
	m := requestIDRE.FindStringSubmatch(body)
	if m == nil || hdr.Get(RequestIDHeader) != m[1] || !strings.Contains(body, want) {
		t.Fatalf("%s: answer %q (header %q) lacks %q or a request id matching %s", what, body, hdr.Get(RequestIDHeader), want, RequestIDHeader)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "request_id="+m[1]) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the log has no line for request id %s:\n%s", what, m[1], logs)
		}
		time.Sleep(5 * time.Millisecond) // the log line is written after the answer
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "request_id="+m[1]) && !strings.Contains(line, "permission denied") {
			t.Errorf("%s: the log line does not keep the detail: %s", what, line)
		}
	}
}

func TestPlatformFailuresAreScrubbed(t *testing.T) {
	logs := &testlog.Buffer{}
	e := newTestEnv(t, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	for _, n := range []string{"acquire", "unready", "trap", "marked", "own", "proxied"} {
		e.create(function("default", n))
	}
	e.exec.fail("default", "acquire", errors.New(secrets))
	e.exec.fail("default", "unready", &executor.Error{Code: http.StatusServiceUnavailable, Message: secrets})
	// What the runtimes write when a function fails: http.Error.
	e.exec.handle("default", "trap", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, secrets, http.StatusBadGateway)
	}))
	e.exec.handle("default", "marked", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HostErrorHeader, "response-too-large")
		w.Header().Set("X-Extra", "1")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte(secrets))
	}))
	// A function's own 500s, as the WebAssembly runtime (Content-Length
	// set) and a proxied process (its server's Date) deliver them.
	own := "my own failure: " + secrets
	e.exec.handle("default", "own", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Length", strconv.Itoa(len(own)))
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(own))
	}))
	e.exec.handle("default", "proxied", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Thu, 01 Jan 2026 00:00:00 GMT")
		http.Error(w, own, http.StatusInternalServerError)
	}))
	e.waitFunctions("default/acquire", "default/unready", "default/trap", "default/marked", "default/own", "default/proxied")

	code, body, hdr := e.do("GET", "/fission-function/acquire")
	checkScrubbed(t, logs, "failed Acquire", code, 500, body, hdr, "Internal Server Error: internal error")
	code, body, hdr = e.do("GET", "/fission-function/unready")
	checkScrubbed(t, logs, "503 from the executor", code, 503, body, hdr, "the function cannot be served now")
	code, body, hdr = e.do("GET", "/fission-function/trap")
	checkScrubbed(t, logs, "runtime failure answer", code, 502, body, hdr, "Bad Gateway: the function failed")
	code, body, hdr = e.do("GET", "/fission-function/marked")
	checkScrubbed(t, logs, "marked failure", code, 502, body, hdr, "larger than its limit")
	if hdr.Get(HostErrorHeader) != "" || hdr.Get("X-Extra") != "" {
		t.Errorf("the runtime's headers reached the caller: %v", hdr)
	}

	code, body, _ = e.do("GET", "/fission-function/trap", "Accept", "application/json")
	var j struct {
		Code      int    `json:"code"`
		Error     string `json:"error"`
		RequestID string `json:"requestId"`
	}
	if err := json.Unmarshal([]byte(body), &j); err != nil || code != 502 || j.Code != 502 || len(j.RequestID) != 16 || !strings.Contains(j.Error, j.RequestID) || strings.Contains(body, "stack") {
		t.Errorf("JSON failure: %d %q (%v)", code, body, err)
	}

	for _, n := range []string{"own", "proxied"} {
		code, body, hdr = e.do("GET", "/fission-function/"+n)
		if code != 500 || strings.TrimSpace(body) != own || hdr.Get(RequestIDHeader) != "" {
			t.Errorf("a function's own 500 (%s) was changed: %d %q %v", n, code, body, hdr)
		}
	}
}

// DebugErrors (Fission's DEBUG_ENV) shows the detail to the caller.
func TestDebugErrorsShowDetail(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.DebugErrors = true })
	e.create(function("default", "acquire"))
	e.create(function("default", "trap"))
	e.exec.fail("default", "acquire", errors.New("fetch: /data/dir/x"))
	e.exec.handle("default", "trap", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "wasm stack trace: f", http.StatusBadGateway)
	}))
	e.waitFunctions("default/acquire", "default/trap")
	if code, body, _ := e.do("GET", "/fission-function/acquire"); code != 500 || !strings.Contains(body, "fetch: /data/dir/x") || !requestIDRE.MatchString(body) {
		t.Errorf("acquire with DebugErrors: %d %q", code, body)
	}
	if code, body, _ := e.do("GET", "/fission-function/trap"); code != 502 || !strings.Contains(body, "wasm stack trace: f") {
		t.Errorf("runtime failure with DebugErrors: %d %q", code, body)
	}
}
