package nodeagent

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"isotope.dev/isotope/internal/images"
)

// ImageRule says how the agent runs a container of a matching image as a
// local process: the image's ENTRYPOINT and CMD, what a container runtime
// would take from the image's config.
type ImageRule struct {
	// Repository matches images whose repository (the reference without
	// tag or digest) is this path or ends with "/" + this path:
	// "isotope/wasm-env" matches "ghcr.io/isotope/wasm-env:v1".
	Repository string
	// Entrypoint and Cmd are the image's ENTRYPOINT and CMD. Kubernetes
	// rules apply: a container's command replaces Entrypoint (and Cmd),
	// its args replace Cmd.
	Entrypoint, Cmd []string
}

// Role says what a program's subcommand (argv[1], "wasm-env") needs so
// that it stays inside its pod's address and directories.
type Role struct {
	// AddrFlag is the listen-address flag ("addr"). Its value's host is
	// rewritten to the pod's address; when it is absent the agent adds
	// it with the container's first port, or DefaultPort.
	AddrFlag    string
	DefaultPort int32
	// Defaults are flags added ("--name=value", {podIP} expanded) when
	// the command line lacks them: where the program's built-in default
	// (127.0.0.1:8888, /userfunc) means the pod's own in a real pod.
	Defaults []string
	// PodPaths are container paths that, when no volume is mounted
	// there, become directories private to the pod (a container's own
	// filesystem, in a real pod).
	PodPaths []string
}

// DefaultImages are Isotope's images (internal/images.All, which
// deploy/docker's Dockerfiles match), all running the isotope binary.
// "isotope" matches any repository ending in /isotope (isotope/isotope,
// ghcr.io/isotope-dev/isotope).
func DefaultImages() []ImageRule {
	var out []ImageRule
	for _, im := range images.All {
		out = append(out, ImageRule{Repository: im.Name, Entrypoint: slices.Clone(im.Entrypoint), Cmd: slices.Clone(im.Cmd)})
	}
	return out
}

// IsotopeRoles are the isotope binary's pod roles.
func IsotopeRoles() map[string]Role {
	return map[string]Role{
		"wasm-env": {AddrFlag: "addr", DefaultPort: 8888, Defaults: []string{"--userfunc-dir=/userfunc"}, PodPaths: []string{"/userfunc"}},
		"fetcher": {AddrFlag: "addr", DefaultPort: 8000,
			Defaults: []string{"--runtime-url=http://{podIP}:8888", "--secret-dir=/secrets", "--cfgmap-dir=/configs"},
			PodPaths: []string{"/secrets", "/configs", "/userfunc", "/packages"}},
		"builder":    {AddrFlag: "addr", DefaultPort: 8001, PodPaths: []string{"/packages"}},
		"storagesvc": {AddrFlag: "addr", DefaultPort: 8000},
	}
}

// IsotopePrograms maps the paths of the isotope binary inside Isotope's
// images to bin, the binary on this machine.
func IsotopePrograms(bin string) map[string]string {
	return map[string]string{"/isotope": bin, "isotope": bin, "/usr/local/bin/isotope": bin}
}

// repository returns image without its tag and digest.
func repository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

func (r ImageRule) matches(image string) bool {
	repo := repository(image)
	return repo == r.Repository || strings.HasSuffix(repo, "/"+r.Repository)
}

// errImage is a container the agent cannot run; its message becomes the
// container's waiting message (reason ErrImagePull).
type errImage struct{ msg string }

func (e *errImage) Error() string { return e.msg }

// commandLine is what the agent runs for one container.
type commandLine struct {
	path string   // local executable
	args []string // argv[1:]
}

// podPlace is what the rewriting needs to know about the container's pod.
type podPlace struct {
	ip     string
	dir    string            // private to the pod
	mounts map[string]string // container mount path → local directory
	// rootfs is the container's unpacked image (nil: the container runs
	// a program of this machine): other absolute paths of the image map
	// into it.
	rootfs *images.Rootfs
}

// resolveCommand turns a container into a local command line: the
// image's entrypoint and cmd under Kubernetes' override rules, $(VAR)
// references expanded from env, argv[0] found in the unpacked image (or
// mapped to a program of this machine), mount paths, image paths and
// pod-local addresses rewritten, and the listen address and defaults
// added.
func resolveCommand(c *corev1.Container, l launch, programs map[string]string, roles map[string]Role, env map[string]string, place podPlace) (*commandLine, error) {
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(slices.Clone(c.Command), c.Args...)
	case len(c.Args) > 0:
		argv = append(slices.Clone(l.entrypoint), c.Args...)
	default:
		argv = append(slices.Clone(l.entrypoint), l.cmd...)
	}
	if len(argv) == 0 {
		return nil, &errImage{fmt.Sprintf("node agent: container %q: image %q has no entrypoint and the container no command", c.Name, c.Image)}
	}
	for i := range argv {
		argv[i] = expandVars(argv[i], env)
	}
	var prog string
	if place.rootfs != nil {
		var err error
		if prog, err = lookProgram(place.rootfs, argv[0], imagePath(place.rootfs, env)); err != nil {
			return nil, &errImage{fmt.Sprintf("node agent: container %q: image %q: %v", c.Name, c.Image, err)}
		}
		if err := privateDirs(place.rootfs, place); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		if prog, ok = programs[argv[0]]; !ok {
			return nil, &errImage{fmt.Sprintf("node agent: container %q: program %q of image %q has no local equivalent", c.Name, argv[0], c.Image)}
		}
	}
	args := slices.Clone(argv[1:])
	role, hasRole := Role{}, false
	if len(args) > 0 {
		role, hasRole = roles[args[0]]
	}
	if hasRole {
		for _, d := range role.Defaults {
			name, _, _ := strings.Cut(strings.TrimLeft(d, "-"), "=")
			if _, found := findFlag(args, name); !found {
				args = insertFlag(args, strings.ReplaceAll(d, "{podIP}", place.ip))
			}
		}
		for _, pp := range role.PodPaths {
			if _, mounted := place.mounts[pp]; !mounted {
				place.mounts[pp] = filepath.Join(place.dir, "rootfs", filepath.FromSlash(pp))
				if err := os.MkdirAll(place.mounts[pp], 0o755); err != nil {
					return nil, err
				}
			}
		}
	}
	for i := range args {
		args[i] = rewriteValue(args[i], place)
	}
	if hasRole && role.AddrFlag != "" {
		var err error
		if args, err = setAddr(args, role, c, place.ip); err != nil {
			return nil, err
		}
	}
	return &commandLine{path: prog, args: args}, nil
}

func knownRepos(rules []ImageRule) string {
	if len(rules) == 0 {
		return "none"
	}
	var names []string
	for _, r := range rules {
		names = append(names, r.Repository)
	}
	return strings.Join(names, ", ")
}

var varRef = regexp.MustCompile(`\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)

// expandVars expands $(NAME) from env as Kubernetes does in command and
// args: unknown references stay as written, $$ is a literal $.
func expandVars(s string, env map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		if v, ok := env[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// rewriteValue maps what a container sees inside its pod to this
// machine: paths under a volume's mount path (the whole value or after
// "=") to the volume's directory, other paths of the container's image
// into the unpacked image, and URLs to the pod's own loopback
// (127.0.0.1, localhost) to the pod's address.
func rewriteValue(v string, place podPlace) string {
	prefix, val := "", v
	if i := strings.IndexByte(v, '='); i >= 0 && strings.HasPrefix(v, "-") {
		prefix, val = v[:i+1], v[i+1:]
	}
	// Longest mount path first: /data/cache before /data.
	best := ""
	for mp := range place.mounts {
		if (val == mp || strings.HasPrefix(val, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best != "" {
		val = place.mounts[best] + val[len(best):]
	} else if place.rootfs != nil && strings.HasPrefix(val, "/") && inImage(place.rootfs, val) {
		val = place.rootfs.Path(val)
	}
	for _, lo := range []string{"127.0.0.1", "localhost"} {
		for _, sep := range []string{":", "/"} {
			val = strings.ReplaceAll(val, "://"+lo+sep, "://"+place.ip+sep)
		}
		if strings.HasSuffix(val, "://"+lo) {
			val = strings.TrimSuffix(val, lo) + place.ip
		}
	}
	return prefix + val
}

// rewriteEnv is rewriteValue for an environment variable's value, which
// may also be a list of paths (PATH=/usr/local/go/bin:/usr/bin).
func rewriteEnv(v string, place podPlace) string {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || slices.ContainsFunc(parts, func(p string) bool { return !strings.HasPrefix(p, "/") }) {
		return rewriteValue(v, place)
	}
	for i, p := range parts {
		parts[i] = rewriteValue(p, place)
	}
	return strings.Join(parts, ":")
}

// findFlag returns the index of flag name in args (--name, -name, with
// or without =value) before any "--".
func findFlag(args []string, name string) (int, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"--", "-"} {
			if a == p+name || strings.HasPrefix(a, p+name+"=") {
				return i, true
			}
		}
	}
	return -1, false
}

// insertFlag adds flag before a "--" or at the end.
func insertFlag(args []string, flag string) []string {
	if i := slices.Index(args, "--"); i >= 0 {
		return slices.Insert(args, i, flag)
	}
	return append(args, flag)
}

// setAddr rewrites the listen-address flag's host to the pod's address,
// or adds the flag with the container's first port (the rule's default
// port without one).
func setAddr(args []string, rule Role, c *corev1.Container, ip string) ([]string, error) {
	i, found := findFlag(args, rule.AddrFlag)
	if !found {
		port := rule.DefaultPort
		if len(c.Ports) > 0 {
			port = c.Ports[0].ContainerPort
		}
		if port == 0 {
			return args, nil // a role that listens nowhere (or is told nothing): leave it
		}
		return insertFlag(args, fmt.Sprintf("--%s=%s", rule.AddrFlag, net.JoinHostPort(ip, fmt.Sprint(port)))), nil
	}
	var val string
	valIdx := i
	if _, v, ok := strings.Cut(args[i], "="); ok {
		val = v
	} else {
		if i+1 >= len(args) {
			return nil, &errImage{fmt.Sprintf("node agent: container %q: flag %s has no value", c.Name, args[i])}
		}
		valIdx, val = i+1, args[i+1]
	}
	_, port, err := net.SplitHostPort(val)
	if err != nil {
		return nil, &errImage{fmt.Sprintf("node agent: container %q: listen address %q: %v", c.Name, val, err)}
	}
	addr := net.JoinHostPort(ip, port)
	args = slices.Clone(args)
	if valIdx == i {
		name, _, _ := strings.Cut(args[i], "=")
		args[i] = name + "=" + addr
	} else {
		args[valIdx] = addr
	}
	return args, nil
}
