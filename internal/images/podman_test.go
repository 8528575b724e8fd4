package images_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// podman runs podman with storage of the test's own, so nothing of the
// machine's images or containers is touched.
type podman struct {
	t       *testing.T
	global  []string
	runtime string
}

func (p *podman) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, p.global...), args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

// The wasm-env tarball loads into podman (Debian's, where installed) and
// runs there as a container: non-root, its port published, a WebAssembly
// module mounted at /userfunc specialized and served. Skipped, saying
// why, where podman is missing or cannot run containers (no root, no
// cgroup or rlimit permissions in a sandbox).
func TestPodmanRunsWasmEnv(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman is not installed (Debian: apt-get install -y podman runc): the wasm-env image is run by the other tests from its unpacked tarball only")
	}
	if os.Geteuid() != 0 {
		t.Skip("podman runs here as root only (rootless storage needs user namespaces this test does not set up)")
	}
	b := image(t, "wasm-env")
	dir := t.TempDir()
	p := &podman{t: t, global: []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := p.run(ctx, "load", "-i", b.Tarball)
	if err != nil || !strings.Contains(out, b.Ref) {
		t.Fatalf("podman load -i %s: %v\n%s", b.Tarball, err, out)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := p.run(ctx, "rm", "-a", "-f"); err != nil {
			t.Logf("podman rm: %v %s", err, out)
		}
		p.run(ctx, "rmi", "-a", "-f")
	})

	userfunc := t.TempDir()
	if err := os.WriteFile(filepath.Join(userfunc, "user"), wasmtest.WAGIHello(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(userfunc, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	// Modest limits, no higher than this process's: podman otherwise
	// raises them to its defaults, which a sandbox may refuse.
	var nofile syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	args := []string{"run", "-d", "--name", "wasm-env",
		"--ulimit", fmt.Sprintf("nofile=%d:%d", min(nofile.Cur, 4096), min(nofile.Cur, 4096)),
		"--ulimit", "nproc=1024:1024",
		"-p", fmt.Sprintf("127.0.0.1:%d:8888", port),
		"-v", userfunc + ":/userfunc:ro", b.Ref}
	var id, used string
	var tried []string
	for _, runtime := range []string{"", "runc"} {
		g := p.global
		if runtime != "" {
			if _, err := exec.LookPath(runtime); err != nil {
				continue
			}
			p.global = append(g, "--runtime", runtime)
		}
		id, err = p.run(ctx, args...)
		if err == nil {
			used = runtime
			break
		}
		tried = append(tried, fmt.Sprintf("runtime %q: %v: %s", runtime, err, id))
		p.run(ctx, "rm", "-f", "wasm-env")
		p.global = g
	}
	if err != nil {
		t.Skipf("podman cannot run containers on this machine (the image loaded; only running it is skipped):\n%s", strings.Join(tried, "\n"))
	}
	if used == "" {
		used = "podman's default"
	}
	t.Logf("podman run: container %.12s (OCI runtime: %s)", id, used)

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := p.run(ctx, "logs", "wasm-env")
			t.Fatalf("the container's /healthz did not answer within a minute: %v\n%s", err, logs)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	if out, err := p.run(ctx, "top", "wasm-env", "user", "args"); err != nil || !strings.Contains(out, "isotope ") || !strings.Contains(out, "/usr/local/bin/isotope wasm-env") {
		t.Errorf("podman top: %v\n%s", err, out)
	}
	resp, err := http.Post(base+"/specialize", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		logs, _ := p.run(ctx, "logs", "wasm-env")
		t.Fatalf("specialize: %s\n%s", resp.Status, logs)
	}
	get(t, base+"/", 200, "hello")
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
