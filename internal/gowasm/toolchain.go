package gowasm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"isotope.dev/isotope/internal/wasmbuild"
)

// MinGoMinor is the oldest Go 1.x that builds reactor modules:
// go:wasmexport and -buildmode=c-shared on wasip1 arrived in Go 1.24.
const MinGoMinor = 24

// toolchain is a checked `go` command.
type toolchain struct {
	path    string
	version string // "go1.26.8"
}

// versionCache remembers `go env GOVERSION` per binary (path, size,
// mtime) so a rebuild does not pay for it again.
var versionCache sync.Map // string → string

// findGo locates the go command (name, or "go" on the PATH of env) and
// checks its version. The errors say how to fix the machine.
func findGo(ctx context.Context, name string, env []string) (toolchain, error) {
	if name == "" {
		name = "go"
	}
	path, err := wasmbuild.LookPath(name, env)
	if err != nil {
		return toolchain{}, fmt.Errorf("the Go toolchain was not found: %v. "+
			"The go-wasm builder compiles with the host's Go 1.%d or newer: install it "+
			"(https://go.dev/doc/install, or your distribution's golang package if it is recent enough) "+
			"and put its bin directory on the builder's PATH, or set ISOTOPE_GO to the go binary", err, MinGoMinor)
	}
	st, err := os.Stat(path)
	if err != nil {
		return toolchain{}, err
	}
	key := fmt.Sprintf("%s|%d|%d", path, st.Size(), st.ModTime().UnixNano())
	if v, ok := versionCache.Load(key); ok {
		return toolchain{path: path, version: v.(string)}, nil
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(vctx, path, "env", "GOVERSION")
	cmd.Env = append(append([]string{}, env...), "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return toolchain{}, fmt.Errorf("%s env GOVERSION failed: %v: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	version := strings.TrimSpace(string(out))
	if err := checkVersion(version); err != nil {
		return toolchain{}, fmt.Errorf("%s is %s: %w", path, version, err)
	}
	versionCache.Store(key, version)
	return toolchain{path: path, version: version}, nil
}

// checkVersion accepts go1.N[.P|rcN|betaN] with N ≥ MinGoMinor, later
// major versions, and development builds.
func checkVersion(v string) error {
	if strings.HasPrefix(v, "devel") {
		return nil
	}
	rest, ok := strings.CutPrefix(v, "go")
	if !ok {
		return fmt.Errorf("cannot read the Go version %q", v)
	}
	major, rest, _ := strings.Cut(rest, ".")
	i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if i >= 0 {
		rest = rest[:i]
	}
	maj, err1 := strconv.Atoi(major)
	min, err2 := strconv.Atoi(rest)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("cannot read the Go version %q", v)
	}
	if maj > 1 || maj == 1 && min >= MinGoMinor {
		return nil
	}
	return fmt.Errorf("the go-wasm builder needs Go 1.%d or newer (go:wasmexport and -buildmode=c-shared for wasip1); upgrade Go on the builder (https://go.dev/doc/install)", MinGoMinor)
}
