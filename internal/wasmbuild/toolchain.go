package wasmbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MissingError is a toolchain, or a part of one, that is not installed
// where the build looked. Its message says what is missing, why the
// builder thinks so, and which Debian packages provide it, so a failed
// build's log tells the operator what to install.
type MissingError struct {
	// What is missing: "clang", "the WASI C library (wasi-libc)".
	What string
	// Detail is what the builder saw: a PATH searched, a compiler's
	// message.
	Detail string
	// Packages are the Debian packages that provide it.
	Packages []string
	// Hint is said after the packages (other ways to get it), if any.
	Hint string
}

func (e *MissingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is not installed", e.What)
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	fmt.Fprintf(&b, ". Install the Debian package(s) on the builder: %s", AptInstall(e.Packages...))
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// AptInstall is the command line that installs pkgs on Debian.
func AptInstall(pkgs ...string) string {
	return "apt-get install -y " + strings.Join(pkgs, " ")
}

// LookPath resolves name with the PATH in env (the build's environment,
// not necessarily this process's). A name with a slash is checked as
// is. Symbolic links are followed: a dangling one (a package's link to a
// tool of another package that is not installed) is not found.
func LookPath(name string, env []string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		if !isExecutable(name) {
			return "", fmt.Errorf("%s is not an executable file", name)
		}
		return name, nil
	}
	pathEnv := Getenv(env, "PATH")
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			continue
		}
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", errors.New(name + " is not on PATH " + strconv.Quote(pathEnv))
}

// LookPathAll returns every executable called name on env's PATH, in
// PATH order, each directory once (/bin and /usr/bin on a merged /usr
// are one). Only directories are resolved, not the files: rustup's
// proxies are links to one rustup binary, yet each is its own tool.
func LookPathAll(name string, env []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range filepath.SplitList(Getenv(env, "PATH")) {
		if d == "" {
			continue
		}
		p := filepath.Join(d, name)
		if !isExecutable(p) {
			continue
		}
		key := d
		if real, err := filepath.EvalSymlinks(d); err == nil {
			key = real
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// probeCache remembers successful probes of a tool per binary (path,
// size, modification time) and question, so a rebuild does not pay for
// them again. Failures are not kept: installing the missing package
// must take effect at the next build.
var probeCache sync.Map // string → string

// Probe runs argv (a tool asked about itself: its version, whether it
// can build a test program) with env and returns its output, remembered
// per binary and question once it succeeds. The run is bounded by 30
// seconds.
func Probe(ctx context.Context, env []string, dir string, argv ...string) (string, error) {
	st, err := os.Stat(argv[0])
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("%s|%d|%d|%s", argv[0], st.Size(), st.ModTime().UnixNano(), strings.Join(argv[1:], "\x00"))
	if v, ok := probeCache.Load(key); ok {
		return v.(string), nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	probeCache.Store(key, out.String())
	return out.String(), nil
}
