package router

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/store/boltstore"
)

// fakeExecutor stands in for the real executor (written separately) so
// these tests isolate the router: each function is served by an
// in-process handler, and tests can make Acquire fail or report a cold
// start. It records every lease's Release outcome.
type fakeExecutor struct {
	mu       sync.Mutex
	handlers map[string]http.Handler // "ns/name"
	failures map[string]error
	cold     map[string]bool
	released []error
}

func newFakeExecutor() *fakeExecutor {
	return &fakeExecutor{handlers: map[string]http.Handler{}, failures: map[string]error{}, cold: map[string]bool{}}
}

func (f *fakeExecutor) handle(ns, name string, h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[ns+"/"+name] = h
}

func (f *fakeExecutor) fail(ns, name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures[ns+"/"+name] = err
}

func (f *fakeExecutor) setCold(ns, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cold[ns+"/"+name] = true
}

func (f *fakeExecutor) releases() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.released...)
}

func (f *fakeExecutor) Acquire(ctx context.Context, fn *v1.Function) (executor.Lease, error) {
	k := fn.Namespace + "/" + fn.Name
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failures[k]; err != nil {
		return nil, err
	}
	h := f.handlers[k]
	if h == nil {
		h = echoHandler(fn.Name)
	}
	cold := f.cold[k]
	f.cold[k] = false // only the first request after setCold is cold
	return &fakeLease{Handler: h, cold: cold, f: f}, nil
}

type fakeLease struct {
	http.Handler
	cold bool
	f    *fakeExecutor
}

func (l *fakeLease) Release(err error) {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	l.f.released = append(l.f.released, err)
}

func (l *fakeLease) ColdStart() bool { return l.cold }

// echo is what echoHandler answers: what the function saw.
type echo struct {
	Fn, Method, Path, Query, Body string
	Header                        http.Header
}

func echoHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echo{Fn: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(b), Header: r.Header})
	})
}

// testEnv is a router on a real bbolt store, served on loopback.
type testEnv struct {
	t    *testing.T
	st   *boltstore.Store
	exec *fakeExecutor
	rt   *Router
	srv  *httptest.Server
}

func newTestEnv(t *testing.T, mutate ...func(*Config)) *testEnv {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	exec := newFakeExecutor()
	cfg := Config{Store: st, Executor: exec, Registry: prometheus.NewRegistry(), Version: "test", Rand: rand.New(rand.NewPCG(1, 2))}
	for _, m := range mutate {
		m(&cfg)
	}
	rt := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rt.Run(ctx) }()
	srv := httptest.NewServer(rt)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		st.Close()
	})
	e := &testEnv{t: t, st: st, exec: exec, rt: rt, srv: srv}
	e.poll("router synced", rt.Synced)
	return e
}

// poll waits up to 10 s for cond.
func (e *testEnv) poll(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *testEnv) create(obj v1.Object) v1.Object {
	e.t.Helper()
	out, err := e.st.Create(context.Background(), obj)
	if err != nil {
		e.t.Fatalf("create %s %s: %v", v1.KindOf(obj), obj.GetName(), err)
	}
	return out
}

func function(ns, name string) *v1.Function {
	return &v1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Name: "go", Namespace: ns},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Name: name + "-pkg", Namespace: ns}, FunctionName: "Handler"},
			InvokeStrategy: v1.InvokeStrategy{
				StrategyType:      v1.StrategyTypeExecution,
				ExecutionStrategy: v1.ExecutionStrategy{ExecutorType: "poolmgr", MaxScale: 1},
			},
		},
	}
}

func trigger(ns, name string, spec v1.HTTPTriggerSpec) *v1.HTTPTrigger {
	if spec.FunctionReference.Type == "" {
		spec.FunctionReference.Type = v1.FunctionReferenceTypeFunctionName
	}
	return &v1.HTTPTrigger{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
}

func ref(fn string) v1.FunctionReference {
	return v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: fn}
}

func strPtr(s string) *string { return &s }

// do sends a request to the router and returns the status and body.
func (e *testEnv) do(method, path string, hdr ...string) (int, string, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// echoOf requests path and decodes the echo, failing unless it is 200.
func (e *testEnv) echoOf(method, path string, hdr ...string) echo {
	e.t.Helper()
	code, body, _ := e.do(method, path, hdr...)
	if code != http.StatusOK {
		e.t.Fatalf("%s %s: status %d, body %q", method, path, code, body)
	}
	var ec echo
	if err := json.Unmarshal([]byte(body), &ec); err != nil {
		e.t.Fatalf("%s %s: body %q: %v", method, path, body, err)
	}
	return ec
}

// waitStatus polls until method path answers code.
func (e *testEnv) waitStatus(method, path string, code int, hdr ...string) {
	e.t.Helper()
	e.poll(method+" "+path+" → "+http.StatusText(code), func() bool {
		c, _, _ := e.do(method, path, hdr...)
		return c == code
	})
}

// waitFunctions polls until the route table knows every function
// ("ns/name"): functions and triggers arrive through separate watches, so
// a route answering is no proof that a function created next to it is in.
func (e *testEnv) waitFunctions(keys ...string) {
	e.t.Helper()
	e.poll("functions "+strings.Join(keys, ", ")+" in the route table", func() bool {
		t := e.rt.table.Load()
		for _, k := range keys {
			ns, name, _ := strings.Cut(k, "/")
			if t.functions[key{ns, name}] == nil {
				return false
			}
		}
		return true
	})
}
