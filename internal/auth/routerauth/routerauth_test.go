package routerauth

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type clock struct{ unix atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(c.unix.Load(), 0) }

// start serves a stand-in for the router (answers "function") behind the
// middleware on a real loopback listener.
func start(t *testing.T, opts Options) (*Auth, *httptest.Server) {
	t.Helper()
	if opts.Username == "" {
		opts.Username, opts.Password = "admin", "s3cret"
	}
	if opts.SigningKey == nil {
		opts.SigningKey = testKey
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "function")
	})))
	t.Cleanup(srv.Close)
	return a, srv
}

func login(t *testing.T, base, path, user, pass string) (int, TokenResponse, string) {
	t.Helper()
	b, _ := json.Marshal(LoginRequest{user, pass})
	resp, err := http.Post(base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var tr TokenResponse
	json.Unmarshal(raw, &tr)
	return resp.StatusCode, tr, string(raw)
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestLoginFlow(t *testing.T) {
	_, srv := start(t, Options{})
	code, tr, raw := login(t, srv.URL, DefaultLoginPath, "admin", "s3cret")
	if code != http.StatusCreated || tr.TokenType != "Bearer" || tr.AccessToken == "" {
		t.Fatalf("login = %d %s", code, raw)
	}
	// Fission's JSON names, exactly.
	var m map[string]any
	json.Unmarshal([]byte(raw), &m)
	if _, ok := m["accesstoken"]; !ok || len(m) != 2 {
		t.Fatalf("login body fields: %s", raw)
	}
	if code, body := get(t, srv.URL+"/hello", "Bearer "+tr.AccessToken); code != 200 || body != "function" {
		t.Fatalf("with token = %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/hello", "bearer "+tr.AccessToken); code != 200 {
		t.Fatalf("scheme is case-insensitive, got %d", code)
	}
	// The token is an HS256 JWT from issuer "isotope" expiring in 120 s.
	claims := jwt.RegisteredClaims{}
	tok, err := jwt.ParseWithClaims(tr.AccessToken, &claims, func(*jwt.Token) (any, error) { return testKey, nil })
	if err != nil || tok.Method.Alg() != "HS256" || claims.Issuer != "isotope" || claims.Subject != "admin" {
		t.Fatalf("token: %v %v %+v", err, tok.Method.Alg(), claims)
	}
	if d := claims.ExpiresAt.Sub(claims.IssuedAt.Time); d != 120*time.Second {
		t.Fatalf("expiry = %v", d)
	}
}

func TestRefusals(t *testing.T) {
	_, srv := start(t, Options{})
	if code, msg := get(t, srv.URL+"/hello", ""); code != 401 || !strings.Contains(msg, DefaultLoginPath) {
		t.Fatalf("no token = %d %q", code, msg)
	}
	if code, _ := get(t, srv.URL+"/hello", "Basic YWRtaW46czNjcmV0"); code != 401 {
		t.Fatalf("basic auth = %d", code)
	}
	if code, _ := get(t, srv.URL+"/hello", "Bearer not.a.jwt"); code != 401 {
		t.Fatalf("garbage = %d", code)
	}
	if code, _ := get(t, srv.URL+HealthzPath, ""); code != 200 {
		t.Fatalf("%s must stay open, got %d", HealthzPath, code)
	}
	if code, _, _ := login(t, srv.URL, DefaultLoginPath, "admin", "wrong"); code != 401 {
		t.Fatalf("wrong password = %d", code)
	}
	if code, _, _ := login(t, srv.URL, DefaultLoginPath, "root", "s3cret"); code != 401 {
		t.Fatalf("wrong user = %d", code)
	}
	if code, _ := get(t, srv.URL+DefaultLoginPath, ""); code != 405 {
		t.Fatalf("GET login = %d", code)
	}
	resp, err := http.Post(srv.URL+DefaultLoginPath, "application/json", strings.NewReader("{bad"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad JSON = %d", resp.StatusCode)
	}
}

// forge signs claims with key and method, as an attacker would.
func forge(t *testing.T, m jwt.SigningMethod, key any, c jwt.RegisteredClaims) string {
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForgedAndExpiredTokens(t *testing.T) {
	var clk clock
	clk.unix.Store(time.Now().Unix())
	a, srv := start(t, Options{Now: clk.now})
	good := jwt.RegisteredClaims{Issuer: Issuer, Subject: "admin", ExpiresAt: jwt.NewNumericDate(clk.now().Add(time.Minute))}
	for name, tok := range map[string]string{
		"other key":  forge(t, jwt.SigningMethodHS256, []byte("another-key-another-key-another-k"), good),
		"HS512":      forge(t, jwt.SigningMethodHS512, testKey, good),
		"alg none":   forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
		"issuer":     forge(t, jwt.SigningMethodHS256, testKey, jwt.RegisteredClaims{Issuer: "fission", ExpiresAt: good.ExpiresAt}),
		"no expiry":  forge(t, jwt.SigningMethodHS256, testKey, jwt.RegisteredClaims{Issuer: Issuer}),
		"truncated":  forge(t, jwt.SigningMethodHS256, testKey, good)[:40],
		"empty sig.": strings.TrimRight(forge(t, jwt.SigningMethodHS256, testKey, good), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
	} {
		if code, _ := get(t, srv.URL+"/hello", "Bearer "+tok); code != 401 {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if code, _ := get(t, srv.URL+"/hello", "Bearer "+forge(t, jwt.SigningMethodHS256, testKey, good)); code != 200 {
		t.Fatalf("a correctly signed token = %d", code)
	}
	tok, _ := a.Issue()
	clk.unix.Add(119)
	if code, _ := get(t, srv.URL+"/hello", "Bearer "+tok); code != 200 {
		t.Fatalf("at 119 s = %d", code)
	}
	clk.unix.Add(2)
	if code, msg := get(t, srv.URL+"/hello", "Bearer "+tok); code != 401 || !strings.Contains(msg, "expired") {
		t.Fatalf("at 121 s = %d %q", code, msg)
	}
}

func TestOptions(t *testing.T) {
	a, srv := start(t, Options{LoginPath: "/custom/login", Expiry: time.Hour, StaticTokens: []string{"api-token"}})
	if code, tr, _ := login(t, srv.URL, "/custom/login", "admin", "s3cret"); code != 201 || tr.AccessToken == "" {
		t.Fatalf("custom login path = %d", code)
	}
	if code, _ := get(t, srv.URL+"/auth/login", ""); code != 401 {
		t.Fatalf("the default login path is an ordinary route then, got %d", code)
	}
	if code, _ := get(t, srv.URL+"/x", "Bearer api-token"); code != 200 {
		t.Fatalf("static token = %d", code)
	}
	if code, _ := get(t, srv.URL+"/x", "Bearer api-tokeN"); code != 401 {
		t.Fatalf("near-static token = %d", code)
	}
	// The platform's own caller (the timer) gets tokens from Transport.
	c := &http.Client{Transport: a.Transport(nil)}
	for range 2 {
		resp, err := c.Get(srv.URL + "/timer-target")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("through Transport = %d", resp.StatusCode)
		}
	}
	for name, o := range map[string]Options{
		"no user":    {Password: "p", SigningKey: testKey},
		"no pass":    {Username: "u", SigningKey: testKey},
		"short key":  {Username: "u", Password: "p", SigningKey: []byte("short")},
		"login path": {Username: "u", Password: "p", LoginPath: "auth"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	// A nil key is generated: two Auths do not accept each other's tokens.
	a1, _ := New(Options{Username: "u", Password: "p"})
	a2, _ := New(Options{Username: "u", Password: "p"})
	tok, _ := a1.Issue()
	if a1.Check(tok) != nil || a2.Check(tok) == nil {
		t.Fatal("generated keys must differ")
	}
}
