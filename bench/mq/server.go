package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"
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
	log      *syncBuffer
	exited   chan struct{}
}

var addrRE = regexp.MustCompile(`api=(http://\S+) router=(http://\S+)`)

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
	s := &server{bin: bin, natsAddr: natsAddr, home: filepath.Join(dir, "home"), log: &syncBuffer{}, exited: make(chan struct{})}
	if err := os.MkdirAll(s.home, 0o755); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "server", "--data-dir", data, "--api-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0",
		"--nats", "--nats-addr", natsAddr, "--mqt-concurrency", fmt.Sprint(concurrency))
	s.cmd.Env = append(os.Environ(), "HOME="+s.home)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	s.cmd.Stderr = io.MultiWriter(pw, s.log)
	s.cmd.Stdout = s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", bin, err)
	}
	go func() {
		s.cmd.Wait()
		pw.Close()
		close(s.exited)
	}()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		s.api, s.router = a[0], a[1]
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("isotope server exited before listening:\n%s", s.log)
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, fmt.Errorf("isotope server did not report its addresses within 60s:\n%s", s.log)
	}
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

// syncBuffer is the server's log, written by its stdout and stderr
// copiers at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
