// Package kube_test runs Isotope on a real Kubernetes control plane the
// way the Helm chart does, from the images `make images` builds: the
// roles (`isotope buildermgr`, `executor`, `router`, `storagesvc`) as
// separate processes of the control-plane image's binary, Isotope's CRDs
// on a kube-apiserver with kube-controller-manager and kube-scheduler,
// and the node agent (internal/testing/nodeagent, the test double for the
// kubelet) running every scheduled pod's containers from the built
// images' OCI layout: each image unpacked, its own binary and (for the
// go-wasm builder) its own Go toolchain. Users drive it with the real
// CLI (`isotope --kubeconfig`).
package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"isotope.dev/isotope/internal/images"
	"isotope.dev/isotope/internal/testing/kubetest"
	"isotope.dev/isotope/internal/testing/nodeagent"
	"isotope.dev/isotope/internal/testing/testlog"
)

// binary is the isotope binary the roles and the CLI run: the
// control-plane image's, once platformImages has built the images.
// hostBinary is built from the source tree by TestMain: the node agent's
// fallback for an image the layout lacks (it says so in the test log).
var binary, hostBinary string

func TestMain(m *testing.M) {
	// One path for every run: go build renames the linked binary into
	// place, so a running process keeps its old file and nothing piles
	// up in $TMPDIR (kubetest.Main exits without running defers).
	dir := filepath.Join(os.TempDir(), "isotope-kube-e2e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hostBinary = filepath.Join(dir, "isotope")
	binary = hostBinary
	root, err := kubetest.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Static and -trimpath, as make images builds it (internal/images),
	// so the packages compiled for one are reused by the other.
	build := exec.Command("go", "build", "-trimpath", "-o", hostBinary, "./cmd/isotope")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building isotope:", err)
		os.Exit(1)
	}
	kubetest.Main(m)
}

// role is one running `isotope <role>` process.
type role struct {
	name   string
	cmd    *exec.Cmd
	logs   *testlog.Buffer
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`listening.* addr=(\S+)`)

// startRole runs `isotope args...` until the test ends (SIGTERM, then
// SIGKILL). When listens is true it waits for the "listening addr=" log
// line and returns the address.
func startRole(t *testing.T, name string, listens bool, args ...string) (*role, string) {
	t.Helper()
	r := &role{name: name, logs: &testlog.Buffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(binary, args...)
	pr, pw := io.Pipe()
	r.cmd.Stdout = r.logs
	r.cmd.Stderr = io.MultiWriter(r.logs, pw)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		r.cmd.Wait()
		pw.Close()
		close(r.exited)
	}()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, tail(r.logs.String(), 40))
		}
	})
	if !listens {
		return r, ""
	}
	select {
	case addr := <-found:
		return r, addr
	case <-r.exited:
		t.Fatalf("%s exited before listening:\n%s", name, r.logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not report its address:\n%s", name, r.logs)
	}
	return r, ""
}

func (r *role) stop(t *testing.T) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s of SIGTERM", r.name)
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
	}
}

// alive fails the test when the role has exited.
func (r *role) alive(t *testing.T) {
	t.Helper()
	select {
	case <-r.exited:
		t.Fatalf("%s exited:\n%s", r.name, tail(r.logs.String(), 40))
	default:
	}
}

// cli runs the isotope CLI against the cluster and returns stdout; a
// non-zero exit fails the test.
func cli(t *testing.T, kubeconfig, storage string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"--kubeconfig", kubeconfig, "--storage-url", storage}, args...)...)
	// Nothing of the embedded mode may leak in.
	cmd.Env = append(os.Environ(), "ISOTOPE_URL=http://127.0.0.1:1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("isotope %s: %v", strings.Join(args, " "), err)
		}
		t.Fatalf("isotope %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), ee.ExitCode(), out.String(), errb.String())
	}
	return out.String()
}

// platform is what `make images` built for the test.
type platform struct {
	layout string            // the OCI layout
	refs   map[string]string // image name → reference (isotope/wasm-env:0.1.0)
	digest map[string]string // reference → manifest digest
}

var platformOnce struct {
	sync.Once
	p   platform
	err error
}

// platformImages builds the images the suite runs (as make images does, into a
// directory of this test binary; cached: seconds, the first time on a
// machine minutes), unpacks the control-plane image and points binary
// at its isotope.
func platformImages(t *testing.T) platform {
	t.Helper()
	platformOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "isotope-kube-e2e", "images")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		// The images the suite's pods run; the C and Rust builders (a
		// toolchain layer of hundreds of MB each) are not among them.
		res, err := images.Make(ctx, dir, "-images", "isotope,wasm-env,fetcher,go-wasm-builder")
		if err != nil {
			platformOnce.err = err
			return
		}
		p := platform{layout: res.Layout, refs: map[string]string{}, digest: map[string]string{}}
		var cp *images.Built
		for i, b := range res.Images {
			p.refs[b.Image.Name] = b.Ref
			p.digest[b.Ref] = b.Digest.String()
			if b.Image.Name == "isotope" {
				cp = &res.Images[i]
			}
		}
		rootfs := filepath.Join(os.TempDir(), "isotope-kube-e2e", "isotope-rootfs")
		if err := os.RemoveAll(rootfs); err != nil {
			platformOnce.err = err
			return
		}
		r, err := images.Unpack(cp.V1, rootfs, images.UnpackOptions{})
		if err != nil {
			platformOnce.err = err
			return
		}
		binary = r.Path(images.BinaryPath)
		platformOnce.p = p
		t.Logf("images built in %v: %v; roles and CLI run %s", time.Since(start).Round(time.Millisecond), res.Layout, binary)
	})
	if platformOnce.err != nil {
		t.Fatalf("make images: %v", platformOnce.err)
	}
	return platformOnce.p
}

// startAgent runs the node agent (the kubelet's test double) with pods
// reaching the kube-apiserver through podKubeconfig, as a real pod would
// through its service-account mount; pods of an account in perAccount
// ("namespace/name" → kubeconfig) use that account's instead. Pods run from the built images;
// an image the layout lacks falls back to the host binary, which the
// test log reports when the test ends. The go-wasm builder's go shares
// this machine's build cache (the stand-in for a cache volume).
func startAgent(t *testing.T, kube *kubetest.Env, p platform, podKubeconfig string, perAccount map[string]string) *nodeagent.Agent {
	t.Helper()
	env := []string{"ISOTOPE_KUBECONFIG=" + podKubeconfig}
	for _, v := range []string{"GOCACHE", "GOMODCACHE"} {
		out, err := exec.Command("go", "env", v).Output()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, v+"="+strings.TrimSpace(string(out)))
	}
	agent := kube.StartNodeAgent(t, nodeagent.Config{
		NodeName: "isotope-e2e-node",
		Layout:   p.layout,
		Programs: nodeagent.IsotopePrograms(hostBinary),
		Env:      env,
		ServiceAccountEnv: func(namespace, name string) []string {
			if kc, ok := perAccount[namespace+"/"+name]; ok {
				// The CLI reads ISOTOPE_KUBECONFIG, roles (mqt consume)
				// KUBECONFIG; a real pod has the in-cluster config.
				return []string{"ISOTOPE_KUBECONFIG=" + kc, "KUBECONFIG=" + kc}
			}
			return nil
		},
	})
	t.Cleanup(func() {
		if fb := agent.Fallbacks(); len(fb) > 0 {
			t.Logf("images not in the layout, run with the host binary %s instead: %v", hostBinary, fb)
		} else {
			t.Logf("every pod ran from the built images (%s)", p.layout)
		}
	})
	return agent
}

// waitFor polls f until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
