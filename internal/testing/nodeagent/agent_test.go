package nodeagent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"isotope.dev/isotope/internal/testing/kubetest"
	"isotope.dev/isotope/internal/testing/nodeagent"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var isotopeBin = sync.OnceValues(func() (string, error) {
	root, err := kubetest.RepoRoot()
	if err != nil {
		return "", err
	}
	// One path for every run: go build moves the linked binary into
	// place by rename, so concurrent test binaries never see a partial
	// file, running processes keep their old one, and nothing piles up
	// in $TMPDIR (TestMain cannot clean up after kubetest.Main exits).
	dir := filepath.Join(os.TempDir(), "isotope-nodeagent-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "isotope")
	// Static and -trimpath, as make images builds it (internal/images),
	// so the packages compiled for one are reused by the other.
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/isotope")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/isotope: %v\n%s", err, out)
	}
	return bin, nil
})

// startAgent runs an agent for the test with the real isotope binary.
func startAgent(t *testing.T, env *kubetest.Env, name string) *nodeagent.Agent {
	t.Helper()
	bin, err := isotopeBin()
	if err != nil {
		t.Fatal(err)
	}
	return env.StartNodeAgent(t, nodeagent.Config{NodeName: name, Programs: nodeagent.IsotopePrograms(bin)})
}

// poll calls f until it returns true or the deadline passes.
func poll(t *testing.T, d time.Duration, what string, f func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for {
		ok, err := f()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error: %v)", what, d, last)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// The node agent registers a Ready node; a Deployment whose pod runs
// `isotope wasm-env` (as the executor's pool pods do: the wasm-env image,
// a /userfunc emptyDir, a readiness probe on /healthz) gets scheduled
// there, runs on its own loopback address, becomes Ready and answers
// /healthz at podIP:8888. Deleting the pod kills its process; the
// ReplicaSet's replacement comes up on another address.
func TestWasmEnvDeploymentRunsOnAgent(t *testing.T) {
	env := kubetest.Start(t)
	env.StartControllers(t)
	agent := startAgent(t, env, "agent-wasm")
	ns := env.Namespace(t, "nodeagent")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var node corev1.Node
	if err := env.Client.Get(ctx, client.ObjectKey{Name: agent.NodeName()}, &node); err != nil {
		t.Fatal(err)
	}
	if !nodeReady(&node) {
		t.Fatalf("node %s not Ready: %+v", node.Name, node.Status.Conditions)
	}

	labels := map[string]string{"app": "wasm"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "wasm", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr(int64(5)),
					Volumes:                       []corev1.Volume{{Name: "userfunc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
					Containers: []corev1.Container{{
						Name: "wasm", Image: "isotope/wasm-env:dev",
						Command:      []string{"/isotope", "wasm-env", "--addr", ":8888"},
						Ports:        []corev1.ContainerPort{{Name: "http-env", ContainerPort: 8888}},
						VolumeMounts: []corev1.VolumeMount{{Name: "userfunc", MountPath: "/userfunc"}},
						Env: []corev1.EnvVar{
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "GREETING", Value: "hello"},
						},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http-env")}}},
					}},
				},
			},
		},
	}
	if err := env.Client.Create(ctx, d); err != nil {
		t.Fatal(err)
	}

	first := readyPod(t, env, ns, labels, "")
	if first.Spec.NodeName != agent.NodeName() {
		t.Errorf("pod on node %q, want %q", first.Spec.NodeName, agent.NodeName())
	}
	if !strings.HasPrefix(first.Status.PodIP, "127.0.") || first.Status.PodIP == "127.0.0.1" {
		t.Errorf("podIP %q, want 127.0.x.y of its own", first.Status.PodIP)
	}
	resp, err := http.Get("http://" + first.Status.PodIP + ":8888/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz at the pod's address: %s", resp.Status)
	}
	pids := agent.PIDs(ns, first.Name)
	if len(pids) != 1 {
		t.Fatalf("pids %v, want one process", pids)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pids[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POD_NAME=" + first.Name, "GREETING=hello", "HOSTNAME=" + first.Name} {
		if !strings.Contains("\x00"+string(environ)+"\x00", "\x00"+want+"\x00") {
			t.Errorf("process env lacks %s", want)
		}
	}

	if err := env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "deleted pod's process gone", func() (bool, error) {
		err := syscall.Kill(pids[0], 0)
		return errors.Is(err, syscall.ESRCH), err
	})
	poll(t, 30*time.Second, "deleted pod removed from the apiserver", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(first), &corev1.Pod{})
		return apierrors.IsNotFound(err), err
	})
	if _, err := http.Get("http://" + first.Status.PodIP + ":8888/healthz"); err == nil {
		t.Error("the deleted pod's address still answers")
	}
	second := readyPod(t, env, ns, labels, first.Name)
	if second.Status.PodIP == "" || second.Name == first.Name {
		t.Errorf("replacement pod %s at %q", second.Name, second.Status.PodIP)
	}
}

// A pod whose image has no local equivalent waits with ErrImagePull and
// a message naming the image, as a kubelet reports an image it cannot
// pull; the pod is not Ready and nothing runs.
func TestUnknownImageRefused(t *testing.T) {
	env := kubetest.Start(t)
	agent := startAgent(t, env, "agent-refuse") // the pod names its node: no scheduler needed
	ns := env.Namespace(t, "nodeagent-refuse")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx", Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:   agent.NodeName(),
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	poll(t, time.Minute, "ErrImagePull reported", func() (bool, error) {
		var p corev1.Pod
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), &p); err != nil {
			return false, err
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "ErrImagePull" && strings.Contains(w.Message, `"nginx:1.27"`) {
				if p.Status.Phase != corev1.PodPending || podReady(&p) {
					return false, fmt.Errorf("phase %s ready %v", p.Status.Phase, podReady(&p))
				}
				return true, nil
			}
		}
		return false, fmt.Errorf("status %+v", p.Status)
	})
	if pids := agent.PIDs(ns, pod.Name); len(pids) != 0 {
		t.Errorf("refused pod runs %v", pids)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyPod waits for a Ready pod with labels, other than not.
func readyPod(t *testing.T, env *kubetest.Env, ns string, labels map[string]string, not string) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	poll(t, 2*time.Minute, "a Ready pod", func() (bool, error) {
		var pl corev1.PodList
		if err := env.Client.List(context.Background(), &pl, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
			return false, err
		}
		var states []string
		for i := range pl.Items {
			p := &pl.Items[i]
			if p.Name != not && p.DeletionTimestamp == nil && podReady(p) && p.Status.PodIP != "" {
				found = p
				return true, nil
			}
			states = append(states, fmt.Sprintf("%s node=%q phase=%s ip=%s %s", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, p.Status.Message))
		}
		return false, fmt.Errorf("pods: %v", states)
	})
	return found
}

func ptr[T any](v T) *T { return &v }

// A pool pod as the executor builds it, bound to the node directly (no
// scheduler): a fetcher and a wasm-env container sharing a /userfunc
// emptyDir. Both run on the pod's address (fetcher :8000, wasm-env
// :8888), the fetcher's default runtime URL points at its own pod, both
// see the same directory; relabelling the pod keeps its processes;
// deleting it stops them and removes it.
func TestPoolPodLifecycle(t *testing.T) {
	env := kubetest.Start(t)
	agent := startAgent(t, env, "agent-pool")
	ns := env.Namespace(t, "nodeagent-pool")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	probe := func(port string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.Parse(port)}}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pool-0", Namespace: ns, Labels: map[string]string{"managed": "true"}},
		Spec: corev1.PodSpec{
			NodeName:                      agent.NodeName(),
			TerminationGracePeriodSeconds: ptr(int64(3)),
			Volumes:                       []corev1.Volume{{Name: "userfunc", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{
				{
					Name: "wasm", Image: "isotope/wasm-env",
					Ports:          []corev1.ContainerPort{{ContainerPort: 8888}},
					VolumeMounts:   []corev1.VolumeMount{{Name: "userfunc", MountPath: "/userfunc"}},
					ReadinessProbe: probe("8888"),
				},
				{
					Name: "fetcher", Image: "ghcr.io/isotope-dev/isotope:dev",
					Command:        []string{"isotope", "fetcher", "-secret-dir", "/secrets", "-cfgmap-dir", "/configs", "/userfunc"},
					Ports:          []corev1.ContainerPort{{ContainerPort: 8000}},
					VolumeMounts:   []corev1.VolumeMount{{Name: "userfunc", MountPath: "/userfunc"}},
					ReadinessProbe: probe("8000"),
				},
			},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	got := readyPod(t, env, ns, pod.Labels, "")
	ip := got.Status.PodIP
	for _, port := range []string{"8888", "8000"} {
		resp, err := http.Get("http://" + ip + ":" + port + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf(":%s/healthz: %s", port, resp.Status)
		}
	}
	pids := agent.PIDs(ns, pod.Name)
	if len(pids) != 2 {
		t.Fatalf("pids %v, want 2", pids)
	}
	var cmdlines []string
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		cmdlines = append(cmdlines, strings.ReplaceAll(string(data), "\x00", " "))
	}
	all := strings.Join(cmdlines, "\n")
	var userfunc string
	// The image's CMD writes "--addr :8888" (rewritten in place); the
	// fetcher gets --addr and --runtime-url added.
	for _, want := range []string{"wasm-env --addr " + ip + ":8888", "--runtime-url=http://" + ip + ":8888", "--addr=" + ip + ":8000"} {
		if !strings.Contains(all, want) {
			t.Errorf("command lines lack %q:\n%s", want, all)
		}
	}
	fields := strings.Fields(all)
	for i, f := range fields {
		if f == "--userfunc-dir" && i+1 < len(fields) {
			userfunc = fields[i+1]
		}
	}
	if userfunc == "" || !strings.Contains(all, "fetcher -secret-dir") || !strings.Contains(all, " "+userfunc) {
		t.Errorf("wasm-env and fetcher do not share /userfunc (%q):\n%s", userfunc, all)
	}

	// Relabelled out of its pool: same processes, still Ready.
	patch := client.MergeFrom(got.DeepCopy())
	got.Labels = map[string]string{"managed": "false", "functionName": "hello"}
	if err := env.Client.Patch(ctx, got, patch); err != nil {
		t.Fatal(err)
	}
	after := readyPod(t, env, ns, got.Labels, "")
	if after.Status.PodIP != ip || !slicesEqual(agent.PIDs(ns, pod.Name), pids) {
		t.Errorf("relabelling changed the pod: ip %s→%s pids %v→%v", ip, after.Status.PodIP, pids, agent.PIDs(ns, pod.Name))
	}

	if err := env.Client.Delete(ctx, after); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		poll(t, 30*time.Second, fmt.Sprintf("process %d gone", pid), func() (bool, error) {
			err := syscall.Kill(pid, 0)
			return errors.Is(err, syscall.ESRCH), err
		})
	}
	poll(t, 30*time.Second, "pod removed from the apiserver", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), err
	})
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
