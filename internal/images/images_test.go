package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"isotope.dev/isotope/internal/images"
)

// shared is the build every test of this binary reads: `make images`
// into a temporary directory, with the default cache.
var shared struct {
	once sync.Once
	out  string
	res  *images.Result
	err  error
	took time.Duration
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "isotope-images-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.out = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// built builds every image once per test binary (the first build on a
// machine compiles the static binary: minutes; then seconds).
func built(t *testing.T) *images.Result {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		shared.res, shared.err = images.Make(ctx, shared.out)
		shared.took = time.Since(start)
	})
	if shared.err != nil {
		t.Fatalf("make images: %v", shared.err)
	}
	return shared.res
}

func image(t *testing.T, name string) images.Built {
	t.Helper()
	for _, b := range built(t).Images {
		if b.Image.Name == name {
			return b
		}
	}
	t.Fatalf("no image %s built", name)
	return images.Built{}
}

// Two builds of the same commit, the second with an empty cache (a new
// link of the binary, every layer compressed again), give the same
// digests, the same tarballs byte for byte and the same OCI index.
func TestBuildIsReproducible(t *testing.T) {
	first := built(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	second, err := images.Make(ctx, out, "-cache", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make images: %v with the user's cache, %v with an empty one", shared.took.Round(time.Second), time.Since(start).Round(time.Second))
	if len(first.Images) != len(second.Images) || len(first.Images)+len(first.Skipped) != len(images.All) {
		t.Fatalf("built %d and %d images (%d skipped), want %d", len(first.Images), len(second.Images), len(first.Skipped), len(images.All))
	}
	for _, s := range first.Skipped {
		t.Logf("%s not built here: %s", s.Image.Name, s.Reason)
	}
	for i, a := range first.Images {
		b := second.Images[i]
		if a.Ref != b.Ref || a.Digest != b.Digest {
			t.Errorf("%s: %s then %s@%s", a.Ref, a.Digest, b.Ref, b.Digest)
		}
		if sa, sb := sha256File(t, a.Tarball), sha256File(t, b.Tarball); sa != sb {
			t.Errorf("%s: tarballs differ (%s, %s)", a.Image.Name, sa, sb)
		}
		t.Logf("%-40s %s  %5.1f MB compressed  %5.1f MB unpacked", a.Ref, a.Digest, float64(a.Size)/1e6, float64(a.Unpacked)/1e6)
	}
	ia, _ := os.ReadFile(filepath.Join(first.Layout, "index.json"))
	ib, _ := os.ReadFile(filepath.Join(second.Layout, "index.json"))
	if len(ia) == 0 || !bytes.Equal(ia, ib) {
		t.Errorf("OCI index.json differs:\n%s\n%s", ia, ib)
	}
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Each image runs as the table says, as the non-root user, labelled
// with the commit; its layers are canonical (epoch times, numeric
// owners, sorted, no file writable by others but /tmp), and the
// binary is root's and executable at BinaryPath.
func TestImageConfigs(t *testing.T) {
	res := built(t)
	// Outside git (a source tarball) the revision is "unknown" and the
	// creation time the epoch.
	commit, commitTime := "unknown", time.Unix(0, 0).UTC().Format(time.RFC3339)
	if c, err := git("rev-parse", "HEAD"); err == nil {
		commit = c
		if commitTime, err = git("log", "-1", "--format=%cI"); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range res.Images {
		im := b.Image
		cf, err := b.V1.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cf.Config
		if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, im.Entrypoint) || !slices.Equal(c.Cmd, im.Cmd) || !slices.Equal(c.Env, im.EnvList()) {
			t.Errorf("%s: user %q entrypoint %q cmd %q env %q", im.Name, c.User, c.Entrypoint, c.Cmd, c.Env)
		}
		var ports []string
		for p := range c.ExposedPorts {
			ports = append(ports, p)
		}
		var want []string
		for _, p := range im.Ports {
			want = append(want, fmt.Sprintf("%d/tcp", p))
		}
		if slices.Sort(ports); !slices.Equal(ports, want) {
			t.Errorf("%s: ports %v, want %v", im.Name, ports, want)
		}
		if cf.OS != "linux" || cf.Architecture == "" {
			t.Errorf("%s: platform %s/%s", im.Name, cf.OS, cf.Architecture)
		}
		l := c.Labels
		if !strings.HasPrefix(l["org.opencontainers.image.revision"], commit) || l["org.opencontainers.image.version"] != images.DefaultTag ||
			l["org.opencontainers.image.title"] != "isotope/"+im.Name || l["org.opencontainers.image.description"] == "" ||
			l["org.opencontainers.image.created"] != cf.Created.UTC().Format(time.RFC3339) {
			t.Errorf("%s: labels %v (commit %s)", im.Name, l, commit)
		}
		if !cf.Created.Equal(mustTime(t, commitTime)) {
			t.Errorf("%s: created %v, want the commit's time %s", im.Name, cf.Created, commitTime)
		}
		checkLayers(t, im, b.V1)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func checkLayers(t *testing.T, im images.Image, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wantLayers := 2
	if im.Toolchain != nil {
		wantLayers = 3
	}
	if len(layers) != wantLayers {
		t.Errorf("%s: %d layers, want %d", im.Name, len(layers), wantLayers)
	}
	seen := map[string]*tar.Header{}
	for i, l := range layers {
		if size, _ := l.Size(); raceEnabled && im.Toolchain != nil && i == 1 {
			// The toolchain layer (base, toolchain, binary): the same
			// writer as the others, and TestBuildIsReproducible covers
			// its bytes.
			t.Logf("%s layer %d (%d MB): not read under the race detector", im.Name, i, size>>20)
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		prev := ""
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uname != "" || h.Gname != "" {
				t.Errorf("%s layer %d: %s: mtime %v owner %q:%q", im.Name, i, h.Name, h.ModTime, h.Uname, h.Gname)
			}
			if name := strings.TrimSuffix(h.Name, "/"); name <= prev {
				t.Errorf("%s layer %d: %s after %s: not sorted", im.Name, i, h.Name, prev)
			} else {
				prev = name
			}
			if h.Mode&0o002 != 0 && h.Name != "tmp/" {
				t.Errorf("%s: %s is writable by anyone (mode %o)", im.Name, h.Name, h.Mode)
			}
			seen["/"+strings.TrimSuffix(h.Name, "/")] = h
		}
		rc.Close()
	}
	bin := seen[images.BinaryPath]
	if bin == nil || bin.Mode != 0o755 || bin.Uid != 0 {
		t.Errorf("%s: binary at %s: %+v", im.Name, images.BinaryPath, bin)
	}
	for _, d := range append([]string{images.Home}, im.Dirs...) {
		if h := seen[d]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != images.UID {
			t.Errorf("%s: directory %s owned by the user: %+v", im.Name, d, h)
		}
	}
	if h := seen["/tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("%s: /tmp: %+v", im.Name, h)
	}
	if h := seen[images.CACerts]; h == nil || h.Size < 100_000 {
		t.Errorf("%s: CA bundle %s: %+v", im.Name, images.CACerts, h)
	}
}

func git(args ...string) (string, error) {
	root, err := images.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
