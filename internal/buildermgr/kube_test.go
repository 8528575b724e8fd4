package buildermgr_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/buildermgr"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// kubeFixture is the builder manager against the shared control plane:
// kubestore for Isotope's objects, KubeBuilders for builder Deployments
// and Services, a real storage service on loopback.
type kubeFixture struct {
	kube    *kubetest.Env
	ns      string
	st      *kubestore.Store
	storage *httptest.Server
}

func newKubeFixture(t *testing.T, prefix string) *kubeFixture {
	t.Helper()
	kube := kubetest.Start(t)
	ns := kube.Namespace(t, prefix)
	st, err := kubestore.New(kube.Config, kubestore.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := storagesvc.NewLocalBackend(t.TempDir(), storagesvc.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/archive", storagesvc.NewServer(backend, storagesvc.Options{}))
	storage := httptest.NewServer(mux)
	t.Cleanup(storage.Close)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kb, err := buildermgr.NewKubeBuilders(buildermgr.KubeConfig{
		Client: kube.Client, StorageURL: storage.URL, PollInterval: 50 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	mgr := buildermgr.New(buildermgr.Config{Store: st, Builders: kb, Logger: log, BuilderReadyTimeout: 60 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); mgr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &kubeFixture{kube: kube, ns: ns, st: st, storage: storage}
}

func kubeEnv(ns, name string) *v1.Environment {
	env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{"team": "wasm"}}}
	env.Spec.Version = 3
	env.Spec.Runtime.Image = "ghcr.io/isotope-dev/isotope/wasm-env:dev"
	env.Spec.Builder.Image = "ghcr.io/isotope-dev/isotope/go-wasm-builder:dev"
	env.Spec.Builder.Command = "testbuild"
	return env
}

// builderObjects returns the builder Deployment and Service named name,
// nil when absent.
func builderObjects(t *testing.T, c client.Client, ns, name string) (*appsv1.Deployment, *corev1.Service) {
	t.Helper()
	d, s := &appsv1.Deployment{}, &corev1.Service{}
	key := types.NamespacedName{Namespace: ns, Name: name}
	if err := c.Get(kubetest.Context(t), key, d); apierrors.IsNotFound(err) {
		d = nil
	} else if err != nil {
		t.Fatal(err)
	}
	if err := c.Get(kubetest.Context(t), key, s); apierrors.IsNotFound(err) {
		s = nil
	} else if err != nil {
		t.Fatal(err)
	}
	return d, s
}

// An environment with a builder image gets a Deployment and a Service
// named <env>-<resourceVersion> with Fission's labels, ports and an
// owner reference to the Environment; an update replaces them with the
// new version's; a delete removes them.
func TestKubeBuilderObjects(t *testing.T) {
	f := newKubeFixture(t, "bm-objects")
	c := f.kube.Client
	obj, err := f.st.Create(kubetest.Context(t), kubeEnv(f.ns, "go"))
	if err != nil {
		t.Fatal(err)
	}
	env := obj.(*v1.Environment)
	name := "go-" + env.ResourceVersion

	var dep *appsv1.Deployment
	var svc *corev1.Service
	kubetest.Eventually(t, 30*time.Second, func() string {
		dep, svc = builderObjects(t, c, f.ns, name)
		if dep == nil || svc == nil {
			return fmt.Sprintf("builder deployment/service %s not created (deployment %v, service %v)", name, dep != nil, svc != nil)
		}
		return ""
	})
	wantLabels := map[string]string{"envName": "go", "envNamespace": f.ns, "envResourceVersion": env.ResourceVersion, "owner": "buildermgr"}
	for what, got := range map[string]map[string]string{
		"deployment labels": dep.Labels, "deployment selector": dep.Spec.Selector.MatchLabels,
		"pod template labels": dep.Spec.Template.Labels, "service labels": svc.Labels, "service selector": svc.Spec.Selector,
	} {
		for k, v := range wantLabels {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q (all: %v)", what, k, got[k], v, got)
			}
		}
	}
	for what, refs := range map[string][]metav1.OwnerReference{"deployment": dep.OwnerReferences, "service": svc.OwnerReferences} {
		if len(refs) != 1 || refs[0].Kind != "Environment" || refs[0].APIVersion != "isotope.dev/v1" || refs[0].Name != "go" || refs[0].UID != env.UID {
			t.Errorf("%s owner references = %+v, want the Environment go (uid %s)", what, refs, env.UID)
		}
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1", dep.Spec.Replicas)
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["fetcher-port"] != 8000 || ports["builder-port"] != 8001 || len(ports) != 2 {
		t.Errorf("service ports = %v, want fetcher-port 8000 and builder-port 8001", ports)
	}
	containers := map[string]corev1.Container{}
	for _, ctr := range dep.Spec.Template.Spec.Containers {
		containers[ctr.Name] = ctr
	}
	if b := containers["builder"]; b.Image != env.Spec.Builder.Image || strings.Join(b.Command, " ") != "isotope builder /packages" || len(b.Ports) != 1 || b.Ports[0].ContainerPort != 8001 {
		t.Errorf("builder container = image %q command %q ports %+v", b.Image, b.Command, b.Ports)
	}
	if fc := containers["fetcher"]; fc.Image != buildermgr.DefaultIsotopeImage || !slices.Contains(fc.Command, "fetcher") || len(fc.Ports) != 1 || fc.Ports[0].ContainerPort != 8000 {
		t.Errorf("fetcher container = image %q command %q ports %+v", fc.Image, fc.Command, fc.Ports)
	}
	if dep.Spec.Template.Annotations["team"] != "wasm" {
		t.Errorf("pod template annotations = %v, want the environment's", dep.Spec.Template.Annotations)
	}

	// Update: a new resourceVersion gets new objects, the old go away.
	env.Spec.Builder.Command = "testbuild --verbose"
	obj, err = f.st.Update(kubetest.Context(t), env)
	if err != nil {
		t.Fatal(err)
	}
	env2 := obj.(*v1.Environment)
	name2 := "go-" + env2.ResourceVersion
	kubetest.Eventually(t, 30*time.Second, func() string {
		oldD, oldS := builderObjects(t, c, f.ns, name)
		newD, newS := builderObjects(t, c, f.ns, name2)
		if oldD != nil || oldS != nil || newD == nil || newS == nil {
			return fmt.Sprintf("after update: old %s (deployment %v service %v), new %s (deployment %v service %v)", name, oldD != nil, oldS != nil, name2, newD != nil, newS != nil)
		}
		if newD.Labels["envResourceVersion"] != env2.ResourceVersion {
			return "new deployment labelled " + newD.Labels["envResourceVersion"]
		}
		return ""
	})

	// Delete: nothing of the environment's builders is left.
	if err := f.st.Delete(kubetest.Context(t), v1.KindEnvironment, f.ns, "go", ""); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		var deps appsv1.DeploymentList
		var svcs corev1.ServiceList
		sel := client.MatchingLabels{"envName": "go", "owner": "buildermgr"}
		if err := c.List(kubetest.Context(t), &deps, client.InNamespace(f.ns), sel); err != nil {
			return err.Error()
		}
		if err := c.List(kubetest.Context(t), &svcs, client.InNamespace(f.ns), sel); err != nil {
			return err.Error()
		}
		if n := len(deps.Items) + len(svcs.Items); n > 0 {
			return fmt.Sprintf("%d deployments and %d services left after the environment's delete", len(deps.Items), len(svcs.Items))
		}
		return ""
	})
}

// fakePod stands in for a builder pod: the real fetcher and builder
// handlers on ports 8000 and 8001 of a loopback address of its own,
// sharing a temporary directory, as a node agent would run the pod's two
// containers.
type fakePod struct {
	ip string
}

func startFakeBuilderPod(t *testing.T, packages fetcher.PackageGetter) *fakePod {
	t.Helper()
	shared := t.TempDir()
	fh := fetcher.New(fetcher.Config{SharedDir: shared, Packages: packages}).Handler()
	bh := builder.New(builder.Config{SharedDir: shared, Builtins: map[string]builder.BuiltinFunc{"testbuild": testBuild}}).Handler()
	ip := kubetest.ServePod(t, []int{8000, 8001}, func(_ string, port int) http.Handler {
		if port == 8000 {
			return fh
		}
		return bh
	})
	return &fakePod{ip: ip}
}

// testBuild copies $SRC_PKG to $DEPLOY_PKG, failing like a compiler when
// a source file says BROKEN.
func testBuild(ctx context.Context, args, env []string, dir string, log io.Writer) error {
	var src, deploy string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SRC_PKG="); ok {
			src = v
		}
		if v, ok := strings.CutPrefix(e, "DEPLOY_PKG="); ok {
			deploy = v
		}
	}
	fmt.Fprintln(log, "compiling", filepath.Base(src))
	if err := os.MkdirAll(deploy, 0o755); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("BROKEN")) {
			fmt.Fprintf(log, "%s:1:1: syntax error: unexpected BROKEN\n", d.Name())
			return fmt.Errorf("exit status 1")
		}
		return os.WriteFile(filepath.Join(deploy, d.Name()+".out"), append([]byte("built:"), data...), 0o644)
	})
}

// fakeKubeletRun is a fake kubelet for one pod: there is no kubelet in
// the test control plane, so the test creates the pod the builder
// Deployment stands for (its labels; the ReplicaSet controller, when
// running, adopts it) and reports it Running and Ready at ip through the
// status subresource, as a kubelet does.
func fakeKubeletRun(t *testing.T, c client.Client, ns string, labels map[string]string, ip string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "builder-", Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "builder", Image: "builder"}, {Name: "fetcher", Image: "fetcher"},
		}},
	}
	if err := c.Create(kubetest.Context(t), pod); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "builder", Image: "builder", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}},
			{Name: "fetcher", Image: "fetcher", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}},
		},
	}
	if err := c.Status().Update(kubetest.Context(t), pod); err != nil {
		t.Fatalf("fake kubelet: report pod %s running at %s: %v", pod.Name, ip, err)
	}
	return pod
}

// statusRecorder records every build status a package passes through,
// from a watch of the store.
type statusRecorder struct {
	mu   sync.Mutex
	seen map[string][]v1.BuildStatus
}

func recordStatuses(t *testing.T, st store.Store) *statusRecorder {
	r := &statusRecorder{seen: map[string][]v1.BuildStatus{}}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := st.Watch(ctx, v1.KindPackage, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Package)
			if !ok {
				continue
			}
			r.mu.Lock()
			s := r.seen[p.Name]
			if len(s) == 0 || s[len(s)-1] != p.Status.BuildStatus {
				r.seen[p.Name] = append(s, p.Status.BuildStatus)
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	return r
}

func (r *statusRecorder) of(name string) []v1.BuildStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen[name])
}

// A pending package goes pending → running → succeeded, driven by the
// builder manager through the builder pod's fetcher and builder at the
// pod's IP; a broken one ends failed with the compiler's message.
func TestKubeBuildThroughBuilderPod(t *testing.T) {
	f := newKubeFixture(t, "bm-build")
	rec := recordStatuses(t, f.st)
	obj, err := f.st.Create(kubetest.Context(t), kubeEnv(f.ns, "go"))
	if err != nil {
		t.Fatal(err)
	}
	env := obj.(*v1.Environment)
	pod := startFakeBuilderPod(t, f.st)
	fakeKubeletRun(t, f.kube.Client, f.ns, buildermgr.BuilderLabels(env), pod.ip)

	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: f.ns}}
	fn.Spec.Environment = v1.EnvironmentReference{Name: "go", Namespace: f.ns}
	fn.Spec.Package.PackageRef = v1.PackageRef{Name: "hello", Namespace: f.ns}
	if _, err := f.st.Create(kubetest.Context(t), fn); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"hello": "package main", "broken": "BROKEN"} {
		p := &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
		p.Spec.Environment = v1.EnvironmentReference{Namespace: f.ns, Name: "go"}
		p.Spec.Source = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: sourceZip(t, map[string]string{"main.go": src})}
		if _, err := f.st.Create(kubetest.Context(t), p); err != nil {
			t.Fatal(err)
		}
	}
	final := func(name string) *v1.Package {
		var p *v1.Package
		kubetest.Eventually(t, 60*time.Second, func() string {
			var err error
			p, err = store.GetAs[*v1.Package](kubetest.Context(t), f.st, f.ns, name)
			if err != nil {
				return err.Error()
			}
			if s := p.Status.BuildStatus; s != v1.BuildStatusSucceeded && s != v1.BuildStatusFailed {
				return fmt.Sprintf("package %s is %q", name, s)
			}
			return ""
		})
		return p
	}

	p := final("hello")
	if p.Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Fatalf("hello: %s\n%s", p.Status.BuildStatus, p.Status.BuildLog)
	}
	rec.wantPath(t, "hello", v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusSucceeded)
	if !strings.Contains(p.Status.BuildLog, "compiling") {
		t.Errorf("build log lacks the builder's output:\n%s", p.Status.BuildLog)
	}
	d := p.Spec.Deployment
	if d.Type != v1.ArchiveTypeURL || !strings.HasPrefix(d.URL, f.storage.URL) || len(d.Checksum.Sum) != 64 {
		t.Fatalf("deployment archive = %+v, want a URL on the storage service with a sha256", d)
	}
	var buf bytes.Buffer
	if _, err := storagesvc.DownloadURL(kubetest.Context(t), d.URL, &buf); err != nil {
		t.Fatalf("download the deploy archive: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "main.go.out" {
		t.Errorf("deploy archive holds %v, want main.go.out", zr.File)
	}
	// The function using the package now points at its built version.
	kubetest.Eventually(t, 10*time.Second, func() string {
		got, err := store.GetAs[*v1.Function](kubetest.Context(t), f.st, f.ns, "hello")
		if err != nil {
			return err.Error()
		}
		if rv := got.Spec.Package.PackageRef.ResourceVersion; rv != p.ResourceVersion {
			return fmt.Sprintf("function's packageref.resourceversion = %q, want %q", rv, p.ResourceVersion)
		}
		return ""
	})

	b := final("broken")
	if b.Status.BuildStatus != v1.BuildStatusFailed || !strings.Contains(b.Status.BuildLog, "syntax error: unexpected BROKEN") {
		t.Errorf("broken: %s, log:\n%s", b.Status.BuildStatus, b.Status.BuildLog)
	}
	rec.wantPath(t, "broken", v1.BuildStatusPending, v1.BuildStatusRunning, v1.BuildStatusFailed)
}

// wantPath waits until the watch has delivered the package's statuses
// in the order want (the store may show the final status before the
// watch event for it arrives here).
func (r *statusRecorder) wantPath(t *testing.T, name string, want ...v1.BuildStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.of(name)
		if isSubsequence(want, got) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s went through %v, want %v in that order", name, got, want)
			return
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(want, got []v1.BuildStatus) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
