package nodeagent

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"isotope.dev/isotope/internal/images"
	"isotope.dev/isotope/internal/wasmenv"
)

var testPrograms = IsotopePrograms("/opt/bin/isotope")

func place(t *testing.T, mounts map[string]string) podPlace {
	if mounts == nil {
		mounts = map[string]string{}
	}
	return podPlace{ip: "127.0.3.4", dir: t.TempDir(), mounts: mounts}
}

func resolve(t *testing.T, c corev1.Container, pl podPlace, env map[string]string) (*commandLine, error) {
	t.Helper()
	l, ok := ruleLaunch(DefaultImages(), c.Image)
	if !ok {
		return nil, fmt.Errorf("image %q has no local equivalent", c.Image)
	}
	return resolveCommand(&c, l, testPrograms, IsotopeRoles(), env, pl)
}

// A wasm-env container as the executor writes it (command given, no
// --userfunc-dir): the pod's address, its /userfunc volume.
func TestResolveWasmEnvCommand(t *testing.T) {
	pl := place(t, map[string]string{"/userfunc": "/work/pod/volumes/userfunc"})
	cl, err := resolve(t, corev1.Container{
		Name: "wasm", Image: "ghcr.io/isotope-dev/isotope:dev",
		Command: []string{"isotope", "wasm-env", "--addr", ":8888"},
		Ports:   []corev1.ContainerPort{{ContainerPort: 8888}},
	}, pl, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"wasm-env", "--addr", "127.0.3.4:8888", "--userfunc-dir=/work/pod/volumes/userfunc"}
	if cl.path != "/opt/bin/isotope" || !slices.Equal(cl.args, want) {
		t.Errorf("got %s %q, want %q", cl.path, cl.args, want)
	}
}

// With neither command nor args, the image's ENTRYPOINT and CMD run; a
// listen address is added from the container's port; the fetcher's
// pod-local defaults point at the pod, its paths into the pod.
func TestResolveImageDefaultsAndFetcher(t *testing.T) {
	pl := place(t, map[string]string{"/userfunc": "/v/userfunc"})
	cl, err := resolve(t, corev1.Container{Name: "fetcher", Image: "isotope/fetcher:v1@sha256:abc",
		Ports: []corev1.ContainerPort{{ContainerPort: 8000}}}, pl, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fetcher", "/v/userfunc", "--runtime-url=http://127.0.3.4:8888",
		"--secret-dir=" + filepath.Join(pl.dir, "rootfs", "secrets"), "--cfgmap-dir=" + filepath.Join(pl.dir, "rootfs", "configs"),
		"--addr=127.0.3.4:8000"}
	if !slices.Equal(cl.args, want) {
		t.Errorf("got %q\nwant %q", cl.args, want)
	}
	if fi, err := os.Stat(filepath.Join(pl.dir, "rootfs", "secrets")); err != nil || !fi.IsDir() {
		t.Errorf("pod-private /secrets not created: %v", err)
	}

	// Fission's single-dash flags, given explicitly, are kept (and
	// rewritten); $(VAR) expands from the container's env.
	pl = place(t, map[string]string{"/packages": "/v/packages", "/secrets": "/v/secrets"})
	cl, err = resolve(t, corev1.Container{Name: "fetcher", Image: "ghcr.io/isotope-dev/isotope:dev",
		Command: []string{"isotope", "fetcher", "-secret-dir", "/secrets", "-addr=:$(PORT)", "-runtime-url=http://localhost:8888/x", "/packages"}},
		pl, map[string]string{"PORT": "8000"})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"fetcher", "-secret-dir", "/v/secrets", "-addr=127.0.3.4:8000", "-runtime-url=http://127.0.3.4:8888/x", "/v/packages",
		"--cfgmap-dir=" + filepath.Join(pl.dir, "rootfs", "configs")}
	if !slices.Equal(cl.args, want) {
		t.Errorf("got %q\nwant %q", cl.args, want)
	}
}

// Images and programs without a local equivalent are refused, naming them.
func TestResolveRefusesUnknown(t *testing.T) {
	for _, c := range []struct {
		c    corev1.Container
		want string
	}{
		{corev1.Container{Name: "x", Image: "nginx:1.27"}, `image "nginx:1.27" has no local equivalent`},
		{corev1.Container{Name: "x", Image: "isotope/wasm-env", Command: []string{"/bin/sh", "-c", "true"}}, `program "/bin/sh"`},
		{corev1.Container{Name: "x", Image: "isotope/wasm-env", Args: []string{"--addr", "nohost"}}, `listen address "nohost"`},
	} {
		_, err := resolve(t, c.c, place(t, nil), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.c, err, c.want)
		}
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"isotope/wasm-env":                     "isotope/wasm-env",
		"isotope/wasm-env:v1":                  "isotope/wasm-env",
		"localhost:5000/isotope/fetcher:v1":    "localhost:5000/isotope/fetcher",
		"localhost:5000/isotope/fetcher":       "localhost:5000/isotope/fetcher",
		"ghcr.io/x/isotope@sha256:0123":        "ghcr.io/x/isotope",
		"ghcr.io/x/isotope:dev@sha256:0123abc": "ghcr.io/x/isotope",
	} {
		if got := repository(in); got != want {
			t.Errorf("repository(%q) = %q, want %q", in, got, want)
		}
	}
	if (ImageRule{Repository: "isotope"}).matches("ghcr.io/x/notisotope") {
		t.Error(`"isotope" matches "notisotope"`)
	}
}

func TestExpandVars(t *testing.T) {
	env := map[string]string{"A": "1", "B_C": "two"}
	for in, want := range map[string]string{"$(A)": "1", "x$(B_C)y": "xtwoy", "$(MISSING)": "$(MISSING)", "$$(A)": "$(A)", "$": "$"} {
		if got := expandVars(in, env); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every image's entrypoint is a path of the isotope binary the agent
// knows (internal/images keeps the Dockerfiles equal to the table).
func TestDefaultImagesRunTheBinary(t *testing.T) {
	if len(DefaultImages()) != len(images.All) {
		t.Fatalf("%d rules for %d images", len(DefaultImages()), len(images.All))
	}
	for _, r := range DefaultImages() {
		if len(r.Entrypoint) == 0 {
			t.Errorf("image %s has no entrypoint", r.Repository)
			continue
		}
		if _, ok := testPrograms[r.Entrypoint[0]]; !ok {
			t.Errorf("image %s: entrypoint %s is not a known path of the isotope binary", r.Repository, r.Entrypoint[0])
		}
	}
}

// Two pools (two agents, say two test binaries) never hand out the same
// address; a released address is free again.
func TestIPPoolExclusive(t *testing.T) {
	dir := t.TempDir()
	a, err := newIPPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newIPPool(dir)
	seen := map[string]bool{}
	for range 50 {
		for _, p := range []*ipPool{a, b} {
			ip, err := p.allocate()
			if err != nil {
				t.Fatal(err)
			}
			if seen[ip] {
				t.Fatalf("address %s handed out twice", ip)
			}
			if !regexp.MustCompile(`^127\.0\.([1-9]|[1-9]\d|1\d\d|2[0-4]\d|25[0-4])\.([1-9]|[1-9]\d|1\d\d|2[0-4]\d|25[0-4])$`).MatchString(ip) {
				t.Fatalf("address %s outside 127.0.1-254.1-254", ip)
			}
			seen[ip] = true
		}
	}
	for ip := range seen {
		a.release(ip)
		b.release(ip)
	}
	if len(a.held)+len(b.held) != 0 {
		t.Errorf("still held after release: %v %v", a.held, b.held)
	}
}

func TestFieldValue(t *testing.T) {
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace, pod.UID = "p", "ns", "u-1"
	pod.Labels = map[string]string{"app": "hello"}
	pod.Spec.NodeName = "n"
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u-1", "spec.nodeName": "n",
		"status.podIP": "127.0.9.9", "metadata.labels['app']": "hello",
	} {
		got, err := fieldValue(pod, path, "127.0.9.9")
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", path, got, err, want)
		}
	}
	if _, err := fieldValue(pod, "spec.priority", ""); err == nil || !strings.Contains(err.Error(), "spec.priority") {
		t.Errorf("unsupported field: %v", err)
	}
}

// The agent and wasm-env agree on the variable carrying the mounts.
func TestMountsEnvMatchesWasmEnv(t *testing.T) {
	if MountsEnv != wasmenv.MountsEnv {
		t.Errorf("nodeagent.MountsEnv = %q, wasmenv.MountsEnv = %q", MountsEnv, wasmenv.MountsEnv)
	}
}
