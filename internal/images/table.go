package images

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DefaultTag is the tag images get unless told otherwise: the Helm
// chart's appVersion, so the chart's default references name what
// `make images` builds (a test compares the two).
const DefaultTag = "0.1.0"

// DefaultPrefix is the repository prefix of local images: isotope/<name>.
const DefaultPrefix = "isotope"

// Where things are inside every image.
const (
	// BinaryPath is the isotope binary. It is on PATH, so the commands
	// Isotope's controllers give containers ("isotope fetcher …") run.
	BinaryPath = "/usr/local/bin/isotope"
	// UID and GID are the non-root user every image runs as; the chart's
	// runAsUser. 65532 is distroless's "nonroot", the common choice.
	UID, GID = 65532, 65532
	// Home is the user's home directory.
	Home = "/home/isotope"
	// GoRoot is where the go-wasm builder's Go toolchain lives.
	GoRoot = "/usr/local/go"
	// CACerts is the root certificate bundle, where Go (crypto/x509)
	// and most other software look for it on Linux.
	CACerts = "/etc/ssl/certs/ca-certificates.crt"
)

// basePath is PATH in every image; a toolchain puts its own bin first.
const basePath = "/usr/local/bin:/usr/bin:/bin"

// Image is one image of the platform: what goes into it and how it runs.
// Every image is the isotope binary on an empty base; builders add the
// toolchain their builds use. Adding an image is one entry in All.
type Image struct {
	// Name is the repository's last element: the image is
	// <prefix>/<Name>:<tag>, and deploy/docker/<Name>.Dockerfile builds
	// the same image with Docker.
	Name string
	// Description is the org.opencontainers.image.description label.
	Description string
	// Entrypoint and Cmd are the image's ENTRYPOINT and CMD.
	Entrypoint, Cmd []string
	// Env is ENV beyond PATH and HOME, which every image sets.
	Env []string
	// Ports are the TCP ports the image EXPOSEs.
	Ports []int
	// Dirs are directories the image's user owns (besides /tmp and
	// Home): where its pods mount volumes or it writes.
	Dirs []string
	// Volumes are the image's VOLUMEs.
	Volumes []string
	// Toolchain, when set, adds a layer holding what the image's builds
	// run, and puts its bin directory first on PATH.
	Toolchain *Toolchain
}

// All is every image `make images` builds, in build order.
var All = []Image{
	{
		Name:        "isotope",
		Description: "Isotope's control plane: every role (storagesvc, router, executor, buildermgr, timer) is `isotope <role>`",
		Entrypoint:  []string{BinaryPath},
		Cmd:         []string{"--help"},
	},
	{
		Name:        "wasm-env",
		Description: "Isotope's WebAssembly environment: a Fission runtime (port 8888) that runs WebAssembly functions on wazero",
		Entrypoint:  []string{BinaryPath, "wasm-env"},
		Cmd:         []string{"--addr", ":8888", "--userfunc-dir", "/userfunc"},
		Ports:       []int{8888},
		Dirs:        []string{"/userfunc"},
	},
	{
		Name:        "fetcher",
		Description: "Isotope's fetcher, the sidecar of builder and function pods (Fission's fetcher API on port 8000)",
		Entrypoint:  []string{BinaryPath, "fetcher"},
		Cmd:         []string{"/userfunc"},
		Ports:       []int{8000},
		Dirs:        []string{"/userfunc", "/packages", "/secrets", "/configs"},
	},
	{
		Name:        "go-wasm-builder",
		Description: "Isotope's Go-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build go-wasm` with the Go toolchain inside",
		Entrypoint:  []string{BinaryPath, "builder"},
		Cmd:         []string{"/packages"},
		// GOCACHE and GOMODCACHE go under /cache: mount a volume there
		// to keep rebuilds fast across pod restarts.
		Env:       []string{"ISOTOPE_GO_CACHE=/cache", "GOTOOLCHAIN=local"},
		Ports:     []int{8001},
		Dirs:      []string{"/packages", "/cache"},
		Volumes:   []string{"/cache"},
		Toolchain: GoToolchain(),
	},
	{
		Name:        "c-wasm-builder",
		Description: "Isotope's C/C++-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build c-wasm` with Debian's clang, wasm-ld and wasi-libc inside",
		Entrypoint:  []string{BinaryPath, "builder"},
		Cmd:         []string{"/packages"},
		Ports:       []int{8001},
		Dirs:        []string{"/packages"},
		Toolchain:   CToolchain(),
	},
	{
		Name:        "rust-wasm-builder",
		Description: "Isotope's Rust-to-WebAssembly builder (Fission's builder API on port 8001): `isotope build rust-wasm` with Debian's rustc, cargo and the wasm32 standard library inside",
		Entrypoint:  []string{BinaryPath, "builder"},
		Cmd:         []string{"/packages"},
		Ports:       []int{8001},
		Dirs:        []string{"/packages"},
		Toolchain:   RustToolchain(),
	},
}

// CToolchain is the c-wasm builder's toolchain: the packages .ci/run
// installs for it (clang, wasm-ld, wasi-libc, clang's wasm32 runtime,
// libc++ for C++), make and dash (/bin/sh) for build scripts. clang
// depends on the host's C development files (libc6-dev, libgcc and
// libstdc++ headers, binutils) to compile for the host; a wasm32-wasi
// build reads the WASI sysroot and runs wasm-ld instead, so those are
// left out (TestToolchainImagesBuild compiles C and C++ in the image).
func CToolchain() *Toolchain {
	return DebianToolchain("c",
		[]string{"clang", "lld", "wasi-libc", "libclang-rt-*-dev-wasm32", "libc++-*-dev-wasm32", "libc++abi-*-dev-wasm32", "make", "dash"},
		regexp.MustCompile(`^(libc6-dev|libgcc-\d+-dev|libstdc\+\+-\d+-dev|libobjc-\d+-dev|binutils)$`),
		map[string]string{"/usr/bin/sh": "dash"})
}

// RustToolchain is the rust-wasm builder's toolchain: Debian's rustc,
// cargo, the wasm32 standard library and lld, whole: a crate's build
// scripts and procedural macros compile and link for the host, which
// needs the host's standard library, cc and the C library.
func RustToolchain() *Toolchain {
	return DebianToolchain("rust", []string{"rustc", "cargo", "libstd-rust-dev-wasm32", "lld"}, nil, nil)
}

// Lookup returns the image named name.
func Lookup(name string) (Image, bool) {
	i := slices.IndexFunc(All, func(im Image) bool { return im.Name == name })
	if i < 0 {
		return Image{}, false
	}
	return All[i], true
}

// Names are the names of All, in order.
func Names() []string {
	out := make([]string, len(All))
	for i, im := range All {
		out[i] = im.Name
	}
	return out
}

// select returns the images named in names (all for none), in All's
// order, or an error naming what is unknown.
func selectImages(names []string) ([]Image, error) {
	if len(names) == 0 {
		return slices.Clone(All), nil
	}
	var out []Image
	for _, im := range All {
		if slices.Contains(names, im.Name) {
			out = append(out, im)
		}
	}
	for _, n := range names {
		if _, ok := Lookup(n); !ok {
			return nil, fmt.Errorf("no image %q (images: %s)", n, strings.Join(Names(), ", "))
		}
	}
	return out, nil
}

// EnvList is the image's whole ENV: PATH (the toolchain's bin first),
// HOME, then Env.
func (im Image) EnvList() []string {
	path := basePath
	if im.Toolchain != nil && im.Toolchain.Bin != "" {
		path = im.Toolchain.Bin + ":" + path
	}
	return append([]string{"PATH=" + path, "HOME=" + Home}, im.Env...)
}

// User is the image's USER, uid:gid.
func (im Image) User() string { return fmt.Sprintf("%d:%d", UID, GID) }

// Reference is the image's reference under prefix and tag
// ("isotope/wasm-env:0.1.0").
func (im Image) Reference(prefix, tag string) string {
	return strings.TrimSuffix(prefix, "/") + "/" + im.Name + ":" + tag
}
