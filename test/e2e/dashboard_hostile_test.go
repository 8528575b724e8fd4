package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// uiClient is a browser-like client of the dashboard: a cookie jar and
// the CSRF token of its session.
type uiClient struct {
	t    *testing.T
	base string // http://host:port
	hc   *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func newUIClient(t *testing.T, base string) *uiClient {
	jar, _ := cookiejar.New(nil)
	return &uiClient{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// do sends a request; hdr adds headers. It returns the status and body,
// and keeps the page's CSRF token when it shows one.
func (c *uiClient) do(method, path, ctype string, body io.Reader, hdr map[string]string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return resp.StatusCode, "Location: " + loc + "\n" + string(b)
	}
	return resp.StatusCode, string(b)
}

func (c *uiClient) get(path string) (int, string) { return c.do("GET", path, "", nil, nil) }

func (c *uiClient) post(path string, form url.Values, hdr map[string]string) (int, string) {
	return c.do("POST", path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), hdr)
}

// login logs the client in with token.
func (c *uiClient) login(token string) {
	c.t.Helper()
	c.get("/ui/login")
	if code, body := c.post("/ui/login", url.Values{"csrf": {c.csrf}, "token": {token}, "next": {"/ui/"}}, nil); code != http.StatusSeeOther {
		c.t.Fatalf("log in: %d %s", code, body)
	}
	c.get("/ui/new") // the new session's CSRF token
}

// multipartForm builds a create form with an uploaded file.
func multipartForm(t *testing.T, fields map[string]string, fileName string, file []byte) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if fileName != "" {
		w, err := mw.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(file)
	}
	mw.Close()
	return mw.FormDataContentType(), &buf
}

// TestDashboardHostileInput sends the dashboard and the status endpoint
// what a hostile page or a careless user would: no session, a wrong
// token, missing or wrong CSRF tokens, cross-origin writes, a rebound
// Host, oversized uploads, path traversal in the code view, bad invoke
// input. Each is refused with a clear answer and nothing is stored.
func TestDashboardHostileInput(t *testing.T) {
	const token = "hostile-test-token-0123456789"
	p := startPlatform(t, "", "--token", token)
	p.cliEnv = append(p.cliEnv, "ISOTOPE_TOKEN="+token)
	twoFunctions(t, p)

	anon := newUIClient(t, p.api)
	// No session: pages send to the login form, writes are refused.
	if code, body := anon.get("/ui/"); code != http.StatusSeeOther || !strings.Contains(body, "Location: /ui/login?next=%2Fui%2F") {
		t.Errorf("GET /ui/ without a session: %d %s", code, body)
	}
	if code, _ := anon.post("/ui/new", url.Values{"name": {"x"}}, nil); code != http.StatusUnauthorized {
		t.Errorf("POST /ui/new without a session: %d", code)
	}
	// A wrong token, or a login without the form's CSRF token, logs no one in.
	anon.get("/ui/login")
	if code, body := anon.post("/ui/login", url.Values{"csrf": {anon.csrf}, "token": {"wrong"}}, nil); code != http.StatusUnauthorized || !strings.Contains(body, "wrong token") {
		t.Errorf("log in with a wrong token: %d %s", code, body)
	}
	if code, _ := anon.post("/ui/login", url.Values{"token": {token}}, nil); code != http.StatusForbidden {
		t.Errorf("log in without the CSRF token: %d", code)
	}
	if code, _ := anon.get("/ui/environments"); code != http.StatusSeeOther {
		t.Errorf("after failed logins, GET /ui/environments: %d", code)
	}
	// An open redirect after login stays on the dashboard.
	c := newUIClient(t, p.api)
	c.get("/ui/login")
	if code, body := c.post("/ui/login", url.Values{"csrf": {c.csrf}, "token": {token}, "next": {"//evil.example/x"}}, nil); code != http.StatusSeeOther || !strings.Contains(body, "Location: /ui/\n") {
		t.Errorf("login with next=//evil.example: %d %s", code, body)
	}
	c.get("/ui/new")

	create := url.Values{"name": {"made"}, "env": {"default/wasm"}, "code": {"package main"}, "filename": {"main.go"}}
	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for kk, vv := range v {
			out[kk] = vv
		}
		out.Set(k, val)
		return out
	}
	cases := []struct {
		name   string
		code   int
		send   func() (int, string)
		inBody string
	}{
		{"create without CSRF token", 403, func() (int, string) { return c.post("/ui/new", create, nil) }, "CSRF"},
		{"create with a wrong CSRF token", 403, func() (int, string) { return c.post("/ui/new", with(create, "csrf", strings.Repeat("0", 64)), nil) }, "CSRF"},
		{"create with CSRF in the header of another session", 403, func() (int, string) {
			return c.post("/ui/new", create, map[string]string{"X-CSRF-Token": anon.csrf})
		}, "CSRF"},
		{"create cross-origin", 403, func() (int, string) {
			return c.post("/ui/new", with(create, "csrf", c.csrf), map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
		}, "cross-origin POST refused"},
		{"page through a rebound name", 403, func() (int, string) {
			return c.do("GET", "/ui/", "", nil, map[string]string{"Host": "evil.example"})
		}, `Host \"evil.example\" is not allowed`},
		{"form over 1 MiB", 413, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.csrf, "name": "big", "env": "default/wasm"}, "big.go", bytes.Repeat([]byte("a"), 2<<20))
			return c.do("POST", "/ui/new", ct, body, nil)
		}, "larger than 1 MiB"},
		{"upload over the literal archive limit", 413, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.csrf, "name": "big", "env": "default/wasm"}, "big.go", bytes.Repeat([]byte("a"), 300<<10))
			return c.do("POST", "/ui/new", ct, body, nil)
		}, "file big.go is larger than 256 KiB"},
		{"upload that says zip but is not", 400, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.csrf, "name": "notzip", "env": "default/wasm"}, "src.zip", []byte("not a zip"))
			return c.do("POST", "/ui/new", ct, body, nil)
		}, "file src.zip: not a zip archive"},
		{"upload named with a path", 400, func() (int, string) {
			return c.post("/ui/new", with(with(create, "csrf", c.csrf), "filename", "../../etc/cron.d/x"), nil)
		}, "give a plain file name"},
		{"create in an unknown environment", 400, func() (int, string) {
			return c.post("/ui/new", with(with(create, "csrf", c.csrf), "env", "default/nope"), nil)
		}, "environment &#34;default/nope&#34;"},
		{"create with a bad name", 400, func() (int, string) {
			return c.post("/ui/new", with(with(create, "csrf", c.csrf), "name", "Bad_Name"), nil)
		}, "name &#34;Bad_Name&#34;"},
		{"create over an existing function", 409, func() (int, string) {
			return c.post("/ui/new", with(with(create, "csrf", c.csrf), "name", "ok"), nil)
		}, "already exists"},
		{"code view: traversal in ?file", 404, func() (int, string) { return c.get("/ui/functions/default/ok?file=../../../../etc/passwd") }, "no file"},
		{"code view: absolute ?file", 404, func() (int, string) { return c.get("/ui/functions/default/ok?file=%2Fetc%2Fpasswd") }, "no file"},
		{"function name with traversal", 400, func() (int, string) { return c.get("/ui/functions/default/..%2F..%2Fetc") }, "name"},
		{"namespace that is no name", 400, func() (int, string) { return c.get("/ui/functions/Default_/ok/logs") }, "namespace"},
		{"static file traversal", 404, func() (int, string) { return c.get("/ui/static/..%2f..%2fdashboard.go") }, ""},
		{"unknown function", 404, func() (int, string) { return c.get("/ui/functions/default/nope") }, "not found"},
		{"invoke with a bad method", 400, func() (int, string) {
			return c.post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.csrf}, "method": {"G ET"}, "path": {"/"}}, nil)
		}, "method &#34;G ET&#34;"},
		{"invoke with .. in the path", 400, func() (int, string) {
			return c.post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.csrf}, "method": {"GET"}, "path": {"/../../metrics"}}, nil)
		}, "no spaces, fragments or .. segments"},
		{"invoke with a bad header line", 400, func() (int, string) {
			return c.post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.csrf}, "method": {"GET"}, "path": {"/"}, "headers": {"no colon here"}}, nil)
		}, "headers, line 1"},
		{"invoke without CSRF", 403, func() (int, string) {
			return c.post("/ui/functions/default/ok/invoke", url.Values{"method": {"GET"}, "path": {"/"}}, nil)
		}, "CSRF"},
		{"rebuild a package with no source", 400, func() (int, string) {
			return c.post("/ui/packages/default/"+pkgOf(t, p, "ok")+"/rebuild", url.Values{"csrf": {c.csrf}}, nil)
		}, "no source archive"},
		{"rebuild without CSRF", 403, func() (int, string) {
			return c.post("/ui/packages/default/"+pkgOf(t, p, "ok")+"/rebuild", url.Values{}, nil)
		}, "CSRF"},
	}
	for _, tc := range cases {
		code, body := tc.send()
		if code != tc.code || !strings.Contains(body, tc.inBody) {
			if len(body) > 600 {
				body = body[:600] + "…"
			}
			t.Errorf("%s: %d, want %d with %q:\n%s", tc.name, code, tc.code, tc.inBody, body)
		}
	}
	if out := p.ok("fn", "list"); strings.Contains(out, "made") || strings.Contains(out, "big") || strings.Contains(out, "notzip") {
		t.Errorf("a refused form stored a function:\n%s", out)
	}
	if out := p.ok("pkg", "list"); strings.Count(out, "\n") != 3 {
		t.Errorf("a refused form stored a package:\n%s", out)
	}

	// What a logged-in user may do works: invoke shows the answer.
	if code, body := c.post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.csrf}, "method": {"GET"}, "path": {"/"}, "headers": {"X-Test: 1"}}, nil); code != 200 || !strings.Contains(body, "200 OK") || !strings.Contains(body, "hello") {
		t.Errorf("invoke: %d\n%s", code, body)
	}
	// Logging out ends the session for good.
	if code, _ := c.post("/ui/logout", url.Values{"csrf": {c.csrf}}, nil); code != http.StatusSeeOther {
		t.Errorf("log out: %d", code)
	}
	if code, _ := c.get("/ui/"); code != http.StatusSeeOther {
		t.Errorf("after log out, GET /ui/: %d", code)
	}

	// The status endpoint takes the API token, GET only, a valid namespace.
	status := func(method, path, tok string, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest(method, p.api+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, path, tok string
		hdr                     map[string]string
		code                    int
		inBody                  string
	}{
		{"no token", "GET", "/v2/status", "", nil, 401, "ISOTOPE_TOKEN"},
		{"bad token", "GET", "/v2/status", "wrong", nil, 401, "ISOTOPE_TOKEN"},
		{"bad namespace", "GET", "/v2/status?namespace=Not_A_Name", token, nil, 400, `query parameter "namespace"`},
		{"bad minutes", "GET", "/v2/status?minutes=maybe", token, nil, 400, `query parameter "minutes"`},
		{"POST", "POST", "/v2/status", token, nil, 405, "use GET"},
		{"rebound Host", "GET", "/v2/status", token, map[string]string{"Host": "evil.example"}, 403, "not allowed"},
		{"good", "GET", "/v2/status?namespace=default&minutes=true", token, nil, 200, `"minutes":[`},
	} {
		if code, body := status(tc.method, tc.path, tc.tok, tc.hdr); code != tc.code || !strings.Contains(body, tc.inBody) {
			t.Errorf("status %s: %d %s, want %d with %q", tc.name, code, body, tc.code, tc.inBody)
		}
	}
	// The router's stats are an admin path: not through a rebound name.
	req, _ := http.NewRequest("GET", p.router+"/_stats", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("router /_stats with Host evil.example: %s", resp.Status)
	}
	if r := p.run("status", "--token", "x"); r.code != 1 {
		t.Errorf("status with an unknown flag value: %s", r)
	}
}

// pkgOf is the package of function fn.
func pkgOf(t *testing.T, p *platform, fn string) string {
	t.Helper()
	var rep statusReport
	if err := json.Unmarshal([]byte(p.ok("status", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Functions {
		if f.Name == fn {
			return f.Package
		}
	}
	t.Fatalf("function %s has no package", fn)
	return ""
}
