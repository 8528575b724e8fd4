package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// runRouterCLI runs the CLI with --router pointed at url.
func runRouterCLI(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"--router", url}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func TestFnTestCallsTheInternalRoute(t *testing.T) {
	type seen struct {
		method, path, query, body, hdr string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Get("X-Test")}
		if strings.HasSuffix(r.URL.Path, "/busy") {
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "hello from the function\n")
	}))
	defer srv.Close()

	out, err := runRouterCLI(t, srv.URL, "fn", "test", "--name", "hello", "-n", "team",
		"--method", "post", "--header", "X-Test: yes", "--body", "payload",
		"--query", "a=1", "--query", "b=two words", "--subpath", "items/7")
	if err != nil {
		t.Fatalf("fn test: %v", err)
	}
	if out != "hello from the function\n" {
		t.Errorf("stdout %q", out)
	}
	s := <-got
	want := seen{"POST", "/fission-function/team/hello/items/7", "a=1&b=two+words", "payload", "yes"}
	if s != want {
		t.Errorf("router saw %+v, want %+v", s, want)
	}

	out, err = runRouterCLI(t, srv.URL, "fn", "test", "--name", "hello", "--subpath", "/busy")
	<-got
	var ee *exitError
	if !errors.As(err, &ee) || ee.code == 0 || !strings.Contains(ee.msg, "429") {
		t.Fatalf("429 answer: err %v, want a non-zero exit naming 429", err)
	}
	if !strings.Contains(out, "too many requests") {
		t.Errorf("error body not printed: %q", out)
	}

	for _, bad := range [][]string{
		{"fn", "test"},
		{"fn", "test", "--name", "x", "--header", "nocolon"},
		{"fn", "test", "--name", "x", "--query", "novalue"},
	} {
		if _, err := runRouterCLI(t, srv.URL, bad...); err == nil {
			t.Errorf("%v: succeeded, want an error", bad)
		}
	}
}

func TestFnTestUnreachableRouter(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := runRouterCLI(t, url, "fn", "test", "--name", "x")
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Isotope router at "+url) {
		t.Fatalf("err %v, want one naming the router URL", err)
	}
}

func TestTimerShowSchedule(t *testing.T) {
	out, err := runRouterCLI(t, "http://127.0.0.1:1", "timer", "showschedule", "--cron", "@every 1m", "--round", "3")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "Current Server Time:") || !strings.HasPrefix(lines[3], "Next 3 invocation:") {
		t.Fatalf("output %q", out)
	}
	if _, err := runRouterCLI(t, "http://127.0.0.1:1", "timer", "showschedule", "--cron", "99 * * * *"); err == nil || !strings.Contains(err.Error(), "--cron") {
		t.Fatalf("bad cron: %v, want an error naming --cron", err)
	}
}
