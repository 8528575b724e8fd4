package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
)

// DebianToolchain is a builder's toolchain made of Debian packages
// installed on this machine: the files of packages (dpkg's listing) and
// of every package they depend on (Depends and Pre-Depends, the first
// installed alternative, virtual packages through Provides), so the
// programs find their shared libraries and the dynamic loader (libc6)
// in the image. Documentation (/usr/share/doc, man, info, locale,
// lintian) is left out, and so are packages matching omit and what only
// they depend on. Paths are laid out merged-/usr, as Debian 12 does:
// /bin, /sbin and /lib* are symlinks into /usr. links are extra
// symlinks (path → target), for what a package's maintainer script
// would make (/usr/bin/sh → dash).
//
// A package may be a glob (libclang-rt-*-dev-wasm32): every installed
// package it matches. When one is not installed the toolchain is
// unavailable: make images skips the image and says which to install.
func DebianToolchain(name string, packages []string, omit *regexp.Regexp, links map[string]string) *Toolchain {
	tc := &Toolchain{Name: name, Root: "/usr (Debian packages " + strings.Join(packages, ", ") + ")"}
	tc.files = func(ctx context.Context, goarch string) ([]entry, string, error) {
		return debianFiles(ctx, goarch, packages, omit, links)
	}
	return tc
}

// UnavailableError says a toolchain cannot be taken from this machine
// (packages not installed, not Debian): its image is skipped, not failed,
// unless asked for by name.
type UnavailableError struct {
	Toolchain string
	Missing   []string
	Reason    string
}

func (e *UnavailableError) Error() string {
	if len(e.Missing) > 0 {
		return fmt.Sprintf("the %s toolchain is Debian packages that are not installed here: %s (apt-get install %s)",
			e.Toolchain, strings.Join(e.Missing, ", "), strings.Join(e.Missing, " "))
	}
	return fmt.Sprintf("the %s toolchain is Debian packages, and %s", e.Toolchain, e.Reason)
}

// debPackage is one installed package, as dpkg-query reports it.
type debPackage struct {
	name, arch, version string
	provides            []string
	depends             [][]string // alternatives of each dependency
}

// docDirs are left out of toolchain layers: nothing a build runs reads
// them.
var docDirs = []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/info/", "/usr/share/locale/", "/usr/share/lintian/", "/usr/share/bug/"}

// mergedDirs are the top-level directories that are symlinks into /usr.
var mergedDirs = []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"}

func debianFiles(ctx context.Context, goarch string, want []string, omit *regexp.Regexp, links map[string]string) ([]entry, string, error) {
	unavailable := func(reason string) error {
		return &UnavailableError{Toolchain: strings.Join(want, " "), Reason: reason}
	}
	archOut, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	if err != nil {
		return nil, "", unavailable("this machine has no dpkg: " + err.Error())
	}
	if arch := strings.TrimSpace(string(archOut)); arch != goarch {
		return nil, "", unavailable(fmt.Sprintf("this machine's packages are for %s, not the images' %s", arch, goarch))
	}
	installed, err := installedPackages(ctx)
	if err != nil {
		return nil, "", err
	}
	byName := map[string]*debPackage{}
	provider := map[string]*debPackage{}
	for _, p := range installed {
		if q, ok := byName[p.name]; !ok || q.arch != goarch && q.arch != "all" {
			byName[p.name] = p
		}
		for _, v := range p.provides {
			if _, ok := provider[v]; !ok {
				provider[v] = p
			}
		}
	}
	lookup := func(n string) *debPackage {
		n, _, _ = strings.Cut(n, ":") // foo:any, foo:amd64
		if p := byName[n]; p != nil {
			return p
		}
		return provider[n]
	}
	var roots []*debPackage
	var missing []string
	for _, w := range want {
		var found []*debPackage
		for _, p := range installed {
			if ok, _ := path.Match(w, p.name); ok {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			missing = append(missing, w)
		}
		roots = append(roots, found...)
	}
	if len(missing) > 0 {
		return nil, "", &UnavailableError{Toolchain: strings.Join(want, " "), Missing: missing}
	}
	// The closure, breadth first; omitted packages are not entered.
	seen := map[*debPackage]bool{}
	queue := roots
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] || omit != nil && omit.MatchString(p.name) && !slices.Contains(roots, p) {
			continue
		}
		seen[p] = true
		for _, alts := range p.depends {
			for _, a := range alts {
				if q := lookup(a); q != nil {
					queue = append(queue, q)
					break
				}
			}
		}
	}
	var pkgs []*debPackage
	for p := range seen {
		pkgs = append(pkgs, p)
	}
	slices.SortFunc(pkgs, func(a, b *debPackage) int { return strings.Compare(a.name, b.name) })

	key := sha256.New()
	fmt.Fprintf(key, "debian %s\n", goarch)
	args := []string{"-L"}
	for _, p := range pkgs {
		fmt.Fprintf(key, "%s %s %s\n", p.name, p.arch, p.version)
		q := p.name
		if p.arch != "all" {
			q += ":" + p.arch
		}
		args = append(args, q)
	}
	out, err := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	if err != nil {
		return nil, "", fmt.Errorf("dpkg-query -L: %w", err)
	}
	paths := map[string]string{} // path in the image → path on this machine
	for line := range strings.Lines(string(out)) {
		host := strings.TrimSpace(line)
		if !strings.HasPrefix(host, "/") || host == "/." {
			continue
		}
		img := usrMerged(host)
		if img == "/usr" || img != host && !strings.Contains(host[1:], "/") || // /bin: a symlink here and in the image
			slices.ContainsFunc(docDirs, func(d string) bool { return strings.HasPrefix(img+"/", d) }) {
			continue
		}
		paths[img] = host
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	var entries []entry
	symlinks := map[string]bool{}
	for _, img := range sorted {
		if insideSymlink(img, symlinks) {
			continue // reached through the symlink, and listed where it is
		}
		host := paths[img]
		fi, err := os.Lstat(host)
		if err != nil {
			continue // removed after installation (a slim image's path-exclude)
		}
		switch {
		case fi.IsDir():
			entries = append(entries, dirEntry(img, 0o755, 0, 0))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return nil, "", err
			}
			symlinks[img] = true
			entries = append(entries, entry{path: img, mode: fs.ModeSymlink | 0o777, link: target})
		case fi.Mode().IsRegular():
			perm := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			entries = append(entries, entry{path: img, mode: perm, src: host, size: fi.Size()})
		default:
			continue
		}
		fmt.Fprintf(key, "%s %v %d %d\n", img, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	}
	for _, d := range mergedDirs {
		entries = append(entries, entry{path: "/" + d, mode: fs.ModeSymlink | 0o777, link: "usr/" + d})
		fmt.Fprintf(key, "/%s -> usr/%s\n", d, d)
	}
	extra := make([]string, 0, len(links))
	for l := range links {
		extra = append(extra, l)
	}
	slices.Sort(extra)
	for _, l := range extra {
		entries = append(entries, entry{path: l, mode: fs.ModeSymlink | 0o777, link: links[l]})
		fmt.Fprintf(key, "%s -> %s\n", l, links[l])
	}
	return entries, hex.EncodeToString(key.Sum(nil)), nil
}

// usrMerged is p's place in a merged-/usr tree: /lib/x → /usr/lib/x.
func usrMerged(p string) string {
	for _, d := range mergedDirs {
		if p == "/"+d || strings.HasPrefix(p, "/"+d+"/") {
			return "/usr" + p
		}
	}
	return p
}

// insideSymlink says whether a parent directory of p is a symlink.
func insideSymlink(p string, symlinks map[string]bool) bool {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if symlinks[d] {
			return true
		}
	}
	return false
}

// installedPackages are the packages dpkg says are installed.
func installedPackages(ctx context.Context) ([]*debPackage, error) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W",
		"-f=${Package}\t${Architecture}\t${Version}\t${db:Status-Abbrev}\t${Provides}\t${Depends}, ${Pre-Depends}\n").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return nil, fmt.Errorf("dpkg-query -W: %w", err)
	}
	var pkgs []*debPackage
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 6 || !strings.HasPrefix(f[3], "ii") {
			continue
		}
		p := &debPackage{name: f[0], arch: f[1], version: f[2]}
		for _, v := range depList(f[4]) {
			p.provides = append(p.provides, v[0])
		}
		p.depends = depList(f[5])
		pkgs = append(pkgs, p)
	}
	return pkgs, sc.Err()
}

// depList parses "a (>= 1) | b, c" into [[a b] [c]], names only.
func depList(s string) [][]string {
	var out [][]string
	for _, dep := range strings.Split(s, ",") {
		var alts []string
		for _, a := range strings.Split(dep, "|") {
			a, _, _ = strings.Cut(strings.TrimSpace(a), " ")
			if a, _, _ = strings.Cut(a, "("); a != "" {
				alts = append(alts, a)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}
