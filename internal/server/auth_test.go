package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/auth/routerauth"
	"isotope.dev/isotope/internal/auth/token"
)

// startServer runs a real embedded server on loopback ports until the
// test ends and waits for its API to answer.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.APIAddr, cfg.RouterAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Addrs().API + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API did not become healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status sends method url with an optional bearer token.
func status(t *testing.T, c *http.Client, method, url, bearer string, body io.Reader) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestExplicitTokenGuardsTheAPI(t *testing.T) {
	s := startServer(t, Config{Token: "explicit-token"})
	api := "http://" + s.Addrs().API
	for _, p := range []string{"/apis/isotope.dev/v1/namespaces/default/functions", "/v1/archive", "/v1/logs", "/v1/buildlogs"} {
		if code := status(t, nil, "GET", api+p, "", nil); code != 401 {
			t.Errorf("GET %s without the token = %d, want 401", p, code)
		}
		if code := status(t, nil, "GET", api+p, "wrong", nil); code != 401 {
			t.Errorf("GET %s with a wrong token = %d, want 401", p, code)
		}
	}
	if code := status(t, nil, "GET", api+"/apis/isotope.dev/v1/namespaces/default/functions", "explicit-token", nil); code != 200 {
		t.Errorf("with the token = %d", code)
	}
	if code := status(t, nil, "GET", api+"/healthz", "", nil); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	// An explicit token is not written to the data dir.
	if _, err := os.Stat(filepath.Join(s.cfg.DataDir, token.FileName)); !os.IsNotExist(err) {
		t.Errorf("token file: %v", err)
	}
	// The router is the public data plane: the API token is not asked for.
	if code := status(t, nil, "GET", "http://"+s.Addrs().Router+"/router-healthz", "", nil); code != 200 {
		t.Errorf("router health = %d", code)
	}
}

func TestLoopbackNeedsNoToken(t *testing.T) {
	s := startServer(t, Config{})
	if s.Token() != "" {
		t.Fatalf("a loopback API got token %q", s.Token())
	}
	if code := status(t, nil, "GET", "http://"+s.Addrs().API+"/apis/isotope.dev/v1/namespaces/default/functions", "", nil); code != 200 {
		t.Fatalf("loopback API without token = %d", code)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.DataDir, token.FileName)); !os.IsNotExist(err) {
		t.Errorf("token file on loopback: %v", err)
	}
}

// TestNonLoopbackGeneratesToken drives the decision with the address a
// listener on every interface reports, without opening one in a test.
func TestNonLoopbackGeneratesToken(t *testing.T) {
	dir := t.TempDir()
	newS := func(cfg Config) (*Server, *bytes.Buffer) {
		var out bytes.Buffer
		cfg.DataDir, cfg.Stderr = dir, &out
		return &Server{cfg: cfg, log: slog.New(slog.DiscardHandler)}, &out
	}
	s, out := newS(Config{})
	if err := s.resolveToken("[::]:8889"); err != nil {
		t.Fatal(err)
	}
	tok := s.Token()
	if len(tok) != 64 || !strings.Contains(out.String(), "export ISOTOPE_TOKEN="+tok) {
		t.Fatalf("first start: token %q, notice %q", tok, out.String())
	}
	s, out = newS(Config{})
	if err := s.resolveToken("0.0.0.0:8889"); err != nil {
		t.Fatal(err)
	}
	if s.Token() != tok || out.Len() != 0 {
		t.Fatalf("second start: token %q (want the first), notice %q (want none)", s.Token(), out.String())
	}
	s, out = newS(Config{Token: "mine"})
	if err := s.resolveToken("0.0.0.0:8889"); err != nil || s.Token() != "mine" || out.Len() != 0 {
		t.Fatalf("explicit token must win: %q %v", s.Token(), err)
	}
	s, _ = newS(Config{})
	if err := s.resolveToken("127.0.0.1:8889"); err != nil || s.Token() != "" {
		t.Fatalf("loopback must ignore the token file: %q %v", s.Token(), err)
	}
}

func TestRouterAuth(t *testing.T) {
	s := startServer(t, Config{Token: "api-token", RouterAuth: &routerauth.Options{Username: "u", Password: "p"}})
	router := "http://" + s.Addrs().Router
	if code := status(t, nil, "GET", router+"/router-healthz", "", nil); code != 200 {
		t.Fatalf("/router-healthz = %d", code)
	}
	if code := status(t, nil, "GET", router+"/anything", "", nil); code != 401 {
		t.Fatalf("router without a token = %d", code)
	}
	b, _ := json.Marshal(routerauth.LoginRequest{Username: "u", Password: "p"})
	resp, err := http.Post(router+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var tr routerauth.TokenResponse
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 201 || tr.AccessToken == "" {
		t.Fatalf("login = %d", resp.StatusCode)
	}
	// Past the middleware: no function there, so the router's own 404.
	for name, bearer := range map[string]string{"JWT": tr.AccessToken, "API token": "api-token"} {
		if code := status(t, nil, "GET", router+"/anything", bearer, nil); code != 404 {
			t.Errorf("with the %s = %d, want the router's 404", name, code)
		}
	}
	if code := status(t, s.timerClient(), "GET", router+"/anything", "", nil); code != 404 {
		t.Errorf("the timer's client = %d, want 404", code)
	}
}
