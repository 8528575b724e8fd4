package nodeagent_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/images"
	"isotope.dev/isotope/internal/testing/kubetest"
	"isotope.dev/isotope/internal/testing/nodeagent"
)

// buildLayout builds the images the tests run, as make images does, into
// an OCI layout of the test's own (cached: seconds; the first build on a
// machine, minutes).
func buildLayout(t *testing.T, names ...string) *images.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := images.Make(ctx, t.TempDir(), "-images", strings.Join(names, ","))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func procEnv(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
}

func envValue(env []string, name string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// A pool pod whose images the layout holds runs from the images
// themselves: the wasm-env container from its image's ENTRYPOINT and
// CMD, the fetcher from the command "isotope fetcher …" found on the
// image's PATH, each process the unpacked image's binary with the
// image's ENV (PATH and HOME inside the image and the pod, none of this
// machine's PATH or GOROOT). Their statuses name the image's digest. An
// image the layout lacks, with no programs to fall back on, waits with
// ErrImagePull naming the layout.
func TestPodRunsFromImageLayout(t *testing.T) {
	res := buildLayout(t, "wasm-env", "fetcher")
	env := kubetest.Start(t)
	work := t.TempDir()
	agent := env.StartNodeAgent(t, nodeagent.Config{NodeName: "agent-layout", Layout: res.Layout, WorkDir: work})
	ns := env.Namespace(t, "nodeagent-layout")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	probe := func(port int) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(port)}}}
	}
	wasmRef, fetcherRef := res.Images[0].Ref, res.Images[1].Ref
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-0", Namespace: ns, Labels: map[string]string{"app": "layout"}},
		Spec: corev1.PodSpec{
			NodeName:                      agent.NodeName(),
			TerminationGracePeriodSeconds: ptr(int64(3)),
			Volumes:                       []corev1.Volume{{Name: "userfunc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{
				{
					Name: "wasm", Image: wasmRef,
					Ports:          []corev1.ContainerPort{{ContainerPort: 8888}},
					VolumeMounts:   []corev1.VolumeMount{{Name: "userfunc", MountPath: "/userfunc"}},
					ReadinessProbe: probe(8888),
				},
				{
					Name: "fetcher", Image: fetcherRef,
					Command:        []string{"isotope", "fetcher", "-secret-dir", "/secrets", "-cfgmap-dir", "/configs", "/userfunc"},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8000}},
					VolumeMounts:   []corev1.VolumeMount{{Name: "userfunc", MountPath: "/userfunc"}},
					ReadinessProbe: probe(8000),
				},
			},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	got := readyPod(t, env, ns, pod.Labels, "")
	for _, port := range []string{"8888", "8000"} {
		resp, err := http.Get("http://" + got.Status.PodIP + ":" + port + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf(":%s/healthz: %s", port, resp.Status)
		}
	}
	unpacked := filepath.Join(work, "images")
	for _, pid := range agent.PIDs(ns, pod.Name) {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(exe, unpacked+"/") || !strings.HasSuffix(exe, images.BinaryPath) {
			t.Errorf("process %d runs %s, not the image's %s under %s", pid, exe, images.BinaryPath, unpacked)
		}
		penv := procEnv(t, pid)
		path, _ := envValue(penv, "PATH")
		home, _ := envValue(penv, "HOME")
		if !strings.HasPrefix(path, unpacked+"/") || strings.Contains(path, os.Getenv("PATH")) {
			t.Errorf("process %d: PATH=%s, want the image's PATH inside %s", pid, path, unpacked)
		}
		if !strings.HasSuffix(home, images.Home) || strings.HasPrefix(home, unpacked) || home == os.Getenv("HOME") {
			t.Errorf("process %d: HOME=%s, want the pod's own copy of %s", pid, home, images.Home)
		}
		if v, ok := envValue(penv, "GOROOT"); ok {
			t.Errorf("process %d: GOROOT=%s leaked from this machine", pid, v)
		}
	}
	for _, cs := range got.Status.ContainerStatuses {
		want := res.Images[0]
		if cs.Name == "fetcher" {
			want = res.Images[1]
		}
		if !strings.HasSuffix(cs.ImageID, "@"+want.Digest.String()) {
			t.Errorf("container %s: imageID %q, want the digest %s", cs.Name, cs.ImageID, want.Digest)
		}
	}

	missing := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: agent.NodeName(), Containers: []corev1.Container{{Name: "c", Image: "isotope/go-wasm-builder:" + images.DefaultTag}}},
	}
	if err := env.Client.Create(ctx, missing); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "ErrImagePull naming the layout", func() (bool, error) {
		var p corev1.Pod
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(missing), &p); err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "ErrImagePull" && strings.Contains(w.Message, "not in the image layout") && strings.Contains(w.Message, wasmRef) {
				return true, nil
			}
		}
		return false, fmt.Errorf("status %+v", p.Status)
	})
	if fb := agent.Fallbacks(); len(fb) != 0 {
		t.Errorf("fallbacks %v without programs", fb)
	}
}

// With programs as well, an image the layout lacks runs with this
// machine's binary, and the agent says so (Fallbacks, its log).
func TestLayoutFallsBackToPrograms(t *testing.T) {
	res := buildLayout(t, "fetcher")
	bin, err := isotopeBin()
	if err != nil {
		t.Fatal(err)
	}
	env := kubetest.Start(t)
	agent := env.StartNodeAgent(t, nodeagent.Config{NodeName: "agent-fallback", Layout: res.Layout, Programs: nodeagent.IsotopePrograms(bin)})
	ns := env.Namespace(t, "nodeagent-fallback")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "wasm", Namespace: ns, Labels: map[string]string{"app": "fallback"}},
		Spec: corev1.PodSpec{
			NodeName: agent.NodeName(),
			Containers: []corev1.Container{{
				Name: "wasm", Image: "isotope/wasm-env", // untagged: :latest, not in the layout
				Ports:          []corev1.ContainerPort{{ContainerPort: 8888}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(8888)}}},
			}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	readyPod(t, env, ns, pod.Labels, "")
	pids := agent.PIDs(ns, pod.Name)
	if len(pids) != 1 {
		t.Fatalf("pids %v", pids)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0])); exe != bin {
		t.Errorf("the fallback runs %s, want %s", exe, bin)
	}
	if fb := agent.Fallbacks(); !slices.Equal(fb, []string{"isotope/wasm-env"}) {
		t.Errorf("fallbacks %v, want [isotope/wasm-env]", fb)
	}
}
