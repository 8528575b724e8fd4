package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// TestCanary drives two canary releases through the real binary, with
// traffic on both routes throughout: one whose new function answers
// well reaches 100% and "succeeded"; one whose new function answers 500
// is rolled back to the old function and marked "failed".
func TestCanary(t *testing.T) {
	reactor, err := wasmtest.BuildReactor()
	if err != nil {
		t.Fatalf("build reactor module: %v", err)
	}
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	// v1 answers "hello"; v2 and v3 echo the request as JSON, with the status
	// the query asks for.
	p.ok("fn", "create", "--name", "v1", "--env", "wasm", "--deploy", reactor, "--entrypoint", "Hello")
	p.ok("fn", "create", "--name", "v2", "--env", "wasm", "--deploy", reactor, "--entrypoint", "Handler")
	// A function's failure rate counts all its requests, whatever the
	// route: the failing canary gets a function of its own.
	p.ok("fn", "create", "--name", "v3", "--env", "wasm", "--deploy", reactor, "--entrypoint", "Handler")
	p.ok("route", "create", "--name", "good", "--url", "/good", "--function", "v1", "--weight", "100", "--function", "v2", "--weight", "0")
	p.ok("route", "create", "--name", "bad", "--url", "/bad", "--function", "v1")
	p.waitServes(t, "/good", 200)
	p.waitServes(t, "/bad", 200)

	// Hostile input and typos first: nothing is created.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "nope", "--newfunction", "v2", "--oldfunction", "v1"}, "--httptrigger: route 'nope' not found"},
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "good", "--newfunction", "v9", "--oldfunction", "v1"}, "--newfunction: function 'v9' not found"},
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "good", "--newfunction", "v2", "--oldfunction", "v1", "--increment-interval", "soon"}, "spec.duration"},
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "good", "--newfunction", "v2", "--oldfunction", "v1", "--increment-step", "0"}, "--increment-step 0: must be between 1 and 100"},
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "good", "--newfunction", "v2", "--oldfunction", "v1", "--failure-threshold", "101"}, "spec.failurethreshold"},
		{[]string{"canary", "create", "--name", "c", "--httptrigger", "good", "--newfunction", "v1", "--oldfunction", "v1"}, "spec.newfunction"},
		{[]string{"canary", "craete"}, `did you mean "create"?`},
		{[]string{"canary", "create", "--name", "c", "--htttrigger", "good"}, "did you mean --httptrigger?"},
	} {
		if errOut := p.fails(tc.args...); !strings.Contains(errOut, tc.want) {
			t.Errorf("isotope %s: %s, want %q", strings.Join(tc.args, " "), errOut, tc.want)
		}
	}
	if out := p.ok("canary", "list"); strings.Contains(out, "\nc ") {
		t.Fatalf("a refused canary was stored:\n%s", out)
	}

	// Traffic on both routes until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, path := range []string{"/good", "/bad?status=500"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", p.router+path, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				select {
				case <-ctx.Done():
				case <-time.After(5 * time.Millisecond): // pace the load, not a wait for an event
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()

	p.ok("canary", "create", "--name", "up", "--httptrigger", "good", "--newfunction", "v2", "--oldfunction", "v1",
		"--increment-step", "50", "--increment-interval", "1s", "--failure-threshold", "10")
	p.ok("canary", "create", "--name", "down", "--httptrigger", "bad", "--newfunction", "v3", "--oldfunction", "v1",
		"--increment-step", "30", "--increment-interval", "1s", "--failure-threshold", "10")

	status := func(name string) string {
		out := p.ok("canary", "get", "--name", name)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Status:" {
				return f[1]
			}
		}
		return ""
	}
	waitFor(t, 60*time.Second, "canary 'up' to succeed", func() error {
		if s := status("up"); s != "succeeded" {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	route := p.ok("route", "get", "--name", "good", "-o", "yaml")
	if !strings.Contains(route, "v2: 100") || !strings.Contains(route, "v1: 0") {
		t.Errorf("route after success:\n%s", route)
	}
	for range 20 {
		if code, body := p.get(t, "GET", "/good", nil); code != 200 || !strings.HasPrefix(body, "{") {
			t.Fatalf("after success a request reached v1 or failed: %d %q", code, body)
		}
	}

	waitFor(t, 60*time.Second, "canary 'down' to fail", func() error {
		if s := status("down"); s != "failed" {
			return fmt.Errorf("status %q", s)
		}
		return nil
	})
	route = p.ok("route", "get", "--name", "bad", "-o", "yaml")
	if !strings.Contains(route, "v1: 100") || !strings.Contains(route, "v3: 0") {
		t.Errorf("route after rollback:\n%s", route)
	}
	for range 20 {
		if code, body := p.get(t, "GET", "/bad?status=500", nil); code != 200 || body != "hello" {
			t.Fatalf("after rollback a request reached v3: %d %q", code, body)
		}
	}
	if out := p.ok("canary", "list"); !strings.Contains(out, "succeeded") || !strings.Contains(out, "failed") {
		t.Errorf("canary list:\n%s", out)
	}
	p.ok("canary", "update", "--name", "up", "--increment-step", "10")
	p.ok("canary", "delete", "--name", "up")
	p.fails("canary", "get", "--name", "up")
}
