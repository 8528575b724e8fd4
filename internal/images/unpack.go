package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// Layout is an OCI image layout (Build writes one to Out/oci), opened to
// find images by reference.
type Layout struct {
	dir  string
	path layout.Path
	refs []layoutRef
}

type layoutRef struct {
	ref    string // as annotated
	name   string // normalized: registry/repository:tag
	digest v1.Hash
}

// OpenLayout reads the index of the OCI layout in dir.
func OpenLayout(dir string) (*Layout, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	l := &Layout{dir: dir, path: p}
	for _, d := range m.Manifests {
		ref := d.Annotations[RefAnnotation]
		if ref == "" {
			continue
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			continue // a tag alone, say: not a name we can match
		}
		l.refs = append(l.refs, layoutRef{ref: ref, name: r.Name(), digest: d.Digest})
	}
	return l, nil
}

// Dir is the layout's directory.
func (l *Layout) Dir() string { return l.dir }

// Refs are the references the layout names, as written.
func (l *Layout) Refs() []string {
	var out []string
	for _, r := range l.refs {
		out = append(out, r.ref)
	}
	return out
}

// Find returns the image that ref names, read the way Kubernetes reads
// a container's image: docker.io and "latest" when left out, a digest
// (…@sha256:…) matching the manifest. ok is false when the layout does
// not hold it.
func (l *Layout) Find(ref string) (img v1.Image, digest v1.Hash, ok bool, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, v1.Hash{}, false, fmt.Errorf("image %q: %w", ref, err)
	}
	for _, lr := range l.refs {
		match := lr.name == r.Name()
		if d, isDigest := r.(name.Digest); isDigest {
			match = lr.digest.String() == d.DigestStr()
		}
		if match {
			img, err := l.path.Image(lr.digest)
			if err != nil {
				return nil, v1.Hash{}, false, fmt.Errorf("image %s in %s: %w", ref, l.dir, err)
			}
			return img, lr.digest, true, nil
		}
	}
	return nil, v1.Hash{}, false, nil
}

// Rootfs is an image unpacked into a directory.
type Rootfs struct {
	// Dir holds the image's files: the image's / is Dir.
	Dir string
	// Config is how the image runs: entrypoint, cmd, env, user.
	Config v1.Config
	// Writable are the directories the image's user may write (its own,
	// or world-writable like /tmp), in the image's terms ("/tmp").
	Writable []string
}

// Path is where the image's absolute path p is on this machine.
func (r *Rootfs) Path(p string) string {
	return filepath.Join(r.Dir, filepath.FromSlash(path.Clean("/"+p)))
}

// UnpackOptions configure Unpack.
type UnpackOptions struct {
	// Chown gives files the owners the image says; it needs root and is
	// skipped, silently, without it.
	Chown bool
}

// Unpack writes img's files, all layers applied in order (whiteouts
// honoured), into dir, which must not exist yet or be empty. No path
// leaves dir: entries with ".." and entries under a symlink are refused.
func Unpack(img v1.Image, dir string, o UnpackOptions) (*Rootfs, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	uid := -1
	if u, _, _ := strings.Cut(cfg.Config.User, ":"); u != "" {
		if n, err := strconv.Atoi(u); err == nil {
			uid = n
		}
	}
	chown := o.Chown && os.Geteuid() == 0
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	links := map[string]bool{} // symlinks written, by image path
	type dirMode struct {
		p    string
		mode fs.FileMode
	}
	var dirs []dirMode
	var writable []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
		ip := path.Clean("/" + hdr.Name)
		if ip == "/" {
			continue
		}
		if slices.Contains(strings.Split(hdr.Name, "/"), "..") {
			return nil, fmt.Errorf("unpack: entry %q leaves the root", hdr.Name)
		}
		for d := path.Dir(ip); d != "/"; d = path.Dir(d) {
			if links[d] {
				return nil, fmt.Errorf("unpack: entry %q is under the symlink %s", hdr.Name, d)
			}
		}
		dst := filepath.Join(dir, filepath.FromSlash(ip))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return nil, err
			}
			full := mode
			if hdr.Mode&0o1000 != 0 {
				full |= fs.ModeSticky
			}
			dirs = append(dirs, dirMode{dst, full})
			if hdr.Uid == uid || mode&0o002 != 0 {
				writable = append(writable, ip)
			}
		case tar.TypeReg:
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(dst, mode)
			}
			if err != nil {
				return nil, fmt.Errorf("unpack %s: %w", ip, err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, dst); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", ip, err)
			}
			links[ip] = true
		case tar.TypeLink:
			target := path.Clean("/" + hdr.Linkname)
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(target)), dst); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", ip, err)
			}
		default:
			continue // devices, fifos: nothing of ours has them
		}
		if chown {
			if err := os.Lchown(dst, hdr.Uid, hdr.Gid); err != nil {
				return nil, fmt.Errorf("unpack %s: %w", ip, err)
			}
		}
	}
	// Directory modes last, so a read-only directory did not stop its
	// files from being written.
	for _, d := range slices.Backward(dirs) {
		if err := os.Chmod(d.p, d.mode); err != nil {
			return nil, err
		}
	}
	slices.Sort(writable)
	return &Rootfs{Dir: dir, Config: cfg.Config, Writable: writable}, nil
}
