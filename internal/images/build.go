package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options configure Build. Zero values take the defaults.
type Options struct {
	// Root is the repository (the directory with go.mod); default: found
	// upwards from the working directory.
	Root string
	// Out receives the OCI layout (Out/oci) and one `docker save`
	// tarball per image (Out/<name>.tar); default Root/bin/images.
	// Empty Out with NoWrite: nothing is written.
	Out string
	// NoWrite builds the images in memory (and the cache) only.
	NoWrite bool
	// Images are the names to build; default all of All.
	Images []string
	// Prefix and Tag name the images: <Prefix>/<name>:<Tag>; default
	// DefaultPrefix and DefaultTag.
	Prefix, Tag string
	// Revision is the org.opencontainers.image.revision label; default
	// the git commit of Root (with "-dirty" when tracked files differ
	// from it), "unknown" outside git.
	Revision string
	// Created is the images' creation time; default $SOURCE_DATE_EPOCH,
	// else the commit's time, else the Unix epoch. Never the clock: the
	// same commit gives the same digests.
	Created time.Time
	// GOARCH is the images' architecture (linux/GOARCH); default this
	// machine's.
	GOARCH string
	// CacheDir keeps the compiled binary and compressed layers between
	// builds; default <user cache dir>/isotope/images.
	CacheDir string
	// Log receives progress; default discarded.
	Log io.Writer
}

// Built is one image that Build assembled.
type Built struct {
	Image Image
	// Ref is its reference, <prefix>/<name>:<tag>.
	Ref string
	// Digest is the manifest's digest: the image's identity.
	Digest v1.Hash
	// Size is what a registry stores and a node pulls: the manifest,
	// the config and the compressed layers. Unpacked is the layers'
	// uncompressed size, what `docker images` shows.
	Size, Unpacked int64
	// Tarball is the `docker save` tarball's path ("" with NoWrite).
	Tarball string
	// V1 is the image itself.
	V1 v1.Image
}

// Result is what Build made.
type Result struct {
	// Layout is the OCI image layout holding every image ("" with NoWrite).
	Layout string
	// Images are the images, in All's order.
	Images []Built
	// Binary is the static isotope binary inside them.
	Binary string
	// Skipped are the images of All this machine cannot build (their
	// toolchain's packages are not installed), when all were asked for.
	Skipped []Skipped
}

// Skipped is an image Build left out, and why.
type Skipped struct {
	Image  Image
	Reason string
}

// Build compiles the isotope binary (static, CGO_ENABLED=0, -trimpath,
// fixed ldflags) and assembles the images from it on an empty base, with
// no daemon and no base image: each image is a small base layer (user,
// CA certificates, its directories), a toolchain layer for builders,
// and the binary. Everything that goes into a digest is fixed by the
// commit: file times are the epoch, entries sorted, owners numeric, the
// creation time the commit's.
func Build(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := selectImages(o.Images)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	bin, binSum, binLayer, err := binaryLayer(ctx, o)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "images: isotope binary %s (sha256 %s) in %v\n", bin, binSum[:12], time.Since(start).Round(time.Millisecond))

	res := &Result{Binary: bin}
	for _, im := range sel {
		img, err := assemble(ctx, o, im, binLayer)
		var ue *UnavailableError
		if errors.As(err, &ue) && len(o.Images) == 0 {
			// Everything was asked for: build what this machine can.
			fmt.Fprintf(o.Log, "images: skipping %s: %v\n", im.Name, ue)
			res.Skipped = append(res.Skipped, Skipped{Image: im, Reason: ue.Error()})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
		b := Built{Image: im, Ref: im.Reference(o.Prefix, o.Tag), V1: img}
		if b.Digest, err = img.Digest(); err != nil {
			return nil, err
		}
		if b.Size, b.Unpacked, err = sizes(img); err != nil {
			return nil, err
		}
		res.Images = append(res.Images, b)
	}
	if o.NoWrite {
		return res, nil
	}
	if err := write(o, res); err != nil {
		return nil, err
	}
	for _, b := range res.Images {
		fmt.Fprintf(o.Log, "images: %-40s %s  %6.1f MB compressed, %6.1f MB unpacked\n", b.Ref, b.Digest, mb(b.Size), mb(b.Unpacked))
	}
	fmt.Fprintf(o.Log, "images: OCI layout %s, tarballs in %s (%v)\n", res.Layout, o.Out, time.Since(start).Round(time.Millisecond))
	return res, nil
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func (o Options) withDefaults(ctx context.Context) (Options, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Root == "" {
		root, err := RepoRoot()
		if err != nil {
			return o, err
		}
		o.Root = root
	}
	if o.Out == "" && !o.NoWrite {
		o.Out = filepath.Join(o.Root, "bin", "images")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Tag == "" {
		o.Tag = DefaultTag
	}
	if _, err := name.NewTag(o.Prefix + "/x:" + o.Tag); err != nil {
		return o, fmt.Errorf("prefix %q and tag %q do not make an image reference: %w", o.Prefix, o.Tag, err)
	}
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	if o.CacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("no cache directory (set Options.CacheDir): %w", err)
		}
		o.CacheDir = filepath.Join(base, "isotope", "images")
	}
	commit, commitTime, dirty := gitState(ctx, o.Root)
	if o.Revision == "" {
		switch {
		case commit == "":
			o.Revision = "unknown"
		case dirty:
			o.Revision = commit + "-dirty"
		default:
			o.Revision = commit
		}
	}
	if o.Created.IsZero() {
		o.Created = epoch
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return o, fmt.Errorf("SOURCE_DATE_EPOCH=%q: not a number of seconds", s)
			}
			o.Created = time.Unix(n, 0).UTC()
		} else if !commitTime.IsZero() {
			o.Created = commitTime
		}
	}
	o.Created = o.Created.UTC().Truncate(time.Second)
	return o, nil
}

// RepoRoot is the directory holding Isotope's go.mod, upwards from the
// working directory (hack/ has modules of its own).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module isotope.dev/isotope\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of isotope.dev/isotope above the working directory: run from the repository")
		}
		dir = parent
	}
}

// gitState is HEAD's commit and time, and whether tracked files differ
// from it; zero values outside git.
func gitState(ctx context.Context, root string) (commit string, at time.Time, dirty bool) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	out, err := git("log", "-1", "--format=%H %ct")
	if err != nil {
		return "", time.Time{}, false
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", time.Time{}, false
	}
	secs, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	status, err := git("status", "--porcelain", "--untracked-files=no")
	return f[0], time.Unix(secs, 0).UTC(), err != nil || status != ""
}

// gitSource is the repository's origin as an https URL without
// credentials, for the source label; "" when there is none.
func gitSource(ctx context.Context, root string) string {
	cmd := exec.CommandContext(ctx, "git", "remote", "get-url", "origin")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	u, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return ""
	}
	u.User = nil
	return u.String()
}

// binaryLayer links the static isotope binary for linux/GOARCH into the
// cache (go build relinks only when something changed) and returns it,
// its sha256 and its layer. The binary's path is per source tree, and a
// lock on it lasts until its layer exists, so concurrent builds (test
// binaries side by side, another worktree) never put another build's
// binary into their images.
func binaryLayer(ctx context.Context, o Options) (bin, sum string, layer v1.Layer, err error) {
	dir := filepath.Join(o.CacheDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, err
	}
	tree := sha256.Sum256([]byte(o.Root))
	bin = filepath.Join(dir, fmt.Sprintf("isotope-linux-%s-%x", o.GOARCH, tree[:6]))
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		return "", "", nil, err
	}
	defer unlock()
	cmd := exec.CommandContext(ctx, "go", BinaryBuildArgs(o.Tag, bin)...)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", nil, fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	if sum, err = fileSHA256(bin); err != nil {
		return "", "", nil, err
	}
	layer, err = cachedLayer(filepath.Join(o.CacheDir, "layers"), "binary", sum, func() ([]entry, error) {
		st, err := os.Stat(bin)
		if err != nil {
			return nil, err
		}
		return []entry{{path: BinaryPath, mode: 0o755, src: bin, size: st.Size()}}, nil
	})
	if err != nil {
		return "", "", nil, fmt.Errorf("binary layer: %w", err)
	}
	return bin, sum, layer, nil
}

// BinaryBuildArgs are the go command's arguments that build the isotope
// binary of the images (with CGO_ENABLED=0 GOOS=linux): no VCS stamp
// and no local paths (-trimpath), no symbol tables, the version set.
func BinaryBuildArgs(tag, out string) []string {
	return []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -X isotope.dev/isotope/internal/cli.Version=" + tag,
		"-o", out, "./cmd/isotope"}
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// assemble puts one image together: config, then the base layer, the
// toolchain (builders), the binary.
func assemble(ctx context.Context, o Options, im Image, binLayer v1.Layer) (v1.Image, error) {
	base, err := memLayer(baseEntries(im))
	if err != nil {
		return nil, err
	}
	adds := []mutate.Addendum{{Layer: base, History: history(o, "base: user "+im.User()+", CA certificates, directories")}}
	if tc := im.Toolchain; tc != nil {
		entries, key, err := tc.files(ctx, o.GOARCH)
		if err != nil {
			return nil, err
		}
		tl, err := cachedLayer(filepath.Join(o.CacheDir, "layers"), "toolchain-"+tc.Name, key, func() ([]entry, error) { return entries, nil })
		if err != nil {
			return nil, fmt.Errorf("%s toolchain layer: %w", tc.Name, err)
		}
		adds = append(adds, mutate.Addendum{Layer: tl, History: history(o, tc.Name+" toolchain in "+tc.Root)})
	}
	adds = append(adds, mutate.Addendum{Layer: binLayer, History: history(o, "isotope binary at "+BinaryPath)})

	ports := map[string]struct{}{}
	for _, p := range im.Ports {
		ports[fmt.Sprintf("%d/tcp", p)] = struct{}{}
	}
	vols := map[string]struct{}{}
	for _, v := range im.Volumes {
		vols[v] = struct{}{}
	}
	if len(ports) == 0 {
		ports = nil
	}
	if len(vols) == 0 {
		vols = nil
	}
	cfg := &v1.ConfigFile{
		Architecture: o.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: o.Created},
		Config: v1.Config{
			User:         im.User(),
			Env:          im.EnvList(),
			Entrypoint:   im.Entrypoint,
			Cmd:          im.Cmd,
			ExposedPorts: ports,
			Volumes:      vols,
			WorkingDir:   "/",
			Labels:       labels(ctx, o, im),
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, adds...)
}

func history(o Options, what string) v1.History {
	return v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "isotope images: " + what}
}

// labels are the OCI annotations of the image's config.
func labels(ctx context.Context, o Options, im Image) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       o.Prefix + "/" + im.Name,
		"org.opencontainers.image.description": im.Description,
		"org.opencontainers.image.version":     o.Tag,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.created":     o.Created.Format(time.RFC3339),
		"org.opencontainers.image.url":         "https://isotope.dev",
		"org.opencontainers.image.vendor":      "Isotope",
	}
	if src := gitSource(ctx, o.Root); src != "" {
		l["org.opencontainers.image.source"] = src
	}
	return l
}

// baseEntries are an image's own small layer: the user (for tools that
// look names up), the CA bundle, /tmp, the home directory and the
// image's directories owned by the user.
func baseEntries(im Image) []entry {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nisotope:x:%d:%d:isotope:%s:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n", UID, GID, Home)
	group := fmt.Sprintf("root:x:0:\nisotope:x:%d:\nnobody:x:65534:\n", GID)
	es := []entry{
		fileEntry("/etc/passwd", 0o644, []byte(passwd)),
		fileEntry("/etc/group", 0o644, []byte(group)),
		fileEntry("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		fileEntry(CACerts, 0o644, caBundle()),
		dirEntry("/tmp", 0o777|os.ModeSticky, 0, 0),
		dirEntry(Home, 0o755, UID, GID),
	}
	for _, d := range im.Dirs {
		es = append(es, dirEntry(d, 0o755, UID, GID))
	}
	return es
}

// sizes are the image's pulled size (manifest, config, compressed
// layers) and its layers' uncompressed size.
func sizes(img v1.Image) (pulled, unpacked int64, err error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, 0, err
	}
	pulled = int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		pulled += l.Size
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range layers {
		if bl, ok := l.(*blobLayer); ok {
			unpacked += bl.info.Raw
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, 0, err
		}
		unpacked += n
	}
	return pulled, unpacked, nil
}
