package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// statusReport is the part of GET /v2/status (and `status -o json`) the
// tests read.
type statusReport struct {
	Functions []struct {
		Namespace, Name, Environment, ExecutorType, BuildStatus, Package string
		Routes                                                           []string
		Instances                                                        int
		Last5m, Last60m                                                  struct {
			Requests, Errors, ColdStarts int64
			P50ms, P99ms                 float64
		}
		LastError *struct {
			Code          int
			Message, Path string
		}
	}
}

// twoFunctions serves a WAGI module that answers and one that traps, on
// routes, and calls the first three times and the second twice.
func twoFunctions(t *testing.T, p *platform) {
	t.Helper()
	dir := t.TempDir()
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/acme/isotope/wasm-env:1.0")
	p.ok("fn", "create", "--name", "ok", "--env", "wasm", "--deploy", writeFile(t, dir, "hello.wasm", wasmtest.WAGIHello()), "--url", "/ok")
	p.ok("fn", "create", "--name", "bad", "--env", "wasm", "--deploy", writeFile(t, dir, "trap.wasm", wasmtest.Trap()), "--url", "/bad")
	call := func(path string, want int) {
		waitFor(t, 60*time.Second, "GET "+path, func() error {
			resp, err := http.Get(p.router + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				return fmt.Errorf("not routed yet")
			}
			if resp.StatusCode != want {
				t.Fatalf("GET %s: %s, want %d", path, resp.Status, want)
			}
			return nil
		})
	}
	for range 3 {
		call("/ok", 200)
	}
	for range 2 {
		call("/bad", 502)
	}
}

// TestStatusCommand drives `isotope status` (table, -o json, --watch)
// and `fn list -o wide` through the real binary.
func TestStatusCommand(t *testing.T) {
	p := startPlatform(t, "")
	twoFunctions(t, p)

	var rep statusReport
	if err := json.Unmarshal([]byte(p.ok("status", "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Functions) != 2 {
		t.Fatalf("status -o json has %d functions: %+v", len(rep.Functions), rep)
	}
	bad, ok := rep.Functions[0], rep.Functions[1]
	if ok.Name != "ok" || ok.Environment != "wasm" || ok.ExecutorType != "poolmgr" || strings.Join(ok.Routes, ",") != "GET /ok" ||
		ok.BuildStatus != "none" || ok.Last5m.Requests != 3 || ok.Last5m.Errors != 0 || ok.Last60m.Requests != 3 ||
		ok.Last5m.ColdStarts > 1 || ok.Last5m.P50ms <= 0 || ok.Last5m.P99ms < ok.Last5m.P50ms || ok.LastError != nil || ok.Instances < 1 {
		t.Errorf("ok: %+v", ok)
	}
	if bad.Name != "bad" || bad.Last5m.Requests != 2 || bad.Last5m.Errors != 2 || bad.LastError == nil ||
		bad.LastError.Code != 502 || bad.LastError.Path != "/bad" {
		t.Errorf("bad: %+v (last error %+v)", bad, bad.LastError)
	}

	table := p.ok("status")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAMESPACE") || !strings.Contains(lines[0], "REQ(5M)") || !strings.Contains(lines[0], "LAST ERROR") {
		t.Fatalf("status table:\n%s", table)
	}
	okRow, badRow := strings.Fields(lines[2]), strings.Fields(lines[1])
	// NAMESPACE NAME ENV EXECUTOR ROUTES(2 words) BUILD INSTANCES REQ ERR ...
	if okRow[1] != "ok" || okRow[4] != "GET" || okRow[5] != "/ok" || okRow[6] != "none" || okRow[8] != "3" || okRow[9] != "0" {
		t.Errorf("ok row %q", lines[2])
	}
	if badRow[1] != "bad" || badRow[8] != "2" || badRow[9] != "2" || !strings.Contains(lines[1], "502 the function failed /bad") {
		t.Errorf("bad row %q", lines[1])
	}

	wide := p.ok("fn", "list", "-o", "wide")
	if !strings.Contains(wide, "REQ(5M)") || strings.Contains(wide, "NAMESPACE") || !strings.Contains(wide, "GET /ok") {
		t.Errorf("fn list -o wide:\n%s", wide)
	}
	if out := p.ok("fn", "list", "-o", "wide", "-n", "other"); strings.Contains(out, "ok") {
		t.Errorf("fn list -o wide -n other shows default's functions:\n%s", out)
	}

	// --watch prints the table again and again until interrupted.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "status", "--watch", "--interval", "200ms")
	cmd.Env = append(os.Environ(), "ISOTOPE_URL="+p.api)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	headers := 0
	sc := bufio.NewScanner(out)
	for headers < 3 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "NAMESPACE") {
			headers++
		}
	}
	cmd.Process.Kill()
	io.Copy(io.Discard, out)
	cmd.Wait()
	if headers < 3 {
		t.Errorf("status --watch printed %d tables before ending", headers)
	}

	// Mistakes exit 1 and say what to do.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"statsu"}, `unknown command "statsu" for "isotope"; did you mean "status"?`},
		{[]string{"status", "-o", "yaml"}, `--output: unknown format "yaml" (want json)`},
		{[]string{"status", "--watch", "--interval", "1ms"}, "--interval 1ms: give at least 100ms"},
		{[]string{"status", "--wacth"}, "unknown flag: --wacth; did you mean --watch?"},
		{[]string{"fn", "list", "-o", "wdie"}, `--output: unknown format "wdie" (want json, yaml or wide)`},
	} {
		r := p.run(c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("isotope %s: %s\nwant exit 1 and %q", strings.Join(c.args, " "), r, c.want)
		}
	}
}
