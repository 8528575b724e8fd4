package netns_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"isotope.dev/isotope/internal/netns"
)

// The test binary plays two parts besides the tests: the shim (as the
// isotope binary does) and a program that listens on a fixed port.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == netns.ShimCommand {
		os.Exit(netns.ShimMain(os.Args[2:]))
	}
	if os.Getenv("NETNS_TEST_FIXED_PORT") != "" {
		fmt.Println("fixed-port program starting")
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%d", os.Getpid())
		})
		if err := http.ListenAndServe("127.0.0.1:8888", nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func needNamespaces(t *testing.T, p *netns.Policy) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces exist only on Linux")
	}
	if err := p.Available(); err != nil {
		t.Skipf("this machine cannot make network namespaces: %v", err)
	}
}

func start(t *testing.T, p *netns.Policy, dir string) (*exec.Cmd, string) {
	t.Helper()
	sock := netns.SocketFor(dir)
	cmd, err := p.Command(netns.Program{
		Argv: []string{os.Args[0]}, Env: append(os.Environ(), "NETNS_TEST_FIXED_PORT=1"),
		Dir: t.TempDir(), Port: 8888, Socket: sock,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd, sock
}

func client(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return netns.Dial(ctx, sock) },
	}}
}

// Two programs listen on 127.0.0.1:8888 at once, each in its own
// namespace, and each is reached through its socket, even one whose path
// is too long for a sockaddr_un.
func TestFixedPortProgramsSideBySide(t *testing.T) {
	p := &netns.Policy{Default: netns.Isolated, Exe: os.Args[0]}
	needNamespaces(t, p)
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 90))
	if err := os.MkdirAll(long, 0o755); err != nil {
		t.Fatal(err)
	}
	cmds := map[string]*exec.Cmd{}
	for _, dir := range []string{filepath.Join(t.TempDir(), "a"), filepath.Join(long, "b")} {
		cmd, sock := start(t, p, dir)
		cmds[sock] = cmd
	}
	pids := map[string]bool{}
	for sock := range cmds {
		var body string
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := client(sock).Get("http://127.0.0.1:8888/")
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				body = string(b)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("socket %s never answered: %v", sock, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := strconv.Atoi(body); err != nil {
			t.Fatalf("answer %q", body)
		}
		pids[body] = true
	}
	if len(pids) != 2 {
		t.Fatalf("two programs answered with pids %v, want two different ones", pids)
	}
	// Killing the shim kills its program: the socket's server is gone.
	for sock, cmd := range cmds {
		cmd.Process.Kill()
		cmd.Wait()
		if _, err := client(sock).Get("http://127.0.0.1:8888/"); err == nil {
			t.Fatal("program still answers after its shim was killed")
		}
	}
}

func TestResolve(t *testing.T) {
	host := &netns.Policy{Default: netns.Host}
	if m, err := host.Resolve("environment default/x", nil); err != nil || m != netns.Host {
		t.Fatalf("host default: %v %v", m, err)
	}
	if _, err := host.Resolve("environment default/x", map[string]string{netns.Annotation: "isolatd"}); err == nil ||
		!strings.Contains(err.Error(), netns.Annotation) || !strings.Contains(err.Error(), "isolatd") {
		t.Fatalf("typo'd annotation: %v", err)
	}
	var nilPolicy *netns.Policy
	if m, _ := nilPolicy.Resolve("x", map[string]string{netns.Annotation: "isolated"}); m != netns.Host {
		t.Fatalf("nil policy gave %v", m)
	}
}

// With the knob set the machine behaves as one without namespaces: auto
// falls back to the host network, isolated is an error that says why
// and what to do.
func TestUnavailableNamespaces(t *testing.T) {
	t.Setenv(netns.UnavailableEnv, "1")
	auto := &netns.Policy{Default: netns.Auto, Exe: os.Args[0]}
	if m, err := auto.Resolve("environment default/go", nil); err != nil || m != netns.Host {
		t.Fatalf("auto without namespaces: %v %v", m, err)
	}
	_, err := auto.Resolve("environment default/go", map[string]string{netns.Annotation: "isolated"})
	if !errors.Is(err, netns.ErrUnavailable) {
		t.Fatalf("isolated without namespaces: %v", err)
	}
	for _, want := range []string{"environment default/go", "annotation " + netns.Annotation + "=isolated", "neither user nor network namespaces", "=host", "$PORT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// As root the shim needs only a network namespace; everyone else needs a
// user namespace too. Run the side-by-side test again as nobody, from a
// copy of this test binary nobody can read.
func TestUnprivilegedUserNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs only as root (it switches to nobody); TestFixedPortProgramsSideBySide covers this user")
	}
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	dir, err := os.MkdirTemp("", "netns-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "netns.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.v", "-test.run", "^TestFixedPortProgramsSideBySide$")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/", "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "SKIP") {
		t.Skipf("unprivileged user namespaces are not allowed here:\n%s", out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody:\n%s", out)
	}
}

// A program started as the probe's shim that does not act as one (a
// test binary without ShimMain in its TestMain) runs its own code, which
// may start a server that probes again: the probe refuses in such a
// process instead of starting itself once more.
func TestProbeRefusesInsideAProbe(t *testing.T) {
	t.Setenv("ISOTOPE_NETNS_PROBE", "1")
	p := &netns.Policy{Default: netns.Auto}
	err := p.Available()
	if !errors.Is(err, netns.ErrUnavailable) || !strings.Contains(err.Error(), "did not act as the shim") {
		t.Fatalf("Available inside a probe: %v", err)
	}
}
