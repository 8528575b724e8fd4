package images_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"isotope.dev/isotope/internal/images"
)

// Push uploads every image under a prefix to a registry (here one
// running in-process on loopback, go-containerregistry's reference
// registry), which then serves the built digests, configs and layers.
func TestPushToRegistry(t *testing.T) {
	// The registry keeps blobs in memory: the C and Rust builders'
	// toolchains (hundreds of MB) stay out; they go through the same code.
	var all []images.Built
	for _, b := range built(t).Images {
		if b.Size < 100e6 {
			all = append(all, b)
		}
	}
	res := &images.Result{Images: all}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	prefix := strings.TrimPrefix(srv.URL, "http://") + "/team/isotope"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pushed, err := images.Push(ctx, res.Images, prefix, images.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != len(res.Images) {
		t.Fatalf("pushed %d images, want %d", len(pushed), len(res.Images))
	}
	for i, p := range pushed {
		b := res.Images[i]
		want := prefix + "/" + b.Image.Name + ":" + images.DefaultTag
		if p.Ref != want || p.Digest != b.Digest {
			t.Errorf("pushed %s@%s, want %s@%s", p.Ref, p.Digest, want, b.Digest)
		}
		ref, err := name.ParseReference(want)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx))
		if err != nil {
			t.Fatalf("pull %s: %v", want, err)
		}
		if d, _ := img.Digest(); d != b.Digest {
			t.Errorf("%s: the registry serves %s, built %s", want, d, b.Digest)
		}
		cf, err := img.ConfigFile()
		if err != nil || cf.Config.User != "65532:65532" {
			t.Errorf("%s: config %+v, %v", want, cf, err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatalf("%s: layer: %v", want, err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if size, _ := l.Size(); err != nil || n != size {
				t.Errorf("%s: layer read %d of %d bytes: %v", want, n, size, err)
			}
		}
	}
	// Another last element than "isotope" works, with a warning: the
	// platform would not know the builder image as its own.
	var log strings.Builder
	if _, err := images.Push(ctx, res.Images[:1], strings.TrimPrefix(srv.URL, "http://")+"/team/other", images.PushOptions{Log: &log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "does not end in /isotope") {
		t.Errorf("no warning about the prefix: %s", log.String())
	}
	// A prefix that is no registry path is refused before anything is sent.
	if _, err := images.Push(ctx, res.Images[:1], "Not A/Registry!", images.PushOptions{}); err == nil {
		t.Error("push to prefix \"Not A/Registry!\" succeeded")
	}
}
