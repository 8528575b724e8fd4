package wasm

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/testing/testlog"
)

type echo struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Query    string              `json:"query"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	Host     string              `json:"host"`
	Env      map[string]string   `json:"env"`
	Args     []string            `json:"args"`
	Matched  string              `json:"matched"`
	FullURL  string              `json:"fullurl"`
	Greeting string              `json:"greeting"`
}

func decodeEcho(t *testing.T, r result) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return e
}

func TestWAGIRoundTrip(t *testing.T) {
	rt := sharedRuntime(t)
	logs := &testlog.Buffer{}
	m := load(t, rt, LoadRequest{Wasm: wagiModule(t), Name: "default/wagi", Env: map[string]string{"GREETING": "hi", "REQUEST_METHOD": "FAKE"}, Log: logs})
	if m.ABI() != ABIWAGI {
		t.Fatalf("ABI = %v, want wagi", m.ABI())
	}
	srv := serve(t, m, "/echo/...")
	r := do(t, "PUT", srv.URL+"/echo/a%20b/c?x=1&y=two&status=201", "the body", map[string]string{
		"X-Custom": "v1", "Authorization": "Bearer secret", "Content-Type": "text/plain",
	})
	if r.status != 201 {
		t.Fatalf("status = %d (%s), want 201", r.status, r.body)
	}
	if r.header.Get("X-Echo") != "yes" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("response headers = %v", r.header)
	}
	e := decodeEcho(t, r)
	if e.Method != "PUT" || e.Path != "/echo/a b/c" || e.Query != "x=1&y=two&status=201" || e.Body != "the body" {
		t.Errorf("echo = %+v", e)
	}
	if got := e.Headers["X-Custom"]; !reflect.DeepEqual(got, []string{"v1"}) {
		t.Errorf("X-Custom = %v", got)
	}
	if _, ok := e.Headers["Authorization"]; ok || e.Env["HTTP_AUTHORIZATION"] != "" {
		t.Errorf("Authorization reached the guest: %v", e.Headers)
	}
	want := map[string]string{
		"SCRIPT_NAME": "/echo", "PATH_INFO": "/a b/c", "X_RAW_PATH_INFO": "/a%20b/c",
		"X_MATCHED_ROUTE": "/echo/...", "X_FULL_URL": "https://edge.example/echo/a%20b/c?x=1&y=two&status=201",
		"SERVER_SOFTWARE": "WAGI/1", "GREETING": "hi",
	}
	for k, v := range want {
		if e.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, e.Env[k], v)
		}
	}
	if !reflect.DeepEqual(e.Args, []string{"/echo", "x=1", "y=two", "status=201"}) {
		t.Errorf("argv = %q", e.Args)
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT[0-9:.]+Z default/wagi stderr: serving PUT /echo/a b/c$`).MatchString(logs.String()) {
		t.Errorf("log lacks the guest's stderr line:\n%s", logs.String())
	}
	if s := m.Stats(); s.Requests != 1 || s.InstancesStarted != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestReactorRoundTrip(t *testing.T) {
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Name: "default/reactor", Entrypoint: "Handler", Env: map[string]string{"GREETING": "hi"}})
	if m.ABI() != ABIReactor {
		t.Fatalf("ABI = %v, want reactor", m.ABI())
	}
	if s := m.Stats(); s.InstancesStarted != 1 || s.Idle != 1 {
		t.Fatalf("after Load: %+v, want one warm instance", s)
	}
	srv := serve(t, m, "/echo/...")
	for i := 0; i < 3; i++ {
		r := do(t, "POST", srv.URL+"/echo/x?q=1&status=202", `{"n":1}`, map[string]string{"X-Custom": "v1", "Content-Type": "application/json"})
		if r.status != 202 || r.header.Get("X-Echo") != "yes" {
			t.Fatalf("status %d headers %v body %s", r.status, r.header, r.body)
		}
		e := decodeEcho(t, r)
		if e.Method != "POST" || e.Path != "/echo/x" || e.Query != "q=1&status=202" || e.Body != `{"n":1}` || e.Greeting != "hi" {
			t.Errorf("echo = %+v", e)
		}
		if got := e.Headers["X-Custom"]; !reflect.DeepEqual(got, []string{"v1"}) {
			t.Errorf("X-Custom = %v", got)
		}
		if e.Matched != "/echo/..." || e.FullURL != "https://edge.example/echo/x?q=1&status=202" || !strings.HasPrefix(e.Host, "127.0.0.1:") {
			t.Errorf("route info = %q %q %q", e.Matched, e.FullURL, e.Host)
		}
	}
	if s := m.Stats(); s.InstancesStarted != 1 || s.Requests != 3 {
		t.Errorf("stats = %+v: requests should reuse the warm instance", s)
	}
}

func TestReactorUnknownEntrypoint(t *testing.T) {
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Entrypoint: "Nope"})
	r := do(t, "GET", serve(t, m, "").URL+"/", "", nil)
	if r.status != 500 || !strings.Contains(r.body, `"Nope"`) || !strings.Contains(r.body, "Crash, Files, Handler, Hello") {
		t.Errorf("status %d body %q", r.status, r.body)
	}
}

func TestSandboxArchiveDirOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), []byte("archived"), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := sharedRuntime(t)
	m := load(t, rt, LoadRequest{Wasm: reactorModule(t), Entrypoint: "Files", ArchiveDir: dir})
	srv := serve(t, m, "")
	if r := do(t, "GET", srv.URL+"/?f=/data.txt", "", nil); r.status != 200 || r.body != "archived" {
		t.Errorf("archive file: %d %q", r.status, r.body)
	}
	if r := do(t, "GET", srv.URL+"/?f=/../../../../etc/hostname", "", nil); r.status != 404 {
		t.Errorf("escaping the archive dir: %d %q", r.status, r.body)
	}
	noFS := load(t, rt, LoadRequest{Wasm: reactorModule(t), Entrypoint: "Files"})
	if r := do(t, "GET", serve(t, noFS, "").URL+"/?f=/data.txt", "", nil); r.status != 404 {
		t.Errorf("no archive dir, still read a file: %d %q", r.status, r.body)
	}
}

func TestCGIResponseParsing(t *testing.T) {
	cases := []struct {
		out    string
		status int
		header http.Header
		body   string
		errHas string
	}{
		{out: "Content-Type: text/plain\r\n\r\nhi", status: 200, header: http.Header{"Content-Type": {"text/plain"}}, body: "hi"},
		{out: "Location: /there\n\n", status: 302, header: http.Header{"Location": {"/there"}}},
		{out: "Status: 404 Not Found\nX-A: 1\nX-A: 2\n\nnope", status: 404, header: http.Header{"X-A": {"1", "2"}}, body: "nope"},
		{out: "Status: 301\nLocation: /moved\n\n", status: 301, header: http.Header{"Location": {"/moved"}}},
		{out: "X-Only: 1\n\nbody", status: 500, errHas: "none of Content-Type, Location or Status"},
		{out: "", status: 500, errHas: "wrote nothing"},
		{out: "Status: abc\n\n", status: 502, errHas: "invalid CGI Status"},
		{out: "hello world\n\n", status: 502, errHas: "malformed CGI header line"},
	}
	for _, c := range cases {
		resp, herr := parseCGIResponse([]byte(c.out))
		if c.errHas != "" {
			if herr == nil || herr.status != c.status || !strings.Contains(herr.msg, c.errHas) {
				t.Errorf("%q: err = %v, want %d %q", c.out, herr, c.status, c.errHas)
			}
			continue
		}
		if herr != nil {
			t.Errorf("%q: %v", c.out, herr)
			continue
		}
		if resp.status != c.status || string(resp.body) != c.body || !reflect.DeepEqual(resp.header, c.header) {
			t.Errorf("%q: got %d %v %q", c.out, resp.status, resp.header, resp.body)
		}
	}
}
