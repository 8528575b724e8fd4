package images_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/images"
)

// The C and Rust builder images build with nothing but their own files:
// `isotope build c-wasm` (a C and a C++ program) and `isotope build
// rust-wasm` (the example crate) run in the unpacked image as its root
// directory (unshare --root, with a /proc of their own), so clang,
// wasm-ld, rustc, their shared libraries and the dynamic loader all
// come from the image, not from this machine. The wasm-env image serves
// what they built.
func TestToolchainImagesBuild(t *testing.T) {
	root, err := images.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	res := built(t)
	tmp := t.TempDir()
	cases := []struct {
		image, builder, want string
		src                  map[string]string // files under the source directory, or a directory of the repository
		dir                  string
	}{
		{image: "c-wasm-builder", builder: "c-wasm", want: "hello from C in its image",
			src: map[string]string{"hello.c": "#include <stdio.h>\nint main(void) { printf(\"Content-Type: text/plain\\n\\nhello from C in its image\\n\"); return 0; }\n"}},
		{image: "c-wasm-builder", builder: "c-wasm", want: "hello from C++ in its image",
			src: map[string]string{"hello.cpp": "#include <iostream>\nint main() { std::cout << \"Content-Type: text/plain\\n\\nhello from C++ in its image\\n\"; }\n"}},
		{image: "rust-wasm-builder", builder: "rust-wasm", want: "Hello", dir: filepath.Join(root, "examples", "hello-rust")},
	}
	w := fromTarball(t, "wasm-env")
	unpacked := map[string]*images.Rootfs{} // one unpacking per image: hundreds of MB
	for i, c := range cases {
		t.Run(c.image+"/"+c.builder, func(t *testing.T) {
			if i := slices.IndexFunc(res.Skipped, func(s images.Skipped) bool { return s.Image.Name == c.image }); i >= 0 {
				t.Skipf("make images skipped %s: %s", c.image, res.Skipped[i].Reason)
			}
			r := unpacked[c.image]
			if r == nil {
				r = fromTarballIn(t, c.image, tmp)
				unpacked[c.image] = r
			}
			src := r.Path(fmt.Sprintf("/tmp/src%d", i))
			if c.dir != "" {
				if err := os.CopyFS(src, os.DirFS(c.dir)); err != nil {
					t.Fatal(err)
				}
			} else {
				os.MkdirAll(src, 0o755)
				for name, text := range c.src {
					os.WriteFile(filepath.Join(src, name), []byte(text), 0o644)
				}
			}
			arg := fmt.Sprintf("/tmp/src%d", i)
			if len(c.src) == 1 {
				for name := range c.src {
					arg += "/" + name
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			start := time.Now()
			out, err := inImage(t, ctx, r, append(slices.Clone(r.Config.Entrypoint[:1]), "build", c.builder, arg, fmt.Sprintf("/tmp/deploy%d", i))...)
			if err != nil {
				t.Fatalf("isotope build %s in the %s image: %v\n%s", c.builder, c.image, err, out)
			}
			t.Logf("isotope build %s in the image: %v", c.builder, time.Since(start).Round(time.Second))
			module := r.Path(fmt.Sprintf("/tmp/deploy%d/main.wasm", i))
			wc := newContainer(t, w)
			addr := serve(t, wc, "wasm-env listening.* addr=(\\S+)", append(slices.Clone(w.Config.Entrypoint), "--addr", "127.0.0.1:0", "--userfunc-dir", t.TempDir()))
			resp, err := http.Post("http://"+addr+"/v2/specialize", "application/json", strings.NewReader(fmt.Sprintf(`{"filepath":%q}`, module)))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("specialize %s: %s %s", module, resp.Status, b)
			}
			get(t, "http://"+addr+"/", 200, c.want)
		})
	}
}

// inImage runs argv with the unpacked image r as its root directory, in
// mount and PID namespaces of its own with a fresh /proc (rustc and
// clang find themselves through /proc/self/exe), as root (the namespace's
// root, mapped to this user when not root), with the image's ENV. It
// skips the test where unshare cannot make the namespaces.
func inImage(t *testing.T, ctx context.Context, r *images.Rootfs, argv ...string) ([]byte, error) {
	t.Helper()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("running a toolchain in its image needs unshare (Debian package util-linux)")
	}
	for _, d := range []string{"/proc", "/dev", "/tmp"} {
		if err := os.MkdirAll(r.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Go's os/exec opens /dev/null for a command's missing stdin; an
	// empty file serves (nothing is read from it).
	os.WriteFile(r.Path("/dev/null"), nil, 0o666)
	os.Chmod(r.Path("/tmp"), 0o1777)
	args := []string{"--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--root=" + r.Dir, "--wd=/"}
	if os.Getuid() != 0 {
		args = append([]string{"--map-root-user"}, args...)
	}
	if probe, err := exec.CommandContext(ctx, unshare, append(args, images.BinaryPath, "version")...).CombinedOutput(); err != nil {
		t.Skipf("unshare cannot run a program in the image here (needs root or user namespaces): %v\n%s", err, probe)
	}
	cmd := exec.CommandContext(ctx, unshare, append(args, argv...)...)
	cmd.Env = append(slices.Clone(r.Config.Env), "TMPDIR=/tmp")
	return cmd.CombinedOutput()
}
