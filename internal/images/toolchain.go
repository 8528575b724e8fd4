package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Toolchain is what a builder image's builds run, taken from this
// machine's installation as one layer.
type Toolchain struct {
	// Name says what it is in logs and the layer's history ("go").
	Name string
	// Root is where it goes in the image; Bin is its bin directory
	// there, first on the image's PATH.
	Root, Bin string
	// files lists the toolchain's files for an image of goarch, and a
	// key that changes whenever their contents may have.
	files func(ctx context.Context, goarch string) (entries []entry, key string, err error)
}

// goTools are the programs of pkg/tool that `go build` runs for a
// GOOS=wasip1 GOARCH=wasm build without cgo: the compiler, the linker
// and the assembler (the runtime has .s files). cgo, vet, cover, fix and
// preprofile are for other commands and flags.
var goTools = []string{"asm", "compile", "link"}

// GoToolchain is the Go toolchain of the go-wasm builder image, from the
// GOROOT of the go command on PATH: bin/go; pkg/tool/<host>/ compile,
// link and asm; pkg/include (the assembler's headers); the standard
// library's sources without tests, testdata and src/cmd (the sources of
// the tools, which `go build` never compiles); VERSION, go.env, LICENSE
// and PATENTS. The standard library is compiled on the first build into
// the builder's GOCACHE, as with any Go installation since Go 1.20.
//
// The toolchain runs on the image's platform, so the machine's Go must
// be for linux and the image's GOARCH.
func GoToolchain() *Toolchain {
	return &Toolchain{Name: "go", Root: GoRoot, Bin: GoRoot + "/bin", files: goFiles}
}

func goFiles(ctx context.Context, goarch string) ([]entry, string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT", "GOVERSION", "GOHOSTOS", "GOHOSTARCH").Output()
	if err != nil {
		return nil, "", fmt.Errorf("go env: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 4 {
		return nil, "", fmt.Errorf("go env: unexpected output %q", out)
	}
	goroot, version, hostOS, hostArch := f[0], f[1], f[2], f[3]
	if hostOS != "linux" || hostArch != goarch {
		return nil, "", fmt.Errorf("the go-wasm builder's toolchain is this machine's Go installation (%s), which runs on %s/%s, "+
			"not on the images' linux/%s: build the images on linux/%s, or leave go-wasm-builder out", goroot, hostOS, hostArch, goarch, goarch)
	}
	var entries []entry
	key := sha256.New()
	fmt.Fprintf(key, "go %s %s\n", version, goroot)
	add := func(rel string, fi fs.FileInfo) {
		src := filepath.Join(goroot, filepath.FromSlash(rel))
		dst := path.Join(GoRoot, rel)
		switch {
		case fi.IsDir():
			entries = append(entries, dirEntry(dst, 0o755, 0, 0))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err == nil {
				entries = append(entries, entry{path: dst, mode: fs.ModeSymlink | 0o777, link: target})
			}
		case fi.Mode().IsRegular():
			perm := fs.FileMode(0o644)
			if fi.Mode()&0o111 != 0 {
				perm = 0o755
			}
			entries = append(entries, entry{path: dst, mode: perm, src: src, size: fi.Size()})
		default:
			return
		}
		fmt.Fprintf(key, "%s %v %d %d\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	}
	for _, rel := range []string{"VERSION", "go.env", "LICENSE", "PATENTS", "bin/go"} {
		fi, err := os.Lstat(filepath.Join(goroot, rel))
		if err != nil {
			if rel == "PATENTS" || rel == "LICENSE" {
				continue // not in every distribution's package
			}
			return nil, "", fmt.Errorf("Go toolchain at %s: %w", goroot, err)
		}
		add(rel, fi)
	}
	toolDir := "pkg/tool/" + hostOS + "_" + hostArch
	for _, t := range goTools {
		fi, err := os.Stat(filepath.Join(goroot, toolDir, t))
		if err != nil {
			return nil, "", fmt.Errorf("Go toolchain at %s: %w", goroot, err)
		}
		add(toolDir+"/"+t, fi)
	}
	for _, tree := range []string{"pkg/include", "src"} {
		err := filepath.WalkDir(filepath.Join(goroot, tree), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(goroot, p)
			rel = filepath.ToSlash(rel)
			name := d.Name()
			if d.IsDir() && (name == "testdata" || rel == "src/cmd") {
				return fs.SkipDir
			}
			if strings.HasSuffix(name, "_test.go") {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			add(rel, fi)
			return nil
		})
		if err != nil {
			return nil, "", fmt.Errorf("Go toolchain at %s: %w", goroot, err)
		}
	}
	return entries, hex.EncodeToString(key.Sum(nil)), nil
}

// caBundle is the root certificates of golang.org/x/crypto/x509roots
// (Mozilla's NSS trust store, pinned in go.sum) as one PEM file, so
// images without a distribution still verify TLS, both the isotope
// binary and the builder's go command (module downloads). Roots that
// NSS trusts only with extra constraints (distrust after a date) are
// left out: a PEM bundle cannot carry the constraint.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}
