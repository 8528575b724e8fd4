// Package e2e drives the real isotope binary: `isotope server` in a child
// process and every CLI command as its own process, as a user would.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/serverproc"
	"isotope.dev/isotope/internal/testing/testlog"
)

// binary is the isotope executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "isotope-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "isotope")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// Static and -trimpath, as make images builds it (internal/images),
	// so the packages compiled for one are reused by the other.
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "./cmd/isotope")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building isotope:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// platform is one running `isotope server`.
type platform struct {
	t       *testing.T
	dataDir string
	api     string // http://host:port
	router  string
	cmd     *exec.Cmd
	logs    *testlog.Buffer
	exited  chan struct{}
	home    string
	cliEnv  []string // added to every CLI run's environment
}

// startPlatform starts a server on dataDir ("" = a new temp dir) and waits
// until its API answers.
func startPlatform(t *testing.T, dataDir string, extraArgs ...string) *platform {
	t.Helper()
	return startPlatformEnv(t, dataDir, nil, extraArgs...)
}

// startPlatformEnv is startPlatform with env ("NAME=value") added to the
// server's environment, over this process's (PATH=... replaces PATH).
func startPlatformEnv(t *testing.T, dataDir string, env []string, extraArgs ...string) *platform {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	p := &platform{t: t, dataDir: dataDir, logs: &testlog.Buffer{}, home: t.TempDir()}
	args := append([]string{"server", "--data-dir", dataDir, "--api-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0"}, extraArgs...)
	proc, err := serverproc.Start(binary, args, append(append(os.Environ(), "HOME="+p.home), env...), p.logs, 60*time.Second)
	if err != nil {
		t.Fatalf("%v:\n%s", err, p.logs)
	}
	p.cmd, p.exited, p.api, p.router = proc.Cmd, proc.Exited, proc.API, proc.Router
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", p.logs)
		}
	})
	waitFor(t, 30*time.Second, "API healthy", func() error {
		resp, err := http.Get(p.api + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return p
}

// stop sends SIGTERM and waits for a graceful exit.
func (p *platform) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.t.Errorf("server did not stop within 30s of SIGTERM")
		p.kill()
	}
}

// kill is kill -9 of the server process (its builders die with it).
func (p *platform) kill() {
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs `isotope args...` against the platform.
func (p *platform) run(args ...string) result {
	return p.runIn("", nil, args...)
}

func (p *platform) runIn(dir string, stdin io.Reader, args ...string) result {
	p.t.Helper()
	// A cold machine compiles Go's standard library for wasip1 on the
	// first build: give a CLI command that waits for a build room.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), "ISOTOPE_URL="+p.api, "ISOTOPE_ROUTER_URL="+p.router, "HOME="+p.home)
	cmd.Env = append(cmd.Env, p.cliEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run isotope %v: %v", args, err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs a command that must succeed and returns its stdout.
func (p *platform) ok(args ...string) string {
	p.t.Helper()
	r := p.run(args...)
	if r.code != 0 {
		p.t.Fatalf("isotope %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// fails runs a command that must fail and returns its stderr.
func (p *platform) fails(args ...string) string {
	p.t.Helper()
	r := p.run(args...)
	if r.code == 0 {
		p.t.Fatalf("isotope %s succeeded, want failure: %s", strings.Join(args, " "), r)
	}
	return r.stderr
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	delay := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(delay) // polling interval, not a wait for an event
		delay = min(delay*2, 250*time.Millisecond)
	}
}
