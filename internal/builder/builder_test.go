package builder

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

type env struct {
	shared string
	url    string
	b      *Builder
	podLog *bytes.Buffer
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{shared: t.TempDir(), podLog: &bytes.Buffer{}}
	cfg := Config{SharedDir: e.shared, Log: &lockedWriter{w: e.podLog}}
	if mod != nil {
		mod(&cfg)
	}
	e.b = New(cfg)
	srv := httptest.NewServer(e.b.Handler())
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// source writes a source package directory holding build.sh.
func (e *env) source(t *testing.T, name, script string) {
	t.Helper()
	dir := filepath.Join(e.shared, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "build.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// build posts a raw JSON build request.
func (e *env) build(t *testing.T, body string) (int, map[string]json.RawMessage, string) {
	t.Helper()
	resp, err := http.Post(e.url+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

func str(raw json.RawMessage) string {
	var s string
	json.Unmarshal(raw, &s)
	return s
}

func keys(m map[string]json.RawMessage) string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

func TestBuildOverHTTP(t *testing.T) {
	e := newEnv(t, nil)
	e.source(t, "src", `echo "args: $*"
echo "pwd: $(pwd)"
echo "src: $SRC_PKG"
echo "to stderr" >&2
mkdir "$DEPLOY_PKG" && echo built > "$DEPLOY_PKG/out.txt"
`)
	code, m, raw := e.build(t, `{"srcPkgFilename":"src","command":"sh build.sh one  two"}`)
	if code != 200 {
		t.Fatalf("build: %d %s", code, raw)
	}
	if keys(m) != "artifactFilename,buildLogs" {
		t.Fatalf("response keys %s", keys(m))
	}
	artifact, logs := str(m["artifactFilename"]), str(m["buildLogs"])
	if !regexp.MustCompile(`^src-[a-z]{6}$`).MatchString(artifact) {
		t.Errorf("artifactFilename %q is not src-<6 lowercase>", artifact)
	}
	src := filepath.Join(e.shared, "src")
	for _, want := range []string{"args: one two", "pwd: " + src, "src: " + src, "to stderr"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.shared, artifact, "out.txt")); err != nil || string(b) != "built\n" {
		t.Errorf("deploy package: %q %v", b, err)
	}
	if pl := e.podLog.String(); !strings.Contains(pl, "=== START ===\n") || !strings.Contains(pl, "=== END ===\n") || !strings.Contains(pl, "args: one two") {
		t.Errorf("pod log lacks the markers or output:\n%s", pl)
	}

	// A single-file source runs in its parent directory.
	os.WriteFile(filepath.Join(e.shared, "file-src"), []byte("x"), 0o644)
	code, m, raw = e.build(t, `{"srcPkgFilename":"file-src","command":"sh -c pwd"}`)
	if code != 500 || !strings.Contains(str(m["buildLogs"]), e.shared+"\n") {
		t.Errorf("single-file build did not run in the shared dir: %d %s", code, raw)
	}

	// /clean removes the source; bad names are 400.
	req, _ := http.NewRequest(http.MethodDelete, e.url+"/clean?name=src", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("clean: %v %v", err, resp.Status)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("clean left the source: %v", err)
	}
	req, _ = http.NewRequest(http.MethodDelete, e.url+"/clean?name=../x", nil)
	if resp, _ := http.DefaultClient.Do(req); resp.StatusCode != 400 {
		t.Errorf("clean ../x: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/version"} {
		if resp, err := http.Get(e.url + p); err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s: %v %v", p, err, resp.Status)
		}
	}
}

func TestBuildFailures(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxLogBytes = 1000 })
	e.source(t, "fails", "echo 'main.go:3:1: syntax error' >&2\nexit 3\n")
	e.source(t, "lazy", "echo did nothing\n")
	e.source(t, "chatty", "echo HEAD-MARKER\ni=0; while [ $i -lt 400 ]; do echo 'line of build output'; i=$((i+1)); done\necho TAIL-MARKER\nexit 1\n")

	cases := []struct{ body, want string }{
		{`{"srcPkgFilename":"fails","command":"sh build.sh"}`, "main.go:3:1: syntax error"},
		{`{"srcPkgFilename":"fails","command":"sh build.sh"}`, "exit status 3"},
		{`{"srcPkgFilename":"lazy","command":"sh build.sh"}`, "created nothing at $DEPLOY_PKG"},
		{`{"srcPkgFilename":"lazy","command":""}`, `"/build"`},
		{`{"srcPkgFilename":"lazy","command":"no-such-tool-here x"}`, "not found in PATH"},
	}
	for _, c := range cases {
		code, m, raw := e.build(t, c.body)
		if code != 500 || keys(m) != "artifactFilename,buildLogs" || !strings.Contains(str(m["buildLogs"]), c.want) {
			t.Errorf("%s: %d %s, want 500 with %q in buildLogs", c.body, code, raw, c.want)
		}
	}
	// The log cap keeps head and tail around a marker.
	code, m, _ := e.build(t, `{"srcPkgFilename":"chatty","command":"sh build.sh"}`)
	logs := str(m["buildLogs"])
	if code != 500 || len(logs) > 1200 || !strings.HasPrefix(logs, "HEAD-MARKER") || !strings.Contains(logs, "TAIL-MARKER") ||
		!strings.Contains(logs, "bytes of build log truncated") || !strings.Contains(logs, "exit status 1") {
		t.Errorf("capped log (%d bytes):\n%s", len(logs), logs)
	}
	// Bad requests are 400 with a message, not a build.
	for _, body := range []string{`{"srcPkgFilename":"../etc","command":"x"}`, `{"srcPkgFilename":"/etc","command":"x"}`,
		`{"srcPkgFilename":"missing","command":"x"}`, `{"srcPkgFilename":""}`, `not json`} {
		if code, _, raw := e.build(t, body); code != 400 {
			t.Errorf("%s: %d %s, want 400", body, code, raw)
		}
	}
	// No deploy package is left behind by the failed builds.
	ents, _ := os.ReadDir(e.shared)
	if len(ents) != 3 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("shared dir after failed builds: %v", names)
	}
}

func TestBuildTimeoutKillsTheProcessGroup(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Timeout = 200 * time.Millisecond })
	// The script's child (sleep) holds the output pipe: only killing the
	// group ends the build.
	e.source(t, "slow", "echo started\nsleep 60\n")
	code, m, raw := e.build(t, `{"srcPkgFilename":"slow","command":"sh build.sh"}`)
	if code != 500 || !strings.Contains(str(m["buildLogs"]), "build timed out after 200ms") || !strings.Contains(str(m["buildLogs"]), "started") {
		t.Fatalf("timeout: %d %s", code, raw)
	}
}

func TestBuiltinAndPath(t *testing.T) {
	bin := t.TempDir()
	os.WriteFile(filepath.Join(bin, "mybuild"), []byte("#!/bin/sh\necho from PATH\nmkdir $DEPLOY_PKG\n"), 0o755)
	var gotArgs []string
	var gotSrc string
	e := newEnv(t, func(c *Config) {
		c.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
		c.Builtins = map[string]BuiltinFunc{"tool build": func(ctx context.Context, args, env []string, dir string, log io.Writer) error {
			gotArgs = args
			for _, kv := range env {
				if v, ok := strings.CutPrefix(kv, "SRC_PKG="); ok {
					gotSrc = v
				}
				if v, ok := strings.CutPrefix(kv, "DEPLOY_PKG="); ok {
					os.Mkdir(v, 0o755)
				}
			}
			io.WriteString(log, "builtin ran\n")
			return nil
		}}
	})
	e.source(t, "s", "")
	if code, m, raw := e.build(t, `{"srcPkgFilename":"s","command":"tool build --fast x"}`); code != 200 || !strings.Contains(str(m["buildLogs"]), "builtin ran") {
		t.Fatalf("builtin: %d %s", code, raw)
	}
	if strings.Join(gotArgs, " ") != "--fast x" || gotSrc != filepath.Join(e.shared, "s") {
		t.Errorf("builtin got args %q, SRC_PKG %q", gotArgs, gotSrc)
	}
	if code, m, raw := e.build(t, `{"srcPkgFilename":"s","command":"mybuild"}`); code != 200 || !strings.Contains(str(m["buildLogs"]), "from PATH") {
		t.Fatalf("command from Config.Env PATH: %d %s", code, raw)
	}
}

// TestLiveLogs follows a running build over GET /logs: output arrives
// while the build runs, and the stream ends with the build.
func TestLiveLogs(t *testing.T) {
	e := newEnv(t, nil)
	gate := filepath.Join(t.TempDir(), "gate")
	e.source(t, "live", "echo step-one\nwhile [ ! -e "+gate+" ]; do sleep 0.01; done\necho step-two\nmkdir $DEPLOY_PKG\n")

	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(e.url+"/", "application/json", strings.NewReader(`{"srcPkgFilename":"live","command":"sh build.sh"}`))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()

	// Poll until the build is registered.
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := http.Get(e.url + "/logs?name=live")
		if err == nil && r.StatusCode == 200 {
			resp = r
			break
		}
		if r != nil {
			r.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("build never showed up at /logs")
		}
		time.Sleep(5 * time.Millisecond)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "step-one\n" {
		t.Fatalf("first streamed line %q, %v", line, err)
	}
	// The build is blocked on the gate: a second build of it is refused.
	if code, _, raw := e.build(t, `{"srcPkgFilename":"live","command":"sh build.sh"}`); code != 409 {
		t.Errorf("concurrent build of the same source: %d %s", code, raw)
	}
	os.WriteFile(gate, nil, 0o644)
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "step-two\n") {
		t.Fatalf("rest of the stream %q, %v", rest, err)
	}
	if code := <-done; code != 200 {
		t.Fatalf("build status %d", code)
	}
	// A finished build's log is still served, then /clean forgets it.
	r, _ := http.Get(e.url + "/logs?name=live")
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), "step-one\nstep-two\n") {
		t.Errorf("finished log %q", b)
	}
	req, _ := http.NewRequest(http.MethodDelete, e.url+"/clean?name=live", nil)
	http.DefaultClient.Do(req)
	if r, _ := http.Get(e.url + "/logs?name=live"); r.StatusCode != 404 {
		t.Errorf("log of a cleaned build: %d", r.StatusCode)
	}
}

func TestLogCapUnit(t *testing.T) {
	l := newBuildLog(10)
	io.WriteString(l, "0123456789abcdefghij")
	if got := l.String(); got != "01234\n... [10 bytes of build log truncated] ...\nfghij" {
		t.Errorf("capped: %q", got)
	}
	l = newBuildLog(100)
	io.WriteString(l, "short")
	if l.String() != "short" {
		t.Errorf("uncapped: %q", l.String())
	}
}
