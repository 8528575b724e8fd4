package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"isotope.dev/isotope/internal/testing/serverproc"
	"isotope.dev/isotope/internal/testing/testlog"
)

// server is `isotope server --nats` in a child process, driven through
// the real CLI.
type server struct {
	bin      string
	cmd      *exec.Cmd
	api      string
	router   string
	natsAddr string
	home     string
	log      *testlog.Buffer
	exited   chan struct{}
}

// startServer runs the server on a new data dir under dir with the
// embedded NATS server on a free loopback port; concurrency is
// --mqt-concurrency.
func startServer(bin, dir string, concurrency int) (*server, error) {
	data := filepath.Join(dir, "data")
	shareGoCache(data)
	natsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, natsAddr: natsAddr, home: filepath.Join(dir, "home"), log: &testlog.Buffer{}}
	if err := os.MkdirAll(s.home, 0o755); err != nil {
		return nil, err
	}
	proc, err := serverproc.Start(bin, []string{"server", "--data-dir", data, "--api-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0",
		"--nats", "--nats-addr", natsAddr, "--mqt-concurrency", fmt.Sprint(concurrency)},
		append(os.Environ(), "HOME="+s.home), s.log, 60*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w:\n%s", err, s.log)
	}
	s.cmd, s.exited, s.api, s.router = proc.Cmd, proc.Exited, proc.API, proc.Router
	return s, nil
}

// cli runs `isotope args...` against the server.
func (s *server) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = append(os.Environ(), "ISOTOPE_URL="+s.api, "ISOTOPE_ROUTER_URL="+s.router, "HOME="+s.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("isotope %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String(), nil
}

// stop sends SIGTERM and waits, then kills after 30 s.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// shareGoCache points the data dir's go-wasm build cache at the user's,
// so a machine compiles Go's standard library for wasip1 only once.
func shareGoCache(data string) {
	base, err := os.UserCacheDir()
	if err != nil {
		return
	}
	shared := filepath.Join(base, "isotope", "go-wasm")
	if os.MkdirAll(shared, 0o755) != nil || os.MkdirAll(filepath.Join(data, "cache"), 0o755) != nil {
		return
	}
	os.Symlink(shared, filepath.Join(data, "cache", "go"))
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
