package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// get sends one request to the router and returns status and body.
func (p *platform) get(t *testing.T, method, path string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.router+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitServes polls a route until it answers want (routes and functions
// become visible to the router within milliseconds, builds take longer).
func (p *platform) waitServes(t *testing.T, path string, want int) string {
	t.Helper()
	var body string
	waitFor(t, 60*time.Second, "GET "+path+" to answer "+fmt.Sprint(want), func() error {
		code, b := p.get(t, "GET", path, nil)
		body = b
		if code != want {
			return fmt.Errorf("status %d: %.300s", code, b)
		}
		return nil
	})
	return body
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWAGIFunction serves a WebAssembly deploy archive with no builder:
// a Go net/http/cgi program compiled for wasip1.
func TestWAGIFunction(t *testing.T) {
	wagi, err := wasmtest.BuildWAGI()
	if err != nil {
		t.Fatalf("build WAGI module: %v", err)
	}
	dir := t.TempDir()
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/acme/isotope/wasm-env:1.0")
	p.ok("fn", "create", "--name", "wagi", "--env", "wasm", "--deploy", wagi, "--url", "/wagi/{id}", "--method", "POST")
	spin := writeFile(t, dir, "spin.wasm", wasmtest.Spin())
	p.ok("fn", "create", "--name", "spin", "--env", "wasm", "--deploy", spin, "--fntimeout", "1")

	var got struct {
		Method, Path, Query, Body string
		Headers                   map[string][]string
		Env                       map[string]string
	}
	waitFor(t, 60*time.Second, "WAGI function to answer", func() error {
		req, _ := http.NewRequest("POST", p.router+"/wagi/42?x=1", strings.NewReader("payload"))
		req.Header.Set("X-Custom", "v")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d: %s", resp.StatusCode, b)
		}
		if resp.Header.Get("X-Echo") != "yes" {
			return fmt.Errorf("response header X-Echo missing")
		}
		return json.Unmarshal(b, &got)
	})
	if got.Method != "POST" || got.Query != "x=1" || got.Body != "payload" {
		t.Errorf("WAGI request round trip: %+v", got)
	}
	if got.Headers["X-Custom"] == nil || got.Headers["X-Fission-Params-Id"] == nil || got.Headers["X-Fission-Params-Id"][0] != "42" {
		t.Errorf("headers: %v", got.Headers)
	}
	if got.Env["X_MATCHED_ROUTE"] == "" || !strings.Contains(got.Env["X_FULL_URL"], "/wagi/42") {
		t.Errorf("WAGI env: %v", got.Env)
	}

	// A runaway function answers 504 at its timeout; others keep serving.
	start := time.Now()
	code, _ := p.get(t, "GET", "/fission-function/spin", nil)
	if code != http.StatusGatewayTimeout {
		t.Errorf("runaway function answered %d, want 504", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("runaway function took %v to time out (fntimeout 1s)", d)
	}
	if code, _ := p.get(t, "POST", "/wagi/7", nil); code != 200 {
		t.Errorf("after a timeout elsewhere, the WAGI function answered %d", code)
	}

	// fn logs shows the function's stderr.
	out := p.ok("fn", "logs", "--name", "wagi")
	if !strings.Contains(out, "serving POST") {
		t.Errorf("fn logs lacks the function's stderr:\n%s", out)
	}

	// The requests are counted per function.
	resp, err := http.Get(p.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `isotope_router_requests_total{`) || !strings.Contains(string(metrics), `function="wagi"`) {
		t.Errorf("/metrics does not count the function's requests")
	}
}

// TestLocalProcessFunctionAndRouting serves a function from a local
// program that speaks Fission's environment protocol, and checks route
// matching: parameters, prefix, methods, host, 404.
func TestLocalProcessFunctionAndRouting(t *testing.T) {
	envserver := proctest.EnvServer(t)
	dir := t.TempDir()
	code := writeFile(t, dir, "greeting.txt", []byte("hello from a process"))
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "proc", "--image", "example.com/proc-env:1", "--runtime-command", envserver, "--poolsize", "1")
	p.ok("fn", "create", "--name", "greet", "--env", "proc", "--code", code)
	p.ok("route", "create", "--name", "param", "--function", "greet", "--url", "/users/{id}", "--method", "GET")
	p.ok("route", "create", "--name", "pre", "--function", "greet", "--prefix", "/static/", "--method", "GET")
	p.ok("route", "create", "--name", "hosted", "--function", "greet", "--url", "/only-host", "--method", "GET", "--host", "fn.example.com")

	if body := p.waitServes(t, "/users/7", 200); body != "hello from a process" {
		t.Errorf("process function answered %q", body)
	}
	if _, body := p.get(t, "GET", "/users/7?header=X-Fission-Params-Id", nil); body != "7" {
		t.Errorf("X-Fission-Params-Id = %q, want 7", body)
	}
	if code, body := p.get(t, "GET", "/static/css/site.css", nil); code != 200 || body != "hello from a process" {
		t.Errorf("prefix route: %d %q", code, body)
	}
	if code, _ := p.get(t, "POST", "/users/7", nil); code == 200 {
		t.Errorf("POST to a GET route answered 200")
	}
	// The router sees routes through a watch: the host route was created
	// last, so it may arrive after /users/7 already serves. Wait for it
	// before checking that it is refused without its host.
	waitFor(t, 10*time.Second, "the host route to serve with its host", func() error {
		if code, _ := p.get(t, "GET", "/only-host", map[string]string{"Host": "fn.example.com"}); code != 200 {
			return fmt.Errorf("host route with the host answered %d", code)
		}
		return nil
	})
	if code, _ := p.get(t, "GET", "/only-host", nil); code != 404 {
		t.Errorf("host route without the host answered %d, want 404", code)
	}
	if code, _ := p.get(t, "GET", "/no/such/route", nil); code != 404 {
		t.Errorf("unmatched path answered %d, want 404", code)
	}

	// fn test goes through the router's internal route.
	if out := p.ok("fn", "test", "--name", "greet"); !strings.Contains(out, "hello from a process") {
		t.Errorf("fn test printed %q", out)
	}

	// A timer fires within its second and reaches the function; its
	// stderr shows in fn logs.
	p.ok("timer", "create", "--name", "tick", "--function", "greet", "--cron", "@every 1s", "--subpath", "/?stderr=timer-fired")
	waitFor(t, 10*time.Second, "the timer's call in fn logs", func() error {
		out := p.ok("fn", "logs", "--name", "greet")
		if !strings.Contains(out, "timer-fired") {
			return fmt.Errorf("fn logs:\n%s", out)
		}
		return nil
	})
}
