// Package uitest is a browser-like HTTP client of the dashboard for
// tests: it keeps cookies, remembers the CSRF token of the last page
// that showed one, and does not follow redirects, so tests see where
// the dashboard sends them.
package uitest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Client is one browser session against the dashboard at Base.
type Client struct {
	t    testing.TB
	Base string // http://host:port
	hc   *http.Client
	// CSRF is the form token of the last page that showed one.
	CSRF string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// New returns a session with an empty cookie jar.
func New(t testing.TB, base string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{t: t, Base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Do sends a request; hdr adds headers ("Host" sets the request's
// host). It returns the status and the body, the body preceded by a
// "Location: ..." line when the answer redirects.
func (c *Client) Do(method, path, ctype string, body io.Reader, hdr map[string]string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.Base+path, body)
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
	data, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(data); m != nil {
		c.CSRF = string(m[1])
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		return resp.StatusCode, "Location: " + loc + "\n" + string(data)
	}
	return resp.StatusCode, string(data)
}

// Get fetches a page.
func (c *Client) Get(path string) (int, string) { return c.Do("GET", path, "", nil, nil) }

// Post submits a form; hdr adds headers (nil for none).
func (c *Client) Post(path string, form url.Values, hdr map[string]string) (int, string) {
	return c.Do("POST", path, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), hdr)
}

// Login opens the login page (for its CSRF token) and submits token,
// returning the answer: 303 to /ui/ when the token is right.
func (c *Client) Login(token string) (int, string) {
	c.t.Helper()
	c.Get("/ui/login")
	return c.Post("/ui/login", url.Values{"csrf": {c.CSRF}, "token": {token}, "next": {"/ui/"}}, nil)
}
