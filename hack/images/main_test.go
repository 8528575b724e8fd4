package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"isotope.dev/isotope/internal/images"
)

// `make images IMAGES=wasm-env PUSH=<registry>/<prefix>`: the command
// writes the layout, the tarball and images.json, and the registry (one
// in-process on loopback) serves the digest images.json names.
func TestBuildAndPush(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	prefix := strings.TrimPrefix(srv.URL, "http://") + "/isotope"
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(ctx, []string{"build", "-out", out, "-images", "wasm-env", "-push", prefix}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"oci/index.json", "wasm-env.tar"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	var summary []struct{ Name, Ref, Digest string }
	if err := json.Unmarshal(data, &summary); err != nil || len(summary) != 1 {
		t.Fatalf("images.json: %v %s", err, data)
	}
	if want := "isotope/wasm-env:" + images.DefaultTag; summary[0].Ref != want {
		t.Errorf("built %s, want %s", summary[0].Ref, want)
	}
	ref, err := name.ParseReference(prefix + "/wasm-env:" + images.DefaultTag)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("the registry does not have %s: %v", ref, err)
	}
	if desc.Digest.String() != summary[0].Digest {
		t.Errorf("the registry serves %s, images.json says %s", desc.Digest, summary[0].Digest)
	}
}

// rootfs writes an image's files for a Dockerfile to copy: the binary
// executable, the user's directories (owned by it when run as root).
func TestRootfs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rootfs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := run(ctx, []string{"rootfs", "-image", "fetcher", "-out", out}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(out, images.BinaryPath))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("binary: %v %v", st, err)
	}
	for _, d := range []string{"/userfunc", "/packages", images.Home} {
		st, err := os.Stat(filepath.Join(out, d))
		if err != nil || !st.IsDir() {
			t.Fatalf("%s: %v", d, err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; os.Geteuid() == 0 && uid != images.UID {
			t.Errorf("%s owned by %d, want %d", d, uid, images.UID)
		}
	}
	if err := run(ctx, []string{"rootfs", "-image", "fetcher", "-out", out}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second rootfs into the same directory: %v", err)
	}
	if err := run(ctx, []string{"rootfs", "-image", "nginx", "-out", t.TempDir()}); err == nil || !strings.Contains(err.Error(), `no image "nginx"`) {
		t.Errorf("rootfs of an unknown image: %v", err)
	}
}

// unpack needs its flags and a real tarball, and names what is wrong.
func TestUnpackRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, []string{"unpack", "-out", t.TempDir()}); err == nil || !strings.Contains(err.Error(), "needs -tarball and -out") {
		t.Errorf("unpack without -tarball: %v", err)
	}
	bogus := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(bogus, []byte("not a tarball"), 0o644)
	if err := run(ctx, []string{"unpack", "-tarball", bogus, "-out", t.TempDir()}); err == nil || !strings.Contains(err.Error(), bogus) {
		t.Errorf("unpack of a file that is no tarball: %v", err)
	}
	if err := run(ctx, []string{"unpakc"}); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("a typo'd command: %v", err)
	}
}
