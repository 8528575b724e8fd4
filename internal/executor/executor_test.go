package executor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

type fixture struct {
	t       *testing.T
	st      *boltstore.Store
	m       *Manager
	reg     *prometheus.Registry
	logs    *fnlog.Store
	speclog string // one line per specialization: "<pid> <entrypoint>"
	env     *v1.Environment
}

func newFixture(t *testing.T, tweak func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "store.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, reg: prometheus.NewRegistry(), logs: fnlog.New(fnlog.Limits{}), speclog: filepath.Join(dir, "specialized.log")}
	cfg := Config{Store: st, Fetcher: &fetcher.InProcess{Packages: st}, WorkDir: filepath.Join(dir, "work"), Logs: f.logs, Registry: f.reg, ReapInterval: time.Hour}
	if tweak != nil {
		tweak(&cfg)
	}
	f.m, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.m.Close()
		st.Close()
	})
	env := proctest.Environment(t, "default", "testenv", 3, map[string]string{"SPECIALIZE_LOG": f.speclog})
	f.env = f.create(env).(*v1.Environment)
	return f
}

func (f *fixture) create(obj v1.Object) v1.Object {
	f.t.Helper()
	out, err := f.st.Create(context.Background(), obj)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) pkg(name, content string, status v1.BuildStatus) *v1.Package {
	return f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: f.env.Name},
			Deployment:  v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: []byte(content)},
		},
		Status: v1.PackageStatus{BuildStatus: status},
	}).(*v1.Package)
}

func (f *fixture) fn(name, pkg string, tweak func(*v1.FunctionSpec)) *v1.Function {
	fn := &v1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: f.env.Name},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Namespace: "default", Name: pkg}, FunctionName: name},
		},
	}
	if tweak != nil {
		tweak(&fn.Spec)
	}
	return f.create(fn).(*v1.Function)
}

// instances counts fn's specialized instances.
func (f *fixture) instances(fn *v1.Function) int {
	f.m.mu.Lock()
	p := f.m.pools[poolID(fn)]
	f.m.mu.Unlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.insts)
}

// specializations counts the env server's specialize log lines.
func (f *fixture) specializations() int {
	b, _ := os.ReadFile(f.speclog)
	return strings.Count(string(b), "\n")
}

// call serves one request through a lease and returns the body.
func call(t *testing.T, l Lease, query string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest("GET", "/"+query, nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func pidOf(t *testing.T, l Lease) int {
	t.Helper()
	pid, err := strconv.Atoi(call(t, l, "?pid"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitForWithin(t, 15*time.Second, what, cond)
}

// compileWait bounds waits that include compiling a Go guest: under the
// race detector on a loaded machine with a cold compile cache that takes
// minutes.
const compileWait = 5 * time.Minute

func waitForWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBurstOfColdRequestsSpecializesOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.pkg("p", "burst code", v1.BuildStatusSucceeded)
	fn := f.fn("burst", "p", func(s *v1.FunctionSpec) { s.RequestsPerPod = 50 })

	var wg sync.WaitGroup
	leases := make(chan Lease, 50)
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := f.m.Acquire(context.Background(), fn)
			if err != nil {
				errs <- err
				return
			}
			leases <- l
		}()
	}
	wg.Wait()
	close(errs)
	close(leases)
	for err := range errs {
		t.Fatal(err)
	}
	cold := 0
	for l := range leases {
		if got := call(t, l, ""); got != "burst code" {
			t.Fatalf("body %q", got)
		}
		if l.ColdStart() {
			cold++
		}
		l.Release(nil)
	}
	if n := f.specializations(); n != 1 {
		t.Fatalf("%d specializations for a burst of 50, want 1", n)
	}
	if cold == 0 {
		t.Fatal("no lease reported a cold start")
	}
	if got := counterValue(f.m.metrics.specializations.WithLabelValues("poolmgr", "process", "success")); got != 1 {
		t.Fatalf("specializations metric = %v", got)
	}
	// Warm now.
	l, err := f.m.Acquire(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	if l.ColdStart() {
		t.Fatal("warm request reported a cold start")
	}
	l.Release(nil)
}

func TestConcurrencyLimitQueuesThenAnswers429(t *testing.T) {
	f := newFixture(t, nil)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	fn := f.fn("limited", "p", func(s *v1.FunctionSpec) { s.Concurrency = 1; s.RequestsPerPod = 1 })
	ctx := context.Background()
	first, err := f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan Lease)
	go func() {
		l, err := f.m.Acquire(ctx, fn)
		if err != nil {
			t.Error(err)
		}
		queued <- l
	}()
	p, _ := f.m.poolFor(fn)
	waitFor(t, "the second request to queue", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.waiters) == 1
	})
	_, err = f.m.Acquire(ctx, fn)
	if CodeOf(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), "concurrency limit") {
		t.Fatalf("third request: %v (code %d), want 429", err, CodeOf(err))
	}
	pid := pidOf(t, first)
	first.Release(nil)
	second := <-queued
	if got := pidOf(t, second); got != pid {
		t.Fatalf("queued request served by pid %d, want the one instance %d", got, pid)
	}
	second.Release(nil)
	// A request that gives up while queued is removed from the queue.
	hold, _ := f.m.Acquire(ctx, fn)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := f.m.Acquire(cctx, fn); !errors.Is(err, context.DeadlineExceeded) || CodeOf(err) != http.StatusGatewayTimeout {
		t.Fatalf("queued request past its deadline: %v", err)
	}
	hold.Release(nil)
	if got := counterValue(f.m.metrics.rejections.WithLabelValues("poolmgr")); got != 1 {
		t.Fatalf("rejections metric = %v", got)
	}
}

func TestRequestsPerPodSpreadsOverInstances(t *testing.T) {
	f := newFixture(t, nil)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	fn := f.fn("rpp", "p", func(s *v1.FunctionSpec) { s.Concurrency = 3; s.RequestsPerPod = 2 })
	ctx := context.Background()
	perPid := map[int]int{}
	var held []Lease
	for range 6 {
		l, err := f.m.Acquire(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		perPid[pidOf(t, l)]++
		held = append(held, l)
	}
	if len(perPid) != 3 {
		t.Fatalf("6 held requests with requestsPerPod 2 used %d instances, want 3: %v", len(perPid), perPid)
	}
	for pid, n := range perPid {
		if n != 2 {
			t.Fatalf("instance %d holds %d requests, want 2", pid, n)
		}
	}
	for _, l := range held {
		l.Release(nil)
	}
}

func TestOnceOnlyUsesAFreshInstancePerRequest(t *testing.T) {
	f := newFixture(t, nil)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	fn := f.fn("once", "p", func(s *v1.FunctionSpec) { s.OnceOnly = true })
	ctx := context.Background()
	seen := map[int]bool{}
	for range 3 {
		l, err := f.m.Acquire(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		pid := pidOf(t, l)
		if seen[pid] {
			t.Fatalf("instance %d served twice", pid)
		}
		seen[pid] = true
		l.Release(nil)
		waitFor(t, "the used instance to stop", func() bool { return proctest.ProcessGone(pid) })
	}
}

func TestIdleInstancesAreReapedExceptRetained(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ReapInterval = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	one := 1
	idle := f.fn("idle", "p", func(s *v1.FunctionSpec) { s.IdleTimeout = &one })
	kept := f.fn("kept", "p", func(s *v1.FunctionSpec) { s.IdleTimeout = &one; s.RetainPods = 1 })

	l, err := f.m.Acquire(ctx, idle)
	if err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, l)
	l.Release(nil)
	waitFor(t, "the idle instance to be reaped", func() bool { return proctest.ProcessGone(pid) })

	l, err = f.m.Acquire(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	keptPid := pidOf(t, l)
	l.Release(nil)
	f.m.reap(time.Now().Add(time.Hour))
	if proctest.ProcessGone(keptPid) {
		t.Fatal("retainPods 1 instance was reaped")
	}
	// A busy instance is never reaped.
	l, _ = f.m.Acquire(ctx, idle)
	busy := pidOf(t, l)
	f.m.reap(time.Now().Add(time.Hour))
	if got := pidOf(t, l); got != busy {
		t.Fatal("busy instance replaced")
	}
	l.Release(nil)
}

func TestNewPackageVersionIsServedByNewInstances(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	pkg := f.pkg("p", "old code", v1.BuildStatusSucceeded)
	fn := f.fn("upd", "p", nil)
	l, err := f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	if got := call(t, l, ""); got != "old code" {
		t.Fatal(got)
	}
	oldPid := pidOf(t, l)
	l.Release(nil)

	pkg.Spec.Deployment.Literal = []byte("new code")
	pkg, err = update(ctx, f.st, pkg)
	if err != nil {
		t.Fatal(err)
	}
	fn.Spec.Package.PackageRef.ResourceVersion = pkg.ResourceVersion
	fn2, err := update(ctx, f.st, fn)
	if err != nil {
		t.Fatal(err)
	}
	l, err = f.m.Acquire(ctx, fn2)
	if err != nil {
		t.Fatal(err)
	}
	if got := call(t, l, ""); got != "new code" {
		t.Fatalf("after the package changed: %q", got)
	}
	l.Release(nil)
	waitFor(t, "the old instance to stop", func() bool { return proctest.ProcessGone(oldPid) })
	// A stale copy of the function is served by the current instances.
	l, err = f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	if got := call(t, l, ""); got != "new code" {
		t.Fatalf("stale function copy: %q", got)
	}
	l.Release(nil)
}

func TestNewdeployCreatesEagerlyAndScalesToMin(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	f.pkg("p", "nd code", v1.BuildStatusSucceeded)
	nd := func(min, max int) func(*v1.FunctionSpec) {
		return func(s *v1.FunctionSpec) {
			s.InvokeStrategy.ExecutionStrategy = v1.ExecutionStrategy{ExecutorType: v1.ExecutorTypeNewdeploy, MinScale: min, MaxScale: max}
		}
	}
	fn := f.fn("nd", "p", nd(1, 2))
	waitFor(t, "the newdeploy instance to be created before any request", func() bool { return f.instances(fn) == 1 })
	l, err := f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	if l.ColdStart() || call(t, l, "") != "nd code" {
		t.Fatal("eagerly created instance did not serve warm")
	}
	// A second concurrent request scales out to MaxScale 2 but is served
	// at once by the existing instance.
	l2, err := f.m.Acquire(ctx, fn)
	if err != nil {
		t.Fatal(err)
	}
	if l2.ColdStart() {
		t.Fatal("newdeploy request waited for scale-out")
	}
	waitFor(t, "scale-out to MaxScale", func() bool { return f.instances(fn) == 2 })
	l.Release(nil)
	l2.Release(nil)
	f.m.reap(time.Now().Add(time.Hour))
	p, _ := f.m.poolFor(fn)
	p.mu.Lock()
	n := len(p.insts)
	p.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d instances after idle reaping, want MinScale 1", n)
	}

	zero := f.fn("ndzero", "p", nd(0, 1))
	waitFor(t, "initial instance of a MinScale 0 function", func() bool { return f.instances(zero) == 1 })
	p0, _ := f.m.poolFor(zero)
	f.m.reap(time.Now().Add(time.Hour))
	p0.mu.Lock()
	n = len(p0.insts)
	p0.mu.Unlock()
	if n != 0 {
		t.Fatalf("MinScale 0 function kept %d instances when idle", n)
	}
	// Deleting the function stops its instances.
	if err := f.st.Delete(ctx, v1.KindFunction, "default", "nd", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted function's instances to stop", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.retired && len(p.insts) == 0
	})
}

func TestErrorsNameWhatIsWrong(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	// First builds: no deployment archive yet (one with an archive is
	// served from it; see TestRebuildServesTheLastGoodBuild).
	f.pkg("pending", "", v1.BuildStatusPending)
	f.pkg("failed", "", v1.BuildStatusFailed)
	cases := []struct {
		fn   *v1.Function
		code int
		want string
	}{
		{f.fn("nopkg", "missing", nil), 404, "package default/missing"},
		{f.fn("notready", "pending", nil), 503, `"pending" (its first build)`},
		{f.fn("broken", "failed", nil), 503, "build failed and it has no earlier successful build"},
	}
	noenv := f.fn("noenv", "pending", nil)
	noenv.Spec.Environment.Name = "nosuchenv"
	cases = append(cases, struct {
		fn   *v1.Function
		code int
		want string
	}{noenv, 404, "environment default/nosuchenv"})
	for _, c := range cases {
		_, err := f.m.Acquire(ctx, c.fn)
		if CodeOf(err) != c.code || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (code %d), want %d mentioning %s", c.fn.Name, err, CodeOf(err), c.code, c.want)
		}
	}

	img := f.create(&v1.Environment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "python"},
		Spec:       v1.EnvironmentSpec{Version: 3, Runtime: v1.Runtime{Image: "fission/python-env:latest"}},
	}).(*v1.Environment)
	f.pkg("pp", "x", v1.BuildStatusSucceeded)
	py := f.fn("py", "pp", func(s *v1.FunctionSpec) { s.Environment.Name = img.Name })
	_, err := f.m.Acquire(ctx, py)
	if c := CodeOf(err); c < 500 || err == nil || !strings.Contains(err.Error(), "--runtime-command") {
		t.Fatalf("env without command: %v (code %d)", err, c)
	}
}

func TestCloseStopsEveryProcess(t *testing.T) {
	f := newFixture(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	fn := f.fn("a", "p", func(s *v1.FunctionSpec) { s.RequestsPerPod = 1 })
	var pids []int
	var held []Lease
	for range 2 {
		l, err := f.m.Acquire(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pidOf(t, l))
		held = append(held, l)
	}
	// The environment's warm pool refills after each take.
	var generic []int
	waitFor(t, "a warm generic instance", func() bool {
		f.m.mu.Lock()
		e := f.m.envs[string(f.env.UID)]
		f.m.mu.Unlock()
		if e == nil {
			return false
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		generic = generic[:0]
		for _, ins := range e.idle {
			generic = append(generic, ins.(interface{ PID() int }).PID())
		}
		return len(generic) == 1
	})
	pids = append(pids, generic...)
	f.m.Close() // with two requests still holding instances
	for _, pid := range pids {
		if !proctest.ProcessGone(pid) {
			t.Fatalf("process %d survived Close", pid)
		}
	}
	if _, err := f.m.Acquire(ctx, fn); CodeOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("Acquire after Close: %v", err)
	}
	for _, l := range held {
		l.Release(nil)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.m.cfg.WorkDir, "instances")); len(entries) != 0 {
		t.Fatalf("instance directories left: %d", len(entries))
	}
}

func TestFunctionOutputReachesTheLog(t *testing.T) {
	f := newFixture(t, nil)
	f.pkg("p", "x", v1.BuildStatusSucceeded)
	fn := f.fn("loud", "p", nil)
	l, err := f.m.Acquire(context.Background(), fn)
	if err != nil {
		t.Fatal(err)
	}
	call(t, l, "?stderr=hello+log")
	l.Release(nil)
	waitFor(t, "the stderr line", func() bool {
		for _, ln := range f.logs.Tail("default", "loud", 0) {
			if ln.Stream == "stderr" && ln.Text == "hello log" {
				return true
			}
		}
		return false
	})
}

func TestIsWasmEnvImage(t *testing.T) {
	for img, want := range map[string]bool{
		"isotope/wasm-env":                   true,
		"isotope/wasm-env:latest":            true,
		"ghcr.io/acme/isotope/wasm-env:1.2":  true,
		"localhost:5000/isotope/wasm-env":    true,
		"localhost:5000/isotope/wasm-env:v1": true,
		"isotope/wasm-env@sha256:0123":       true,
		"isotope/wasm-envx":                  false,
		"myisotope/wasm-env":                 false,
		"fission/go-env":                     false,
		"isotope/go-wasm-builder":            false,
		"isotope/wasm-env/extra:1":           false,
		"":                                   false,
	} {
		if got := IsWasmEnvImage(img); got != want {
			t.Errorf("IsWasmEnvImage(%q) = %v", img, got)
		}
	}
}

func update[T v1.Object](ctx context.Context, st store.Store, obj T) (T, error) {
	out, err := st.Update(ctx, obj)
	if err != nil {
		var zero T
		return zero, err
	}
	return out.(T), nil
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}
