package nodeagent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"isotope.dev/isotope/internal/images"
)

// launch is how a container's image runs on this machine: from the image
// itself, unpacked (rootfs set), or by an image rule with a program of
// this machine (Programs).
type launch struct {
	entrypoint, cmd []string
	rootfs          *images.Rootfs
	imageID         string // the container status's imageID
}

// imageStore runs containers from an OCI image layout: each image is
// unpacked once per agent, on first use, under dir.
type imageStore struct {
	layout *images.Layout
	dir    string

	mu      sync.Mutex
	unpacks map[string]*unpack // by manifest digest
}

type unpack struct {
	once   sync.Once
	rootfs *images.Rootfs
	err    error
}

func openImageStore(layoutDir, dir string) (*imageStore, error) {
	l, err := images.OpenLayout(layoutDir)
	if err != nil {
		return nil, err
	}
	return &imageStore{layout: l, dir: dir, unpacks: map[string]*unpack{}}, nil
}

// find returns how to run image from the layout; ok is false when the
// layout does not hold it.
func (s *imageStore) find(image string) (l launch, ok bool, err error) {
	img, digest, ok, err := s.layout.Find(image)
	if err != nil || !ok {
		return launch{}, ok, err
	}
	s.mu.Lock()
	u := s.unpacks[digest.String()]
	if u == nil {
		u = &unpack{}
		s.unpacks[digest.String()] = u
	}
	s.mu.Unlock()
	u.once.Do(func() {
		dir := filepath.Join(s.dir, digest.Hex[:16])
		if err := os.RemoveAll(dir); err != nil {
			u.err = err
			return
		}
		u.rootfs, u.err = images.Unpack(img, dir, images.UnpackOptions{})
	})
	if u.err != nil {
		return launch{}, true, fmt.Errorf("image %s: unpacking %s: %w", image, digest, u.err)
	}
	cfg := u.rootfs.Config
	return launch{
		entrypoint: cfg.Entrypoint, cmd: cfg.Cmd, rootfs: u.rootfs,
		imageID: repository(image) + "@" + digest.String(),
	}, true, nil
}

// ruleLaunch is how an image rule runs image (ok false: no rule matches).
func ruleLaunch(rules []ImageRule, image string) (launch, bool) {
	i := slices.IndexFunc(rules, func(r ImageRule) bool { return r.matches(image) })
	if i < 0 {
		return launch{}, false
	}
	return launch{entrypoint: rules[i].Entrypoint, cmd: rules[i].Cmd, imageID: "nodeagent://" + image}, true
}

// imagePath is the container-visible PATH: the container's own, else
// the image's.
func imagePath(r *images.Rootfs, env map[string]string) string {
	if p, ok := env["PATH"]; ok {
		return p
	}
	for _, kv := range r.Config.Env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			return p
		}
	}
	return ""
}

// lookProgram finds argv0 in the image as a container runtime does: a
// path as it is, a name on PATH; symlinks are followed inside the
// image, never out of it.
func lookProgram(r *images.Rootfs, argv0, pathEnv string) (string, error) {
	var candidates []string
	if strings.Contains(argv0, "/") {
		candidates = []string{path.Clean("/" + argv0)}
	} else {
		for _, d := range strings.Split(pathEnv, ":") {
			if strings.HasPrefix(d, "/") {
				candidates = append(candidates, path.Join(d, argv0))
			}
		}
	}
	for _, c := range candidates {
		host, err := resolveIn(r, c)
		if err != nil {
			continue
		}
		if st, err := os.Stat(host); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return host, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in the image (PATH %q)", argv0, pathEnv)
}

// resolveIn is the host path of the image path p, following symlinks
// the way they would resolve inside the image.
func resolveIn(r *images.Rootfs, p string) (string, error) {
	p = path.Clean("/" + p)
	for range 16 {
		host := r.Path(p)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return host, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(target, "/") {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean("/" + target)
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

// inImage reports whether the absolute path p names something of the
// image: its first element exists in the image's root ("/usr/…", not
// "/proc/…" or "/dev/…", which stay the machine's).
func inImage(r *images.Rootfs, p string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path.Clean(p), "/"), "/")
	if first == "" {
		return false
	}
	_, err := os.Lstat(filepath.Join(r.Dir, first))
	return err == nil
}

// privateDirs gives the pod its own copy of each directory the image's
// user may write (/tmp, the home directory, /cache …) that no volume
// covers: a container's writable layer, here a directory of the pod,
// so pods never write into the shared unpacked image.
func privateDirs(r *images.Rootfs, place podPlace) error {
	for _, w := range r.Writable {
		if w == "/" {
			continue
		}
		if _, mounted := place.mounts[w]; mounted {
			continue
		}
		dst := filepath.Join(place.dir, "rootfs", filepath.FromSlash(w))
		if err := os.CopyFS(dst, os.DirFS(r.Path(w))); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("private copy of %s: %w", w, err)
		}
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		place.mounts[w] = dst
	}
	return nil
}
