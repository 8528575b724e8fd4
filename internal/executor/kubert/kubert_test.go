package kubert_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	asv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/executor/kubert"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/testing/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

type fixture struct {
	kube *kubetest.Env
	ns   string
	st   *kubestore.Store
	cfg  kubert.Config
}

// newFixture runs the Controller against the shared control plane in a
// namespace of its own.
func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	kube := kubetest.Start(t)
	ns := kube.Namespace(t, prefix)
	st, err := kubestore.New(kube.Config, kubestore.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	cfg := kubert.Config{
		Client: kube.Client, Store: st, StorageURL: "http://storagesvc.test",
		PollInterval: 50 * time.Millisecond, ResyncInterval: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctrl, err := kubert.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &fixture{kube: kube, ns: ns, st: st, cfg: cfg}
}

func (f *fixture) create(t *testing.T, obj v1.Object) v1.Object {
	t.Helper()
	out, err := f.st.Create(kubetest.Context(t), obj)
	if err != nil {
		t.Fatalf("create %s: %v", obj.GetName(), err)
	}
	return out
}

func (f *fixture) env(t *testing.T, name string, poolsize int) *v1.Environment {
	env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, Labels: map[string]string{"team": "wasm"}}}
	env.Spec.Version = 3
	env.Spec.Poolsize = poolsize
	env.Spec.Runtime.Image = "ghcr.io/isotope-dev/isotope/wasm-env:dev"
	return f.create(t, env).(*v1.Environment)
}

func deployZip(t *testing.T) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("hello.txt")
	io.WriteString(w, "hello")
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) pkg(t *testing.T, name, env string) *v1.Package {
	p := &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	p.Spec.Environment = v1.EnvironmentReference{Name: env, Namespace: f.ns}
	p.Spec.Deployment = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: deployZip(t)}
	return f.create(t, p).(*v1.Package)
}

func (f *fixture) fn(t *testing.T, name, env, pkg string, es v1.ExecutionStrategy) *v1.Function {
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns}}
	fn.Spec.Environment = v1.EnvironmentReference{Name: env, Namespace: f.ns}
	fn.Spec.Package.PackageRef = v1.PackageRef{Name: pkg, Namespace: f.ns}
	fn.Spec.Package.FunctionName = "Handler"
	fn.Spec.InvokeStrategy.StrategyType = v1.StrategyTypeExecution
	fn.Spec.InvokeStrategy.ExecutionStrategy = es
	return f.create(t, fn).(*v1.Function)
}

func get[T client.Object](t *testing.T, c client.Client, ns, name string, obj T) (T, bool) {
	t.Helper()
	err := c.Get(kubetest.Context(t), types.NamespacedName{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return obj, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return obj, true
}

func checkOwner(t *testing.T, what string, refs []metav1.OwnerReference, kind, name string, uid types.UID) {
	t.Helper()
	if len(refs) != 1 || refs[0].APIVersion != "isotope.dev/v1" || refs[0].Kind != kind || refs[0].Name != name || refs[0].UID != uid {
		t.Errorf("%s owner references = %+v, want %s %s (uid %s)", what, refs, kind, name, uid)
	}
}

// An Environment gets a pool Deployment poolmgr-<env>-<ns>-<rv> with
// Fission's labels (managed=true), poolsize replicas and the
// Environment as owner; an update replaces it, a delete removes it.
func TestPoolDeployment(t *testing.T) {
	f := newFixture(t, "pool")
	c := f.kube.Client
	env := f.env(t, "go", 2)
	name := kubert.PoolName(env)
	if want := "poolmgr-go-" + f.ns + "-" + env.ResourceVersion; name != want {
		t.Errorf("PoolName = %q, want %q", name, want)
	}
	var dep *appsv1.Deployment
	kubetest.Eventually(t, 30*time.Second, func() string {
		var ok bool
		if dep, ok = get(t, c, f.ns, name, &appsv1.Deployment{}); !ok {
			return "no pool deployment " + name
		}
		return ""
	})
	want := map[string]string{"executorType": "poolmgr", "environmentName": "go", "environmentNamespace": f.ns,
		"environmentUid": string(env.UID), "managed": "true", "team": "wasm"}
	for k, v := range want {
		if dep.Labels[k] != v || dep.Spec.Selector.MatchLabels[k] != v || dep.Spec.Template.Labels[k] != v {
			t.Errorf("label %s: deployment %q selector %q template %q, want %q", k, dep.Labels[k], dep.Spec.Selector.MatchLabels[k], dep.Spec.Template.Labels[k], v)
		}
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want poolsize 2", *dep.Spec.Replicas)
	}
	checkOwner(t, "pool", dep.OwnerReferences, "Environment", "go", env.UID)
	ports := map[string]int32{}
	for _, ctr := range dep.Spec.Template.Spec.Containers {
		for _, p := range ctr.Ports {
			ports[ctr.Name+"/"+p.Name] = p.ContainerPort
		}
	}
	if ports["go/http-env"] != 8888 || ports["fetcher/http-fetcher"] != 8000 {
		t.Errorf("container ports = %v, want go/http-env 8888 and fetcher/http-fetcher 8000", ports)
	}
	checkConfigVolumes(t, dep.Spec.Template.Spec)

	env.Spec.Poolsize = 1
	obj, err := f.st.Update(kubetest.Context(t), env)
	if err != nil {
		t.Fatal(err)
	}
	env2 := obj.(*v1.Environment)
	name2 := kubert.PoolName(env2)
	kubetest.Eventually(t, 30*time.Second, func() string {
		_, oldOK := get(t, c, f.ns, name, &appsv1.Deployment{})
		d, newOK := get(t, c, f.ns, name2, &appsv1.Deployment{})
		if oldOK || !newOK {
			return fmt.Sprintf("after update: old pool exists %v, new pool %s exists %v", oldOK, name2, newOK)
		}
		if *d.Spec.Replicas != 1 {
			return fmt.Sprintf("new pool has %d replicas, want 1", *d.Spec.Replicas)
		}
		return ""
	})

	if err := f.st.Delete(kubetest.Context(t), v1.KindEnvironment, f.ns, "go", ""); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		if _, ok := get(t, c, f.ns, name2, &appsv1.Deployment{}); ok {
			return "pool left after the environment's delete"
		}
		return ""
	})
}

// A pool Deployment whose Environment was deleted while no executor ran
// (no watch event will ever name it) is found by the periodic resync
// through its labels and deleted.
func TestResyncDeletesPoolsOfVanishedEnvironments(t *testing.T) {
	f := newFixture(t, "orphan")
	labels := map[string]string{
		kubert.LabelExecutorType: string(v1.ExecutorTypePoolmgr), kubert.LabelEnvironmentName: "ghost",
		kubert.LabelEnvironmentNamespace: f.ns,
	}
	one := int32(1)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "poolmgr-ghost-" + f.ns + "-1", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ghost", Image: "isotope/wasm-env"}}},
			},
		},
	}
	if err := f.kube.Client.Create(kubetest.Context(t), dep); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		if _, ok := get(t, f.kube.Client, f.ns, dep.Name, &appsv1.Deployment{}); ok {
			return "the pool of the vanished environment is still there"
		}
		return ""
	})
}

// A newdeploy Function gets a Deployment, a Service and an HPA named
// newdeploy-<name>-<ns>-<uid suffix>, owned by the Function, with the
// HPA's bounds from MinScale/MaxScale and a fetcher that specializes at
// start; an update reaches the HPA; a delete removes all three.
func TestNewdeployObjects(t *testing.T) {
	f := newFixture(t, "newdeploy")
	c := f.kube.Client
	f.env(t, "go", 0)
	f.pkg(t, "hello", "go")
	fn := f.fn(t, "hello", "go", "hello", v1.ExecutionStrategy{
		ExecutorType: v1.ExecutorTypeNewdeploy, MinScale: 2, MaxScale: 5, TargetCPUPercent: 60,
	})
	name := kubert.NewdeployName(fn)
	uid := string(fn.UID)
	if want := "newdeploy-hello-" + f.ns + "-" + uid[len(uid)-17:]; name != strings.ToLower(want) && len(want) <= 63 {
		t.Errorf("NewdeployName = %q, want %q", name, want)
	}
	var (
		dep *appsv1.Deployment
		svc *corev1.Service
		hpa *asv2.HorizontalPodAutoscaler
	)
	kubetest.Eventually(t, 30*time.Second, func() string {
		var ok1, ok2, ok3 bool
		dep, ok1 = get(t, c, f.ns, name, &appsv1.Deployment{})
		svc, ok2 = get(t, c, f.ns, name, &corev1.Service{})
		hpa, ok3 = get(t, c, f.ns, name, &asv2.HorizontalPodAutoscaler{})
		if !ok1 || !ok2 || !ok3 {
			return fmt.Sprintf("%s: deployment %v service %v hpa %v", name, ok1, ok2, ok3)
		}
		return ""
	})
	checkOwner(t, "deployment", dep.OwnerReferences, "Function", "hello", fn.UID)
	checkOwner(t, "service", svc.OwnerReferences, "Function", "hello", fn.UID)
	checkOwner(t, "hpa", hpa.OwnerReferences, "Function", "hello", fn.UID)
	for k, v := range map[string]string{"executorType": "newdeploy", "functionName": "hello", "functionNamespace": f.ns, "functionUid": uid, "environmentName": "go"} {
		if dep.Labels[k] != v || dep.Spec.Template.Labels[k] != v {
			t.Errorf("label %s = %q (template %q), want %q", k, dep.Labels[k], dep.Spec.Template.Labels[k], v)
		}
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want MinScale 2", *dep.Spec.Replicas)
	}
	checkConfigVolumes(t, dep.Spec.Template.Spec)
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 5 {
		t.Errorf("hpa min %v max %d, want 2 and 5", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != name {
		t.Errorf("hpa targets %+v", ref)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 60 {
		t.Errorf("hpa metrics = %+v, want CPU at 60%%", hpa.Spec.Metrics)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.IntValue() != 8888 {
		t.Errorf("service ports = %+v, want 80 → 8888", svc.Spec.Ports)
	}
	var fetcherCmd []string
	for _, ctr := range dep.Spec.Template.Spec.Containers {
		if ctr.Name == "fetcher" {
			fetcherCmd = ctr.Command
		}
	}
	i := indexOf(fetcherCmd, "-specialize-request")
	if indexOf(fetcherCmd, "-specialize-on-startup") < 0 || i < 0 || i+1 >= len(fetcherCmd) {
		t.Fatalf("fetcher command %q lacks -specialize-on-startup -specialize-request", fetcherCmd)
	}
	var sr fetcher.FunctionSpecializeRequest
	if err := json.Unmarshal([]byte(fetcherCmd[i+1]), &sr); err != nil {
		t.Fatal(err)
	}
	if sr.FetchReq.FetchType != fetcher.FetchDeployment || sr.FetchReq.Package.Name != "hello" || sr.LoadReq.FunctionName != "Handler" || sr.LoadReq.FilePath != "/userfunc/deployarchive" {
		t.Errorf("specialize request = %+v", sr)
	}

	fn.Spec.InvokeStrategy.ExecutionStrategy.MaxScale = 7
	// A secret named without a namespace is the function's: the pod's
	// fetcher is told the namespace.
	fn.Spec.Secrets = []v1.SecretReference{{Name: "db"}}
	if _, err := f.st.Update(kubetest.Context(t), fn); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		h, _ := get(t, c, f.ns, name, &asv2.HorizontalPodAutoscaler{})
		if h.Spec.MaxReplicas != 7 {
			return fmt.Sprintf("hpa max = %d after the update, want 7", h.Spec.MaxReplicas)
		}
		d, _ := get(t, c, f.ns, name, &appsv1.Deployment{})
		for _, ctr := range d.Spec.Template.Spec.Containers {
			if i := indexOf(ctr.Command, "-specialize-request"); ctr.Name == "fetcher" && i >= 0 && i+1 < len(ctr.Command) {
				var sr fetcher.FunctionSpecializeRequest
				if err := json.Unmarshal([]byte(ctr.Command[i+1]), &sr); err != nil {
					return err.Error()
				}
				if want := []v1.SecretReference{{Namespace: f.ns, Name: "db"}}; !slices.Equal(sr.FetchReq.Secrets, want) {
					return fmt.Sprintf("fetch request secrets %v after the update, want %v", sr.FetchReq.Secrets, want)
				}
				return ""
			}
		}
		return "no fetcher -specialize-request"
	})

	if err := f.st.Delete(kubetest.Context(t), v1.KindFunction, f.ns, "hello", ""); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		_, ok1 := get(t, c, f.ns, name, &appsv1.Deployment{})
		_, ok2 := get(t, c, f.ns, name, &corev1.Service{})
		_, ok3 := get(t, c, f.ns, name, &asv2.HorizontalPodAutoscaler{})
		if ok1 || ok2 || ok3 {
			return fmt.Sprintf("after delete: deployment %v service %v hpa %v", ok1, ok2, ok3)
		}
		return ""
	})
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// podServers stand in for a function pod's two containers: the real
// fetcher handler on ip:8000 and a minimal Fission environment runtime
// on ip:8888 (/v2/specialize, then "/" answers for the loaded function),
// on a loopback address of the pod's own, as a node agent would run
// them.
type podServers struct {
	ip string
	mu sync.Mutex
	// loaded is the FunctionLoadRequest the runtime received.
	loaded *fetcher.FunctionLoadRequest
}

func startPodServers(t *testing.T, packages fetcher.PackageGetter) *podServers {
	t.Helper()
	ps := &podServers{}
	rt := http.NewServeMux()
	rt.HandleFunc("POST /v2/specialize", func(w http.ResponseWriter, r *http.Request) {
		var lr fetcher.FunctionLoadRequest
		if err := json.NewDecoder(r.Body).Decode(&lr); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		ps.mu.Lock()
		ps.loaded = &lr
		ps.mu.Unlock()
	})
	rt.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		lr := ps.loaded
		ps.mu.Unlock()
		if lr == nil {
			http.Error(w, "Generic container: no requests supported", 500)
			return
		}
		fmt.Fprintf(w, "%s of %s answers %s", lr.FunctionName, lr.FunctionMetadata.Name, r.URL.Path)
	})
	ps.ip = kubetest.ServePod(t, []int{8000, 8888}, func(ip string, port int) http.Handler {
		if port == 8888 {
			return rt
		}
		return fetcher.New(fetcher.Config{SharedDir: t.TempDir(), Packages: packages, RuntimeURL: "http://" + ip + ":8888"}).Handler()
	})
	return ps
}

// fakeKubeletRun is a fake kubelet for one pod (the control plane has
// none): it reports the pod Running and Ready at ip through the status
// subresource, as a kubelet does once the pod's containers are up.
func fakeKubeletRun(t *testing.T, c client.Client, pod *corev1.Pod, ip string) {
	t.Helper()
	// The scheduler and the ReplicaSet controller write the pod too: like
	// a kubelet, report on the latest version and retry on a conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur corev1.Pod
		if err := c.Get(kubetest.Context(t), client.ObjectKeyFromObject(pod), &cur); err != nil {
			return err
		}
		now := metav1.Now()
		cur.Status.Phase = corev1.PodRunning
		cur.Status.PodIP, cur.Status.PodIPs, cur.Status.StartTime = ip, []corev1.PodIP{{IP: ip}}, &now
		cur.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		cur.Status.ContainerStatuses = nil
		for _, ctr := range cur.Spec.Containers {
			cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: ctr.Name, Image: ctr.Image, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		if err := c.Status().Update(kubetest.Context(t), &cur); err != nil {
			return err
		}
		*pod = cur
		return nil
	})
	if err != nil {
		t.Fatalf("fake kubelet: report pod %s running at %s: %v", pod.Name, ip, err)
	}
}

// poolPods lists the pods of env's pool ReplicaSet(s) and the pods
// labelled for env at all.
func poolPods(t *testing.T, c client.Client, env *v1.Environment) []corev1.Pod {
	var pods corev1.PodList
	if err := c.List(kubetest.Context(t), &pods, client.InNamespace(env.Namespace), client.MatchingLabels{"environmentUid": string(env.UID)}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// poolmgr on the control plane: the ReplicaSet of the pool Deployment
// makes a pod; a fake kubelet reports it ready at a loopback address
// where the real fetcher and a minimal runtime listen; the runtime takes
// it for a function (relabelled managed=false with the function's
// labels), specializes it through its fetcher and proxies a request to
// it; the ReplicaSet, no longer selecting it, makes a replacement.
func TestPoolPodRelabelledSpecializedAndReplaced(t *testing.T) {
	f := newFixture(t, "relabel")
	f.kube.StartControllers(t)
	c := f.kube.Client
	env := f.env(t, "go", 1)
	pkg := f.pkg(t, "hello", "go")
	fn := f.fn(t, "hello", "go", "hello", v1.ExecutionStrategy{ExecutorType: v1.ExecutorTypePoolmgr})

	// The ReplicaSet's pod appears (Pending: no kubelet).
	var pod corev1.Pod
	kubetest.Eventually(t, 90*time.Second, func() string {
		for _, p := range poolPods(t, c, env) {
			if metav1.GetControllerOf(&p) != nil && p.Labels["managed"] == "true" {
				pod = p
				return ""
			}
		}
		return "the pool's ReplicaSet made no pod"
	})
	srv := startPodServers(t, f.st)
	fakeKubeletRun(t, c, &pod, srv.ip)

	rt, err := kubert.NewRuntime(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := rt.Start(kubetest.Context(t), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := ins.Specialize(kubetest.Context(t), instance.Function{Fn: fn, Env: env, Pkg: pkg}); err != nil {
		t.Fatalf("specialize: %v", err)
	}
	taken, _ := get(t, c, f.ns, pod.Name, &corev1.Pod{})
	for k, v := range map[string]string{"managed": "false", "functionName": "hello", "functionNamespace": f.ns, "functionUid": string(fn.UID)} {
		if taken.Labels[k] != v {
			t.Errorf("taken pod label %s = %q, want %q", k, taken.Labels[k], v)
		}
	}
	if got := taken.Annotations["svcHost"]; got != srv.ip+":8888" {
		t.Errorf("svcHost annotation = %q, want %s:8888", got, srv.ip)
	}
	srv.mu.Lock()
	loaded := srv.loaded
	srv.mu.Unlock()
	if loaded == nil || loaded.FunctionName != "Handler" || loaded.FilePath != "/userfunc/deployarchive" {
		t.Errorf("runtime was loaded with %+v", loaded)
	}
	rec := httptest.NewRecorder()
	ins.ServeHTTP(rec, httptest.NewRequest("GET", "/greet", nil))
	if rec.Code != 200 || rec.Body.String() != "Handler of hello answers /greet" {
		t.Errorf("proxied request: %d %q", rec.Code, rec.Body.String())
	}

	// Out of the selector: the ReplicaSet lets go of it and refills.
	kubetest.Eventually(t, 60*time.Second, func() string {
		p, _ := get(t, c, f.ns, pod.Name, &corev1.Pod{})
		if owner := metav1.GetControllerOf(p); owner != nil {
			return "the ReplicaSet still owns the taken pod"
		}
		for _, q := range poolPods(t, c, env) {
			if q.UID != pod.UID && q.Labels["managed"] == "true" && metav1.GetControllerOf(&q) != nil {
				return ""
			}
		}
		return "no replacement pod in the pool"
	})

	// Closing the instance deletes its pod.
	if err := ins.Close(); err != nil {
		t.Fatal(err)
	}
	kubetest.Eventually(t, 30*time.Second, func() string {
		if p, ok := get(t, c, f.ns, pod.Name, &corev1.Pod{}); ok && p.DeletionTimestamp == nil {
			return "the closed instance's pod is still there"
		}
		return ""
	})
	if ins.Alive() {
		t.Error("closed instance reports alive")
	}
}

// newdeploy on the control plane: the function's pod (created by the
// test as a fake kubelet would run it, specialized with the request the
// Deployment gives its fetcher) serves through the runtime's instance;
// when the last instance closes the Deployment is scaled down to
// MinScale (0 here).
func TestNewdeployInstanceServesAndScalesDown(t *testing.T) {
	f := newFixture(t, "ndserve")
	c := f.kube.Client
	env := f.env(t, "go", 0)
	pkg := f.pkg(t, "hello", "go")
	fn := f.fn(t, "hello", "go", "hello", v1.ExecutionStrategy{ExecutorType: v1.ExecutorTypeNewdeploy, MinScale: 0, MaxScale: 2})
	name := kubert.NewdeployName(fn)
	var dep *appsv1.Deployment
	kubetest.Eventually(t, 30*time.Second, func() string {
		var ok bool
		if dep, ok = get(t, c, f.ns, name, &appsv1.Deployment{}); !ok {
			return "no deployment " + name
		}
		return ""
	})
	if *dep.Spec.Replicas != 1 {
		t.Errorf("replicas at creation = %d, want max(MinScale, 1) = 1", *dep.Spec.Replicas)
	}

	// The pod the Deployment stands for: its fetcher specializes at start
	// with the Deployment's -specialize-request, and the fake kubelet
	// reports it ready.
	srv := startPodServers(t, f.st)
	var specReq string
	for _, ctr := range dep.Spec.Template.Spec.Containers {
		if i := indexOf(ctr.Command, "-specialize-request"); i >= 0 {
			specReq = ctr.Command[i+1]
		}
	}
	resp, err := http.Post("http://"+srv.ip+":8000/specialize", "application/json", strings.NewReader(specReq))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the fetcher refused the Deployment's specialize request: %s %s", resp.Status, body)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-", Namespace: f.ns, Labels: dep.Spec.Template.Labels},
		Spec:       dep.Spec.Template.Spec,
	}
	if err := c.Create(kubetest.Context(t), pod); err != nil {
		t.Fatal(err)
	}
	fakeKubeletRun(t, c, pod, srv.ip)

	rt, err := kubert.NewRuntime(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ins, _ := rt.Start(kubetest.Context(t), env)
	if err := ins.Specialize(kubetest.Context(t), instance.Function{Fn: fn, Env: env, Pkg: pkg}); err != nil {
		t.Fatalf("specialize: %v", err)
	}
	rec := httptest.NewRecorder()
	ins.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 200 || rec.Body.String() != "Handler of hello answers /x" {
		t.Errorf("proxied request: %d %q", rec.Code, rec.Body.String())
	}
	if err := ins.Close(); err != nil {
		t.Fatal(err)
	}
	d, _ := get(t, c, f.ns, name, &appsv1.Deployment{})
	if *d.Spec.Replicas != 0 {
		t.Errorf("replicas after the last instance closed = %d, want MinScale 0", *d.Spec.Replicas)
	}
}

// checkConfigVolumes: the pod's /secrets and /configs are emptyDirs the
// fetcher writes (it reads the function's core/v1 Secrets and ConfigMaps
// once it knows the function) and the runtime reads, read-only, with
// SECRETS_DIR and CONFIGS_DIR pointing at them as in the embedded mode.
func checkConfigVolumes(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	for _, name := range []string{"secrets", "configmaps"} {
		if v, ok := vols[name]; !ok || v.EmptyDir == nil {
			t.Errorf("volume %s: %+v, want an emptyDir", name, v)
		}
	}
	for _, ctr := range spec.Containers {
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range ctr.VolumeMounts {
			mounts[m.MountPath] = m
		}
		fetcher := ctr.Name == "fetcher"
		for path, vol := range map[string]string{kubert.SecretsDir: "secrets", kubert.ConfigsDir: "configmaps"} {
			m, ok := mounts[path]
			if !ok || m.Name != vol || m.ReadOnly == fetcher {
				t.Errorf("container %s mount %s: %+v (present %v), want volume %s, read-only for the runtime only", ctr.Name, path, m, ok, vol)
			}
		}
		if fetcher {
			if i := indexOf(ctr.Command, "-secret-dir"); i < 0 || ctr.Command[i+1] != kubert.SecretsDir {
				t.Errorf("fetcher command %v, want -secret-dir %s", ctr.Command, kubert.SecretsDir)
			}
			if i := indexOf(ctr.Command, "-cfgmap-dir"); i < 0 || ctr.Command[i+1] != kubert.ConfigsDir {
				t.Errorf("fetcher command %v, want -cfgmap-dir %s", ctr.Command, kubert.ConfigsDir)
			}
			continue
		}
		env := map[string]string{}
		for _, e := range ctr.Env {
			env[e.Name] = e.Value
		}
		if env["SECRETS_DIR"] != kubert.SecretsDir || env["CONFIGS_DIR"] != kubert.ConfigsDir {
			t.Errorf("runtime %s env %v, want SECRETS_DIR=%s CONFIGS_DIR=%s", ctr.Name, env, kubert.SecretsDir, kubert.ConfigsDir)
		}
	}
}
