package hmac

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	secretA = Secrets{Current: []byte("master-secret-A")}
	secretB = Secrets{Current: []byte("master-secret-B")}
)

// echoServer is a real loopback server: the verifier for svc in front of
// a handler that answers the sha256 and length of the body it read.
func echoServer(t *testing.T, s Secrets, svc Service, opts VerifierOptions) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sum := sha256.Sum256(b)
		io.WriteString(w, hex.EncodeToString(sum[:])+" "+r.URL.RequestURI())
	})
	srv := httptest.NewServer(Verifier(s, svc, opts)(h))
	t.Cleanup(srv.Close)
	return srv
}

func client(rt http.RoundTripper) *http.Client { return &http.Client{Transport: rt} }

// call sends a request and returns the status and the body text.
func call(t *testing.T, c *http.Client, method, url string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sumHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestSignedRequestsAccepted(t *testing.T) {
	srv := echoServer(t, secretA, ServiceStoragesvc, VerifierOptions{})
	c := client(NewSigner(secretA, ServiceStoragesvc, nil))
	body := []byte("archive bytes")
	// bytes.Reader: GetBody is set, the body is hashed without buffering.
	code, got := call(t, c, "POST", srv.URL+"/v1/archive?id=%2Fa%2Fb", bytes.NewReader(body))
	if code != 200 || got != sumHex(body)+" /v1/archive?id=%2Fa%2Fb" {
		t.Fatalf("POST = %d %q", code, got)
	}
	// A reader without GetBody is spooled and replayed.
	code, got = call(t, c, "PUT", srv.URL+"/x", io.MultiReader(bytes.NewReader(body)))
	if code != 200 || !strings.HasPrefix(got, sumHex(body)) {
		t.Fatalf("PUT without GetBody = %d %q", code, got)
	}
	if code, _ := call(t, c, "GET", srv.URL+"/v1/archive", nil); code != 200 {
		t.Fatalf("bodiless GET = %d", code)
	}
	if code, _ := call(t, c, "DELETE", srv.URL+"/v1/archive?id=x", http.NoBody); code != 200 {
		t.Fatalf("DELETE with NoBody = %d", code)
	}
}

func TestUnsignedAndWrongRefused(t *testing.T) {
	srv := echoServer(t, secretA, ServiceStoragesvc, VerifierOptions{})
	code, msg := call(t, http.DefaultClient, "GET", srv.URL+"/v1/archive", nil)
	if code != 401 || !strings.Contains(msg, "not signed") || !strings.Contains(msg, EnvSecret) {
		t.Fatalf("unsigned = %d %q", code, msg)
	}
	// Another master secret.
	if code, msg := call(t, client(NewSigner(secretB, ServiceStoragesvc, nil)), "GET", srv.URL+"/v1/archive", nil); code != 401 || !strings.Contains(msg, "does not match") {
		t.Fatalf("wrong secret = %d %q", code, msg)
	}
	// Right secret, another channel's key.
	if code, _ := call(t, client(NewSigner(secretA, ServiceFetcher, nil)), "GET", srv.URL+"/v1/archive", nil); code != 401 {
		t.Fatalf("fetcher-signed request to storagesvc = %d", code)
	}
	// A garbage timestamp.
	req, _ := http.NewRequest("GET", srv.URL+"/v1/archive", nil)
	req.Header.Set(HeaderTimestamp, "yesterday")
	req.Header.Set(HeaderSignature, "00")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("bad timestamp = %d", resp.StatusCode)
	}
}

// tamper is a fake network in the middle: it changes signed requests
// before they reach the server.
type tamper struct {
	next http.RoundTripper
	edit func(*http.Request)
}

func (t tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	t.edit(r)
	return t.next.RoundTrip(r)
}

func TestTamperedRefused(t *testing.T) {
	srv := echoServer(t, secretA, ServiceBuilder, VerifierOptions{})
	for name, edit := range map[string]func(*http.Request){
		"body": func(r *http.Request) {
			r.Body, r.ContentLength, r.GetBody = io.NopCloser(strings.NewReader("evil")), 4, nil
		},
		"query":  func(r *http.Request) { r.URL.RawQuery = "name=other" },
		"path":   func(r *http.Request) { r.URL.Path = "/clean" },
		"method": func(r *http.Request) { r.Method = "DELETE" },
		"timestamp": func(r *http.Request) {
			r.Header.Set(HeaderTimestamp, "1")
		},
	} {
		c := client(&Signer{Key: DeriveKey(secretA.Current, ServiceBuilder), Next: tamper{http.DefaultTransport, edit}})
		if code, msg := call(t, c, "POST", srv.URL+"/?name=pkg", strings.NewReader("good")); code != 401 {
			t.Errorf("tampered %s = %d %q", name, code, msg)
		}
	}
}

// clock is a settable fake clock for the verifier.
type clock struct{ unix atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(c.unix.Load(), 0) }

// capture records the last request a client sent, headers included.
type capture struct {
	next http.RoundTripper
	last *http.Request
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	c.last = r
	return c.next.RoundTrip(r)
}

func TestReplayTooLateRefused(t *testing.T) {
	var clk clock
	clk.unix.Store(time.Now().Unix())
	srv := echoServer(t, secretA, ServiceExecutor, VerifierOptions{Now: clk.now})
	cap := &capture{next: http.DefaultTransport}
	c := client(&Signer{Key: DeriveKey(secretA.Current, ServiceExecutor), Next: cap, Now: clk.now})
	if code, _ := call(t, c, "POST", srv.URL+"/v2/tap", strings.NewReader("x")); code != 200 {
		t.Fatalf("signed = %d", code)
	}
	replay := func() (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+"/v2/tap", strings.NewReader("x"))
		req.Header = cap.last.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Within the window a replay passes: the documented limitation.
	clk.unix.Add(59)
	if code, _ := replay(); code != 200 {
		t.Fatalf("replay 59 s later = %d, want 200 (inside the skew window)", code)
	}
	clk.unix.Add(2)
	if code, msg := replay(); code != 401 || !strings.Contains(msg, "61 s away") {
		t.Fatalf("replay 61 s later = %d %q", code, msg)
	}
	// A caller whose clock runs 61 s ahead is refused too.
	clk.unix.Add(-61)
	ahead := client(&Signer{Key: DeriveKey(secretA.Current, ServiceExecutor), Now: func() time.Time { return clk.now().Add(61 * time.Second) }})
	if code, _ := call(t, ahead, "POST", srv.URL+"/v2/tap", nil); code != 401 {
		t.Fatalf("signed 61 s in the future = %d", code)
	}
}

func TestRotationWithOldSecret(t *testing.T) {
	rotating := Secrets{Current: secretB.Current, Old: secretA.Current}
	srv := echoServer(t, rotating, ServiceFetcher, VerifierOptions{})
	for name, s := range map[string]Secrets{"new": secretB, "old": secretA} {
		if code, msg := call(t, client(NewSigner(s, ServiceFetcher, nil)), "POST", srv.URL+"/fetch", strings.NewReader("{}")); code != 200 {
			t.Errorf("signed with the %s secret during rotation = %d %q", name, code, msg)
		}
	}
	if code, _ := call(t, client(NewSigner(Secrets{Current: []byte("third")}, ServiceFetcher, nil)), "POST", srv.URL+"/fetch", nil); code != 401 {
		t.Errorf("a third secret = %d", code)
	}
	// After the rotation the old secret is refused.
	done := echoServer(t, secretB, ServiceFetcher, VerifierOptions{})
	if code, _ := call(t, client(NewSigner(secretA, ServiceFetcher, nil)), "POST", done.URL+"/fetch", nil); code != 401 {
		t.Errorf("old secret after rotation = %d", code)
	}
}

func TestExemptPaths(t *testing.T) {
	srv := echoServer(t, secretA, ServiceFetcher, VerifierOptions{})
	for _, p := range []string{"/healthz", "/metrics", "/readiness-healthz"} {
		if code, _ := call(t, http.DefaultClient, "GET", srv.URL+p, nil); code != 200 {
			t.Errorf("unsigned %s = %d", p, code)
		}
	}
	if code, _ := call(t, http.DefaultClient, "GET", srv.URL+"/healthz/x", nil); code != 401 {
		t.Errorf("exemption must be exact, /healthz/x = %d", code)
	}
	prot := echoServer(t, secretA, ServiceRuntime, VerifierOptions{Protect: func(r *http.Request) bool { return r.URL.Path == "/specialize" }})
	if code, _ := call(t, http.DefaultClient, "GET", prot.URL+"/function-traffic", nil); code != 200 {
		t.Errorf("unprotected path = %d", code)
	}
	if code, _ := call(t, http.DefaultClient, "POST", prot.URL+"/specialize", nil); code != 401 {
		t.Errorf("protected path unsigned = %d", code)
	}
}

func TestBodyCap(t *testing.T) {
	srv := echoServer(t, secretA, ServiceRouterInternal, VerifierOptions{MaxBody: 1024, MemBody: 100})
	c := client(NewSigner(secretA, ServiceRouterInternal, nil))
	big := bytes.Repeat([]byte("x"), 2048)
	if code, msg := call(t, c, "POST", srv.URL+"/f", bytes.NewReader(big)); code != 413 || !strings.Contains(msg, "1024") {
		t.Fatalf("declared 2 KiB body = %d %q", code, msg)
	}
	// Chunked, no Content-Length: cut off while reading.
	if code, _ := call(t, c, "POST", srv.URL+"/f", io.MultiReader(bytes.NewReader(big))); code != 413 {
		t.Fatalf("chunked 2 KiB body = %d", code)
	}
	// Exactly at the cap, spilled past MemBody to a file, passes intact.
	ok := bytes.Repeat([]byte("y"), 1024)
	if code, got := call(t, c, "POST", srv.URL+"/f", io.MultiReader(bytes.NewReader(ok))); code != 200 || !strings.HasPrefix(got, sumHex(ok)) {
		t.Fatalf("1 KiB body = %d %q", code, got)
	}
	// The signer refuses to sign over its own cap, sending nothing.
	small := client(&Signer{Key: DeriveKey(secretA.Current, ServiceRouterInternal), MaxBody: 10})
	req, _ := http.NewRequest("POST", srv.URL+"/f", bytes.NewReader(big))
	if _, err := small.Do(req); err == nil || !strings.Contains(err.Error(), "cannot be signed") {
		t.Fatalf("over the signer's cap: err = %v", err)
	}
}

// TestLargeBodySpills sends 3 MiB through signer and verifier whose
// memory thresholds are 64 KiB: both spill to a file and the handler
// still reads exactly the bytes sent.
func TestLargeBodySpills(t *testing.T) {
	srv := echoServer(t, secretA, ServiceStoragesvc, VerifierOptions{MemBody: 64 << 10})
	c := client(&Signer{Key: DeriveKey(secretA.Current, ServiceStoragesvc), MemBody: 64 << 10})
	body := make([]byte, 3<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	code, got := call(t, c, "POST", srv.URL+"/v1/archive", io.MultiReader(bytes.NewReader(body)))
	if code != 200 || !strings.HasPrefix(got, sumHex(body)) {
		t.Fatalf("3 MiB = %d %q", code, got)
	}
}

func TestSignerLeavesCallersRequestAlone(t *testing.T) {
	srv := echoServer(t, secretA, ServiceFetcher, VerifierOptions{})
	c := client(NewSigner(secretA, ServiceFetcher, nil))
	req, _ := http.NewRequest("POST", srv.URL+"/fetch", strings.NewReader("{}"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get(HeaderSignature) != "" || req.Header.Get(HeaderTimestamp) != "" {
		t.Fatal("the caller's request got auth headers")
	}
}

func TestMatchAndDisabled(t *testing.T) {
	srv := echoServer(t, secretA, ServiceStoragesvc, VerifierOptions{})
	cap := &capture{next: http.DefaultTransport}
	s := NewSigner(secretA, ServiceStoragesvc, cap)
	s.Match = func(r *http.Request) bool { return r.URL.Path == "/v1/archive" }
	if code, _ := call(t, client(s), "GET", srv.URL+"/elsewhere", nil); code != 401 || cap.last.Header.Get(HeaderSignature) != "" {
		t.Fatalf("a request Match refuses must go unsigned (code %d)", code)
	}
	if code, _ := call(t, client(s), "GET", srv.URL+"/v1/archive", nil); code != 200 {
		t.Fatalf("matched request = %d", code)
	}
	// Disabled on both ends: plain pass-through.
	open := echoServer(t, Secrets{}, ServiceStoragesvc, VerifierOptions{})
	if rt := Transport(Secrets{}, ServiceStoragesvc, cap); rt != cap {
		t.Fatal("Transport must not wrap when auth is disabled")
	}
	if code, _ := call(t, http.DefaultClient, "GET", open.URL+"/v1/archive", nil); code != 200 {
		t.Fatalf("disabled verifier = %d", code)
	}
}
