package images

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// RefAnnotation is the OCI layout's annotation naming an image.
const RefAnnotation = "org.opencontainers.image.ref.name"

// write puts the images into Out: an OCI layout Out/oci (written beside
// and renamed into place) and a `docker save` tarball per image.
func write(o Options, res *Result) error {
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}
	final := filepath.Join(o.Out, "oci")
	tmp := filepath.Join(o.Out, ".oci-tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	for _, b := range res.Images {
		ref, err := name.NewTag(b.Ref)
		if err != nil {
			return err
		}
		err = p.AppendImage(b.V1,
			layout.WithAnnotations(map[string]string{
				RefAnnotation: b.Ref,
				// containerd's name for it (ctr import, kind load).
				"io.containerd.image.name": ref.Name(),
			}),
			layout.WithPlatform(v1.Platform{OS: "linux", Architecture: o.GOARCH}))
		if err != nil {
			return fmt.Errorf("OCI layout: %s: %w", b.Ref, err)
		}
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	res.Layout = final
	for i, b := range res.Images {
		ref, err := name.NewTag(b.Ref)
		if err != nil {
			return err
		}
		path := filepath.Join(o.Out, b.Image.Name+".tar")
		f, err := os.CreateTemp(o.Out, ".tar-*")
		if err != nil {
			return err
		}
		err = tarball.Write(ref, b.V1, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(f.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
			return fmt.Errorf("tarball %s: %w", path, err)
		}
		res.Images[i].Tarball = path
	}
	return writeSummary(o, res)
}

// summaryEntry is one line of Out/images.json.
type summaryEntry struct {
	Name     string `json:"name"`
	Ref      string `json:"ref"`
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Unpacked int64  `json:"unpacked"`
	Tarball  string `json:"tarball,omitempty"`
	// Skipped says why the image was not built (its toolchain is not on
	// this machine); the other fields are empty then.
	Skipped string `json:"skipped,omitempty"`
}

// writeSummary writes Out/images.json: each image's reference, digest
// and sizes, for scripts (and people) that load or compare them.
func writeSummary(o Options, res *Result) error {
	var s []summaryEntry
	for _, b := range res.Images {
		s = append(s, summaryEntry{Name: b.Image.Name, Ref: b.Ref, Digest: b.Digest.String(), Size: b.Size, Unpacked: b.Unpacked, Tarball: filepath.Base(b.Tarball)})
	}
	for _, sk := range res.Skipped {
		s = append(s, summaryEntry{Name: sk.Image.Name, Skipped: sk.Reason})
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(o.Out, "images.json"), append(data, '\n'))
}

// Load reads what Build wrote to out (images.json, the OCI layout and
// the tarballs) back as a Result; its images are read from the layout.
func Load(out string) (*Result, error) {
	data, err := os.ReadFile(filepath.Join(out, "images.json"))
	if err != nil {
		return nil, err
	}
	var summary []summaryEntry
	if err := json.Unmarshal(data, &summary); err != nil {
		return nil, fmt.Errorf("%s/images.json: %w", out, err)
	}
	l, err := OpenLayout(filepath.Join(out, "oci"))
	if err != nil {
		return nil, err
	}
	res := &Result{Layout: l.Dir()}
	for _, s := range summary {
		im, ok := Lookup(s.Name)
		if !ok {
			return nil, fmt.Errorf("%s/images.json: image %q is not in the table", out, s.Name)
		}
		if s.Skipped != "" {
			res.Skipped = append(res.Skipped, Skipped{Image: im, Reason: s.Skipped})
			continue
		}
		img, digest, ok, err := l.Find(s.Ref)
		if err != nil {
			return nil, err
		}
		if !ok || digest.String() != s.Digest {
			return nil, fmt.Errorf("%s: the layout does not hold %s@%s", out, s.Ref, s.Digest)
		}
		res.Images = append(res.Images, Built{Image: im, Ref: s.Ref, Digest: digest, Size: s.Size, Unpacked: s.Unpacked,
			Tarball: filepath.Join(out, s.Tarball), V1: img})
	}
	return res, nil
}

// Make builds the images as `make images` does, in a process of its own
// (go run ./hack/images build -out out args...), and loads the result.
// Tests use it: they run with the race detector, under which compressing
// layers in the test's own process is many times slower.
func Make(ctx context.Context, out string, args ...string) (*Result, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./hack/images", "build", "-out", out}, args...)...)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go run ./hack/images build: %w\n%s", err, output)
	}
	return Load(out)
}

// UnpackTarball unpacks the image of a `docker save` tarball into dir
// (see Unpack).
func UnpackTarball(path, dir string) (*Rootfs, error) {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Unpack(img, dir, UnpackOptions{})
}

// UnpackOutOfProcess is UnpackTarball in a process of its own (go run
// ./hack/images unpack), for tests under the race detector, where
// gunzip and tar in the test's process are many times slower.
func UnpackOutOfProcess(ctx context.Context, path, dir string) (*Rootfs, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "go", "run", "./hack/images", "unpack", "-tarball", path, "-out", dir)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go run ./hack/images unpack: %w\n%s", err, stderr.String())
	}
	var r Rootfs
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("go run ./hack/images unpack: %w", err)
	}
	return &r, nil
}
