package kube_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/buildermgr"
	"isotope.dev/isotope/internal/executor/kubert"
	"isotope.dev/isotope/internal/kubepod"
	"isotope.dev/isotope/internal/mqtrigger"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// TestSeedFlowOnKubernetes is the seed's flow on a real control plane:
// an environment with the go-wasm builder gets a builder Deployment whose
// pod (fetcher + builder) builds `pkg create --src hello.go` into a
// WebAssembly reactor uploaded to the storage service; the package ends
// succeeded; the function's first request through `isotope router`
// takes a pod out of the environment's pool (relabelled out of the pool
// Deployment's selector, which then makes a replacement), specializes it
// through its fetcher into `isotope wasm-env`, and answers with the
// function's output. Deleting it all removes the pods and Deployments;
// `spec apply` of examples/hello/specs then serves it again. Everything
// is driven by the real CLI with --kubeconfig.
//
// Everything runs from the images make images builds: the roles and the
// CLI are the control-plane image's binary, and every pod's containers
// (builder, fetchers, wasm-env) run from their image in the OCI layout,
// the build with the go-wasm builder image's own Go toolchain; each
// container's status names the image digest it ran.
//
// Each role runs as its ServiceAccount from deploy/manifests/isotope.yaml
// (the chart rendered with default values), with that file's RBAC
// applied, and the pods' fetchers as isotope-fetcher: the chart's
// least-privilege rules must be enough for the whole flow, and no role
// may log a refusal. Functions live in "default", the chart's default
// functionNamespaces.
func TestSeedFlowOnKubernetes(t *testing.T) {
	kube := kubetest.Start(t)
	p := platformImages(t)
	kube.StartControllers(t)
	const ns, system = "default", "isotope-system"
	applyChartRBAC(t, kube, system)
	as := func(namespace, sa string) string { return impersonating(t, kube, namespace, sa) }
	agent := startAgent(t, kube, p, as(ns, "isotope-fetcher"), map[string]string{ns + "/isotope-mqt-connector": as(ns, "isotope-mqt-connector")})

	// The storage service holds archives on "its PVC" (a temp dir). Pods
	// reach it at its loopback address: there is no kube-proxy here. It
	// prunes every second (nothing is old enough to go), listing
	// Packages as itself.
	ss, storageAddr := startRole(t, "storagesvc", true, "storagesvc", "--kubeconfig", as(system, "isotope-storagesvc"),
		"--addr", "127.0.0.1:0", "--dir", t.TempDir(), "--prune-interval", "1s")
	storage := "http://" + storageAddr
	// The arguments the chart gives each role (fetcher sidecars from the
	// fetcher image).
	common := func(role string) []string {
		return []string{role, "--kubeconfig", as(system, "isotope-"+role), "--storage-url", storage, "--image", p.refs["fetcher"]}
	}
	leader := []string{"--lease-namespace", system}
	bm, _ := startRole(t, "buildermgr", false, slices.Concat(common("buildermgr"), leader, []string{"--builder-service-account", "isotope-fetcher"})...)
	ex, _ := startRole(t, "executor", false, slices.Concat(common("executor"), leader, []string{"--function-service-account", "isotope-fetcher"})...)
	rt, routerAddr := startRole(t, "router", true, append(common("router"), "--addr", "127.0.0.1:0")...)
	router := "http://" + routerAddr
	roles := []*role{ss, bm, ex, rt}

	run := func(args ...string) string {
		t.Helper()
		return cli(t, kube.Kubeconfig, storage, append(args, "-n", ns)...)
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	run("env", "create", "--name", "go", "--image", p.refs["wasm-env"], "--builder", p.refs["go-wasm-builder"], "--poolsize", "1")

	// The builder manager makes the builder Deployment and Service with
	// Fission's names, labels and ports, owned by the Environment.
	c := kube.Client
	env := &v1.Environment{}
	if err := c.Get(kubetest.Context(t), client.ObjectKey{Namespace: ns, Name: "go"}, env); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the builder Deployment", func() error {
		var ds appsv1.DeploymentList
		if err := c.List(kubetest.Context(t), &ds, client.InNamespace(ns), client.MatchingLabels(buildermgr.BuilderLabels(env))); err != nil {
			return err
		}
		if len(ds.Items) != 1 {
			return fmt.Errorf("%d builder Deployments", len(ds.Items))
		}
		d := ds.Items[0]
		if want := "go-" + env.ResourceVersion; d.Name != want {
			return fmt.Errorf("builder Deployment is named %s, want %s", d.Name, want)
		}
		if o := d.OwnerReferences; len(o) != 1 || o[0].Kind != "Environment" || o[0].UID != env.UID {
			return fmt.Errorf("builder Deployment's owners = %+v, want the Environment", o)
		}
		return nil
	})

	// pkg create waits for the build, which runs in the builder pod.
	src := filepath.Join(root, "examples", "hello", "hello.go")
	out := run("pkg", "create", "--name", "hello", "--env", "go", "--src", src)
	t.Logf("pkg create:\n%s", out)
	pkg := &v1.Package{}
	if err := c.Get(kubetest.Context(t), client.ObjectKey{Namespace: ns, Name: "hello"}, pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Fatalf("package is %q after pkg create, log:\n%s", pkg.Status.BuildStatus, pkg.Status.BuildLog)
	}
	if d := pkg.Spec.Deployment; d.Type != v1.ArchiveTypeURL || !strings.HasPrefix(d.URL, storage) || len(d.Checksum.Sum) != 64 {
		t.Fatalf("deployment archive = %+v, want a URL on the storage service with a sha256", d)
	}

	run("fn", "create", "--name", "hello", "--env", "go", "--pkg", "hello", "--entrypoint", "Handler")
	run("route", "create", "--name", "hello", "--function", "hello", "--url", "/hello", "--method", "GET")

	// The pool has its one generic pod before the first request.
	pool := kubert.PoolLabels(env)
	waitFor(t, 90*time.Second, "a ready pod in the environment's pool", func() error {
		for _, p := range pods(t, c, ns, pool) {
			if kubepod.Ready(&p) {
				return nil
			}
		}
		return fmt.Errorf("pool pods: %s", describePods(pods(t, c, ns, pool)))
	})

	var body string
	waitFor(t, 3*time.Minute, "GET /hello through the router", func() error {
		for _, r := range roles {
			r.alive(t)
		}
		resp, err := http.Get(router + "/hello?name=kube")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %.300s", resp.Status, b)
		}
		body = string(b)
		return nil
	})
	if want := "Hello, kube! (from WebAssembly, GET /)"; strings.TrimSpace(body) != want {
		t.Errorf("the function answered %q, want %q", body, want)
	}

	// The pod that serves it was taken out of the pool: relabelled for
	// the function, no longer owned by the pool's ReplicaSet, which made
	// a replacement.
	fn := &v1.Function{}
	if err := c.Get(kubetest.Context(t), client.ObjectKey{Namespace: ns, Name: "hello"}, fn); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the specialized pod relabelled and the pool refilled", func() error {
		taken := pods(t, c, ns, map[string]string{"functionName": "hello", "functionUid": string(fn.UID)})
		if len(taken) != 1 {
			return fmt.Errorf("%d pods labelled for the function", len(taken))
		}
		if taken[0].Labels["managed"] != "false" || metav1.GetControllerOf(&taken[0]) != nil {
			return fmt.Errorf("the function's pod is still in the pool: labels %v", taken[0].Labels)
		}
		for _, p := range pods(t, c, ns, pool) {
			if p.UID != taken[0].UID && p.Labels["managed"] == "true" && metav1.GetControllerOf(&p) != nil {
				return nil
			}
		}
		return fmt.Errorf("no replacement in the pool: %s", describePods(pods(t, c, ns, pool)))
	})

	// Warm requests keep going to the same pod.
	for i := range 5 {
		resp, err := http.Get(fmt.Sprintf("%s/hello?name=r%d", router, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf("Hello, r%d!", i)) {
			t.Errorf("warm request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if n := len(pods(t, c, ns, map[string]string{"functionUid": string(fn.UID)})); n != 1 {
		t.Errorf("%d pods serve the function after warm requests, want 1", n)
	}

	// A TimeTrigger fires through the router: `isotope timer serve` (as
	// isotope-timer, holding its Lease) calls the router through a
	// recording proxy, so the test sees each call and its answer.
	calls := recordCalls(t, router)
	tm, _ := startRole(t, "timer", false, "timer", "serve", "--kubeconfig", as(system, "isotope-timer"),
		"--router", calls.url, "--lease-namespace", system)
	roles = append(roles, tm)
	run("timer", "create", "--name", "tick", "--function", "hello", "--cron", "@every 1s")
	waitFor(t, 60*time.Second, "the timer's call answered by the function", func() error {
		tm.alive(t)
		return calls.answered("tick", "/fission-function/"+ns+"/hello", "Hello, world!")
	})

	// A MessageQueueTrigger runs as a connector: `isotope mqt serve` (as
	// isotope-mqtrigger, holding its Lease) makes the trigger's
	// Deployment, whose pod runs `isotope mqt consume` from the isotope
	// image as isotope-mqt-connector, reads a NATS JetStream subject
	// (the broker is this test's, on loopback) and calls the function
	// through the recording proxy; the answer goes to respTopic.
	nsrv, err := mqtrigger.StartNATS("127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nsrv.Close)
	// The connectors' pods call the router, which runs on this host: the
	// node agent rewrites 127.0.0.1 in a pod's arguments to the pod's own
	// address (a pod's localhost is its own), so the URL names the host's
	// loopback in its IPv4-mapped form, which the rewrite leaves alone.
	hostRouter := strings.Replace(calls.url, "://127.0.0.1:", "://[::ffff:127.0.0.1]:", 1)
	mq, _ := startRole(t, "mqtrigger", false, "mqt", "serve", "--kubeconfig", as(system, "isotope-mqtrigger"),
		"--router", hostRouter, "--image", p.refs["isotope"], "--lease-namespace", system,
		"--connector-service-account", "isotope-mqt-connector")
	roles = append(roles, mq)
	run("mqt", "create", "--name", "orders", "--function", "hello", "--mqtype", "nats-jetstream",
		"--topic", "orders.new", "--resptopic", "orders.done", "--metadata", "natsServerURL="+nsrv.URL())
	nc, err := nats.Connect(nsrv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := mqtrigger.StreamName("orders.new")
	connectorLogs := func() string {
		var logs strings.Builder
		for _, pod := range pods(t, c, ns, map[string]string{"messagequeuetrigger": "orders"}) {
			l, lerr := agent.ContainerLog(ns, pod.Name, "connector")
			fmt.Fprintf(&logs, "\n%s (%s, ready %v): %s%v", pod.Name, pod.Status.Phase, kubepod.Ready(&pod), tail(l, 20), lerr)
		}
		return logs.String()
	}
	waitFor(t, 90*time.Second, "the connector pod consuming (its stream made)", func() error {
		mq.alive(t)
		if _, err := js.Stream(kubetest.Context(t), stream); err != nil {
			return fmt.Errorf("no stream %s yet: %v; connector pods:%s", stream, err, connectorLogs())
		}
		return nil
	})
	if _, err := js.Publish(kubetest.Context(t), "orders.new", []byte("order-1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the message delivered to the function", func() error {
		if err := calls.answered("", "/fission-function/"+ns+"/hello", "Hello, world!"); err != nil {
			return fmt.Errorf("no call from the connector; connector pods:%s", connectorLogs())
		}
		return nil
	})
	answers, err := js.OrderedConsumer(kubetest.Context(t), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"orders.done"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the function's answer on orders.done", func() error {
		m, err := answers.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		if err != nil {
			return err
		}
		if !strings.Contains(string(m.Data()), "Hello, world!") {
			return fmt.Errorf("orders.done got %q", m.Data())
		}
		return nil
	})
	connectors := pods(t, c, ns, map[string]string{"messagequeuetrigger": "orders"})
	if len(connectors) == 0 {
		t.Error("no connector pod for the trigger")
	}
	for _, pod := range connectors {
		if pod.Spec.ServiceAccountName != "isotope-mqt-connector" {
			t.Errorf("connector pod %s runs as %q, want isotope-mqt-connector", pod.Name, pod.Spec.ServiceAccountName)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Image != p.refs["isotope"] || !strings.HasSuffix(cs.ImageID, "@"+p.digest[p.refs["isotope"]]) {
				t.Errorf("connector pod %s ran %s (%s), not the built isotope image", pod.Name, cs.Image, cs.ImageID)
			}
		}
	}
	run("mqt", "delete", "--name", "orders")

	// Deleting everything through the CLI takes the cluster objects with
	// it: the function's pod, the pool and the builder.
	for _, kind := range []string{"timer", "route", "fn", "pkg", "env"} {
		run(kind, "delete", "--name", map[string]string{"timer": "tick", "route": "hello", "fn": "hello", "pkg": "hello", "env": "go"}[kind])
	}
	waitFor(t, 90*time.Second, "the function's pod, the pool and the builder to go", func() error {
		var ds appsv1.DeploymentList
		if err := c.List(kubetest.Context(t), &ds, client.InNamespace(ns)); err != nil {
			return err
		}
		var left []string
		for _, d := range ds.Items {
			if d.DeletionTimestamp == nil {
				left = append(left, "Deployment "+d.Name)
			}
		}
		for _, p := range pods(t, c, ns, map[string]string{"functionUid": string(fn.UID)}) {
			if p.DeletionTimestamp == nil {
				left = append(left, "pod "+p.Name)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("still there: %v", left)
		}
		return nil
	})

	// The example's spec directory, the same YAML as in embedded mode,
	// brings it all back.
	run("spec", "apply", "--specdir", filepath.Join(root, "examples", "hello", "specs"), "--wait")
	waitFor(t, 3*time.Minute, "GET /hello of the applied spec", func() error {
		resp, err := http.Get(router + "/hello?name=spec")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Hello, spec!") {
			return fmt.Errorf("%s: %.300s", resp.Status, b)
		}
		return nil
	})

	// The pods ran as the fetcher's identity, every container from the
	// built image it names (the builder, the pool, the function's pod of
	// the applied spec, whose images are the examples' tagged ones), and
	// no role was refused anything by RBAC along the way.
	ran := map[string]bool{}
	for _, pod := range pods(t, c, ns, nil) {
		account := "isotope-fetcher"
		if pod.Labels["messagequeuetrigger"] != "" {
			account = "isotope-mqt-connector"
		}
		if pod.Spec.ServiceAccountName != account {
			t.Errorf("pod %s runs as %q, want %s", pod.Name, pod.Spec.ServiceAccountName, account)
		}
		for _, cs := range pod.Status.ContainerStatuses {
			want, built := p.digest[cs.Image]
			if !built || !strings.HasSuffix(cs.ImageID, "@"+want) {
				t.Errorf("pod %s container %s: image %s ran as %q, not from the built image (%s)", pod.Name, cs.Name, cs.Image, cs.ImageID, want)
			}
			ran[cs.Image] = true
		}
	}
	for _, name := range []string{"wasm-env", "fetcher", "go-wasm-builder"} {
		if !ran[p.refs[name]] {
			t.Errorf("no container ran %s (ran: %v)", p.refs[name], ran)
		}
	}
	for _, r := range roles {
		if logs := r.logs.String(); strings.Contains(strings.ToLower(logs), "forbidden") {
			t.Errorf("%s was refused by RBAC:\n%s", r.name, grepLines(logs, "forbidden"))
		}
	}
}

// grepLines returns the lines of s containing sub (case-insensitive).
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(l), sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func pods(t *testing.T, c client.Client, ns string, labels map[string]string) []corev1.Pod {
	t.Helper()
	var l corev1.PodList
	if err := c.List(kubetest.Context(t), &l, client.InNamespace(ns), client.MatchingLabels(labels)); err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func describePods(ps []corev1.Pod) string {
	if len(ps) == 0 {
		return "none"
	}
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s (%s, ready %v, ip %s, labels %v); ", p.Name, p.Status.Phase, kubepod.Ready(&p), p.Status.PodIP, p.Labels)
	}
	return b.String()
}

// callRecorder is a reverse proxy in front of the router that records
// each call's timer header, path, status and body.
type callRecorder struct {
	url   string
	mu    sync.Mutex
	calls []recordedCall
}

type recordedCall struct {
	timer, path string
	status      int
	body        string
}

func recordCalls(t *testing.T, target string) *callRecorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &callRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.calls = append(r.calls, recordedCall{resp.Request.Header.Get("X-Fission-Timer-Name"), resp.Request.URL.Path, resp.StatusCode, string(b)})
		r.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// answered reports whether a call from timer name reached path and was
// answered 200 with a body containing want.
func (r *callRecorder) answered(name, path, want string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if c.timer == name && c.path == path && c.status == 200 && strings.Contains(c.body, want) {
			return nil
		}
	}
	return fmt.Errorf("calls so far: %+v", r.calls)
}
