package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"isotope.dev/isotope/internal/testing/uitest"
)

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

	anon := uitest.New(t, p.api)
	// No session: pages send to the login form, writes are refused.
	if code, body := anon.Get("/ui/"); code != http.StatusSeeOther || !strings.Contains(body, "Location: /ui/login?next=%2Fui%2F") {
		t.Errorf("GET /ui/ without a session: %d %s", code, body)
	}
	if code, _ := anon.Post("/ui/new", url.Values{"name": {"x"}}, nil); code != http.StatusUnauthorized {
		t.Errorf("POST /ui/new without a session: %d", code)
	}
	// A wrong token, or a login without the form's CSRF token, logs no one in.
	anon.Get("/ui/login")
	if code, body := anon.Post("/ui/login", url.Values{"csrf": {anon.CSRF}, "token": {"wrong"}}, nil); code != http.StatusUnauthorized || !strings.Contains(body, "wrong token") {
		t.Errorf("log in with a wrong token: %d %s", code, body)
	}
	if code, _ := anon.Post("/ui/login", url.Values{"token": {token}}, nil); code != http.StatusForbidden {
		t.Errorf("log in without the CSRF token: %d", code)
	}
	if code, _ := anon.Get("/ui/environments"); code != http.StatusSeeOther {
		t.Errorf("after failed logins, GET /ui/environments: %d", code)
	}
	// An open redirect after login stays on the dashboard.
	c := uitest.New(t, p.api)
	c.Get("/ui/login")
	if code, body := c.Post("/ui/login", url.Values{"csrf": {c.CSRF}, "token": {token}, "next": {"//evil.example/x"}}, nil); code != http.StatusSeeOther || !strings.Contains(body, "Location: /ui/\n") {
		t.Errorf("login with next=//evil.example: %d %s", code, body)
	}
	c.Get("/ui/new")

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
		{"create without CSRF token", 403, func() (int, string) { return c.Post("/ui/new", create, nil) }, "CSRF"},
		{"create with a wrong CSRF token", 403, func() (int, string) { return c.Post("/ui/new", with(create, "csrf", strings.Repeat("0", 64)), nil) }, "CSRF"},
		{"create with CSRF in the header of another session", 403, func() (int, string) {
			return c.Post("/ui/new", create, map[string]string{"X-CSRF-Token": anon.CSRF})
		}, "CSRF"},
		{"create cross-origin", 403, func() (int, string) {
			return c.Post("/ui/new", with(create, "csrf", c.CSRF), map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
		}, "cross-origin POST refused"},
		{"page through a rebound name", 403, func() (int, string) {
			return c.Do("GET", "/ui/", "", nil, map[string]string{"Host": "evil.example"})
		}, `Host \"evil.example\" is not allowed`},
		{"form over 1 MiB", 413, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.CSRF, "name": "big", "env": "default/wasm"}, "big.go", bytes.Repeat([]byte("a"), 2<<20))
			return c.Do("POST", "/ui/new", ct, body, nil)
		}, "larger than 1 MiB"},
		{"upload over the literal archive limit", 413, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.CSRF, "name": "big", "env": "default/wasm"}, "big.go", bytes.Repeat([]byte("a"), 300<<10))
			return c.Do("POST", "/ui/new", ct, body, nil)
		}, "file big.go is larger than 256 KiB"},
		{"upload that says zip but is not", 400, func() (int, string) {
			ct, body := multipartForm(t, map[string]string{"csrf": c.CSRF, "name": "notzip", "env": "default/wasm"}, "src.zip", []byte("not a zip"))
			return c.Do("POST", "/ui/new", ct, body, nil)
		}, "file src.zip: not a zip archive"},
		{"upload named with a path", 400, func() (int, string) {
			return c.Post("/ui/new", with(with(create, "csrf", c.CSRF), "filename", "../../etc/cron.d/x"), nil)
		}, "give a plain file name"},
		{"create in an unknown environment", 400, func() (int, string) {
			return c.Post("/ui/new", with(with(create, "csrf", c.CSRF), "env", "default/nope"), nil)
		}, "environment &#34;default/nope&#34;"},
		{"create with a bad name", 400, func() (int, string) {
			return c.Post("/ui/new", with(with(create, "csrf", c.CSRF), "name", "Bad_Name"), nil)
		}, "name &#34;Bad_Name&#34;"},
		{"create over an existing function", 409, func() (int, string) {
			return c.Post("/ui/new", with(with(create, "csrf", c.CSRF), "name", "ok"), nil)
		}, "already exists"},
		{"code view: traversal in ?file", 404, func() (int, string) { return c.Get("/ui/functions/default/ok?file=../../../../etc/passwd") }, "no file"},
		{"code view: absolute ?file", 404, func() (int, string) { return c.Get("/ui/functions/default/ok?file=%2Fetc%2Fpasswd") }, "no file"},
		{"function name with traversal", 400, func() (int, string) { return c.Get("/ui/functions/default/..%2F..%2Fetc") }, "name"},
		{"namespace that is no name", 400, func() (int, string) { return c.Get("/ui/functions/Default_/ok/logs") }, "namespace"},
		{"static file traversal", 404, func() (int, string) { return c.Get("/ui/static/..%2f..%2fdashboard.go") }, ""},
		{"unknown function", 404, func() (int, string) { return c.Get("/ui/functions/default/nope") }, "not found"},
		{"invoke with a bad method", 400, func() (int, string) {
			return c.Post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.CSRF}, "method": {"G ET"}, "path": {"/"}}, nil)
		}, "method &#34;G ET&#34;"},
		{"invoke with .. in the path", 400, func() (int, string) {
			return c.Post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.CSRF}, "method": {"GET"}, "path": {"/../../metrics"}}, nil)
		}, "no spaces, fragments or .. segments"},
		{"invoke with a bad header line", 400, func() (int, string) {
			return c.Post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.CSRF}, "method": {"GET"}, "path": {"/"}, "headers": {"no colon here"}}, nil)
		}, "headers, line 1"},
		{"invoke without CSRF", 403, func() (int, string) {
			return c.Post("/ui/functions/default/ok/invoke", url.Values{"method": {"GET"}, "path": {"/"}}, nil)
		}, "CSRF"},
		{"rebuild a package with no source", 400, func() (int, string) {
			return c.Post("/ui/packages/default/"+pkgOf(t, p, "ok")+"/rebuild", url.Values{"csrf": {c.CSRF}}, nil)
		}, "no source archive"},
		{"rebuild without CSRF", 403, func() (int, string) {
			return c.Post("/ui/packages/default/"+pkgOf(t, p, "ok")+"/rebuild", url.Values{}, nil)
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
	if code, body := c.Post("/ui/functions/default/ok/invoke", url.Values{"csrf": {c.CSRF}, "method": {"GET"}, "path": {"/"}, "headers": {"X-Test: 1"}}, nil); code != 200 || !strings.Contains(body, "200 OK") || !strings.Contains(body, "hello") {
		t.Errorf("invoke: %d\n%s", code, body)
	}
	// Logging out ends the session for good.
	if code, _ := c.Post("/ui/logout", url.Values{"csrf": {c.CSRF}}, nil); code != http.StatusSeeOther {
		t.Errorf("log out: %d", code)
	}
	if code, _ := c.Get("/ui/"); code != http.StatusSeeOther {
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
