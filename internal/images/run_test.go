package images_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"isotope.dev/isotope/internal/images"
	"isotope.dev/isotope/internal/testing/testlog"
)

// fromTarball loads an image's `docker save` tarball, as `docker load`
// would, checks it is the built image, and unpacks its files.
func fromTarball(t *testing.T, name string) *images.Rootfs {
	t.Helper()
	return fromTarballIn(t, name, t.TempDir())
}

// fromTarballIn is fromTarball into a directory under dir.
func fromTarballIn(t *testing.T, name, dir string) *images.Rootfs {
	t.Helper()
	b := image(t, name)
	img, err := tarball.ImageFromPath(b.Tarball, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := img.ConfigName()
	want, _ := b.V1.ConfigName()
	if got != want {
		t.Fatalf("%s: the tarball's config is %s, the built image's %s", b.Tarball, got, want)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rootfs, err := images.UnpackOutOfProcess(ctx, b.Tarball, filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s unpacked in %v", name, time.Since(start).Round(time.Millisecond))
	return rootfs
}

// container is how a test runs an unpacked image's process: its ENV
// with image paths (PATH, HOME, the image's own) mapped into the rootfs
// or to private directories, and nothing of this machine's environment.
type container struct {
	rootfs *images.Rootfs
	env    []string
	home   string
}

func newContainer(t *testing.T, r *images.Rootfs) *container {
	c := &container{rootfs: r, home: t.TempDir()}
	private := map[string]string{}
	for _, w := range r.Writable {
		private[w] = t.TempDir()
	}
	mapPath := func(p string) string {
		if d, ok := private[p]; ok {
			return d
		}
		return r.Path(p)
	}
	for _, kv := range r.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(v, "/") {
			parts := strings.Split(v, ":")
			for i, p := range parts {
				parts[i] = mapPath(p)
			}
			v = strings.Join(parts, ":")
		}
		c.env = append(c.env, k+"="+v)
	}
	c.env = append(c.env, "TMPDIR="+private["/tmp"])
	return c
}

// command is argv (the image's terms) as a process: argv[0] looked up
// on the image's PATH inside the rootfs.
func (c *container) command(t *testing.T, ctx context.Context, argv ...string) *exec.Cmd {
	t.Helper()
	prog := argv[0]
	if !strings.HasPrefix(prog, "/") {
		for _, kv := range c.rootfs.Config.Env {
			if path, ok := strings.CutPrefix(kv, "PATH="); ok {
				for _, d := range strings.Split(path, ":") {
					if st, err := os.Stat(c.rootfs.Path(d + "/" + prog)); err == nil && st.Mode()&0o111 != 0 {
						prog = d + "/" + prog
						break
					}
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, c.rootfs.Path(prog), argv[1:]...)
	cmd.Env = slices.Clone(c.env)
	cmd.Dir = c.rootfs.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// The control-plane image's entrypoint is the isotope binary: its CMD
// prints the roles, and `version` the tag it was built with.
func TestIsotopeImageRuns(t *testing.T) {
	r := fromTarball(t, "isotope")
	c := newContainer(t, r)
	ctx := context.Background()
	out, err := c.command(t, ctx, slices.Concat(r.Config.Entrypoint, r.Config.Cmd)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "buildermgr") || !strings.Contains(string(out), "storagesvc") {
		t.Errorf("isotope --help: %v\n%s", err, out)
	}
	out, err = c.command(t, ctx, append(slices.Clone(r.Config.Entrypoint), "version")...).CombinedOutput()
	if want := "isotope " + images.DefaultTag + " ("; err != nil || !strings.HasPrefix(string(out), want) {
		t.Errorf("isotope version: %v %q, want %q…", err, out, want)
	}
}

// The fetcher image serves its health check.
func TestFetcherImageRuns(t *testing.T) {
	r := fromTarball(t, "fetcher")
	c := newContainer(t, r)
	addr := serve(t, c, "listening.* addr=(\\S+)", slices.Concat(r.Config.Entrypoint, []string{"--addr", "127.0.0.1:0",
		"--secret-dir", t.TempDir(), "--cfgmap-dir", t.TempDir(), t.TempDir()}))
	get(t, "http://"+addr+"/healthz", 200, "")
}

// The go-wasm builder image's Go toolchain is complete: its go compiles
// a WASI program with an empty build cache, so the runtime and the
// packages it needs are compiled (and assembled) from the image's
// sources by the image's compiler, assembler and linker; and the
// builder's own command, `isotope build go-wasm`, builds the example
// function with it (with this machine's build cache, as a builder pod
// with a cache volume would). The wasm-env image serves both modules.
func TestGoWasmBuilderBuildsAndWasmEnvServes(t *testing.T) {
	r := fromTarball(t, "go-wasm-builder")
	c := newContainer(t, r)
	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module wagi\n\ngo 1.24\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() {\n\tos.Stdout.WriteString(\"Content-Type: text/plain\\n\\nbuilt by the image's go\\n\")\n}\n"), 0o644)
	wagi := filepath.Join(t.TempDir(), "wagi.wasm")
	gobuild := c.command(t, ctx, "go", "build", "-trimpath", "-o", wagi, ".")
	gobuild.Dir = src
	gobuild.Env = append(gobuild.Env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOCACHE="+t.TempDir(), "GOFLAGS=")
	start := time.Now()
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("the image's go build, cold cache: %v\n%s", err, out)
	}
	t.Logf("the image's go built a WASI program with a cold cache in %v", time.Since(start).Round(time.Second))

	deploy := filepath.Join(t.TempDir(), "deploy")
	build := c.command(t, ctx, "isotope", "build", "go-wasm")
	build.Env = append(build.Env, "SRC_PKG="+filepath.Join(root, "examples", "hello", "hello.go"), "DEPLOY_PKG="+deploy, "GOCACHE="+goEnv(t, "GOCACHE"))
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("isotope build go-wasm in the builder image: %v\n%s", err, out)
	}
	if want := r.Path(images.GoRoot + "/bin/go"); !strings.Contains(string(out), want) {
		t.Errorf("the build did not use the image's go (%s):\n%s", want, out)
	}

	w := fromTarball(t, "wasm-env")
	for _, m := range []struct{ module, entry, path, want string }{
		{wagi, "", "/", "built by the image's go"},
		{filepath.Join(deploy, "main.wasm"), "Handler", "/?name=image", "Hello, image! (from WebAssembly, GET /)"},
	} {
		wc := newContainer(t, w)
		addr := serve(t, wc, "wasm-env listening.* addr=(\\S+)", append(slices.Clone(w.Config.Entrypoint), "--addr", "127.0.0.1:0", "--userfunc-dir", t.TempDir()))
		get(t, "http://"+addr+"/healthz", 200, "")
		body := fmt.Sprintf(`{"filepath":%q,"functionName":%q}`, m.module, m.entry)
		resp, err := http.Post("http://"+addr+"/v2/specialize", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("specialize %s: %s %s", m.module, resp.Status, b)
		}
		get(t, "http://"+addr+m.path, 200, m.want)
	}
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// serve starts argv in c and returns the address it reports in its log
// (the first submatch of pattern); the process is stopped at the end.
func serve(t *testing.T, c *container, pattern string, argv []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := c.command(t, ctx, argv...)
	var logs testlog.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&logs, pw), io.MultiWriter(&logs, pw)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(argv, " "), logs.String())
		}
	})
	found := make(chan string, 1)
	re := regexp.MustCompile(pattern)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return addr
	case <-exited:
		t.Fatalf("%s exited:\n%s", strings.Join(argv, " "), logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("%s did not report its address:\n%s", strings.Join(argv, " "), logs.String())
	}
	return ""
}

func get(t *testing.T, url string, status int, want string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || !strings.Contains(string(b), want) {
		t.Errorf("GET %s: %s %q, want %d with %q", url, resp.Status, b, status, want)
	}
}
