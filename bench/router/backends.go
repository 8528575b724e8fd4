package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/gowasm"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// A backend is what serves the benchmark's functions behind the router.
// The router, the store and the load are the same for every backend, so
// backends compare directly with each other and with plain net/http.
type backend struct {
	about string
	// archive returns the deploy archive of the backend's functions and
	// their entrypoint; nil archive means the functions are served by
	// the in-process handler executor and need no package.
	archive func(h *harness) (*v1.Archive, string, error)
	// fresh returns a deploy archive with the same code but bytes (so a
	// checksum) of its own, made from nonce: a package the executor has
	// never seen.
	fresh func(h *harness, nonce string) (*v1.Archive, error)
	// available, when set, says whether this machine can run the
	// backend (a toolchain it builds with); an error skips it.
	available func() error
}

var backends = map[string]backend{
	"handler": {
		about: "an in-process Go hello handler as the lease: the router's own cost",
	},
	"wasm-reactor": {
		about: "examples/hello/hello.go built by the go-wasm builder (SDK reactor), real executor + wazero, deploy archive in the storage service",
		archive: func(h *harness) (*v1.Archive, string, error) {
			a, err := h.reactorArchive()
			return a, "Handler", err
		},
		fresh: func(h *harness, nonce string) (*v1.Archive, error) { return h.uploadReactor(nonce) },
	},
	"wasm-wagi": {
		about: "a small hand-assembled WAGI module (literal archive), real executor + wazero, a fresh instance per request",
		archive: func(*harness) (*v1.Archive, string, error) {
			return &v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: wasmtest.WAGIHello()}, "", nil
		},
		fresh: func(_ *harness, nonce string) (*v1.Archive, error) {
			// A custom section (ignored by the runtime) makes the bytes
			// differ: a module compiled on the spot.
			mod := wasmtest.WAGIHello()
			payload := append([]byte{5}, "nonce"...)
			payload = append(payload, nonce...)
			mod = append(mod, 0, byte(len(payload)))
			return &v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: append(mod, payload...)}, nil
		},
	},
}

func backendNames() string {
	names := make([]string, 0, len(backends))
	for n, b := range backends {
		names = append(names, fmt.Sprintf("%s (%s)", n, b.about))
	}
	sort.Strings(names)
	return strings.Join(names, "; ")
}

// helloHandler is the plain net/http baseline and the handler backend: the
// same code as examples/hello/hello.go, compiled natively.
func helloHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "Hello, %s! (from WebAssembly, %s %s)\n", name, r.Method, r.URL.Path)
	})
}

// handlerEnv is the environment name of the handler backend's functions.
const handlerEnv = "handler"

// wasmEnv is the wasm-env environment of the real executor's functions.
const wasmEnv = "wasm"

// harness holds what the backends share: the store, the real executor
// (in-process WebAssembly runtime) and a storage service for archives
// too big to be literal.
type harness struct {
	ctx  context.Context
	dir  string
	st   store.Store
	exec *executor.Manager
	rt   *wasm.Runtime
	reg  *prometheus.Registry // the router's and the executor's metrics

	storage       *storagesvc.Client
	reactor       *v1.Archive             // built once
	reactorDeploy string                  // its deploy directory
	built         map[string]*builtModule // modules built from the examples (langs.go), by backend
	closeFuncs    []func()
}

// newHarness starts the real executor (as `isotope server` wires it: a
// wazero runtime with an on-disk compile cache, function logs, metrics)
// and a storage service on loopback, and stores the wasm-env environment.
func newHarness(ctx context.Context, dir string, st store.Store, reg *prometheus.Registry) (*harness, error) {
	h := &harness{ctx: ctx, dir: dir, st: st, reg: reg, built: map[string]*builtModule{}}
	quiet := slog.New(slog.DiscardHandler)

	backend, err := storagesvc.NewLocalBackend(filepath.Join(dir, "archives"), storagesvc.LocalOptions{})
	if err != nil {
		return nil, err
	}
	h.closeFuncs = append(h.closeFuncs, func() { backend.Close() })
	storageURL, closeStorage, err := serve(storagesvc.NewServer(backend, storagesvc.Options{Logger: quiet}))
	if err != nil {
		h.close()
		return nil, err
	}
	h.closeFuncs = append(h.closeFuncs, closeStorage)
	h.storage = storagesvc.NewClient(storageURL, "")

	h.rt, err = wasm.NewRuntime(ctx, wasm.Config{CacheDir: filepath.Join(dir, "cache", "wasm")})
	if err != nil {
		h.close()
		return nil, err
	}
	h.closeFuncs = append(h.closeFuncs, func() { h.rt.Close(context.Background()) })
	h.exec, err = executor.New(executor.Config{
		Store:    st,
		Wasm:     h.rt,
		Fetcher:  &fetcher.InProcess{Packages: st, StorageURL: storageURL, Logger: quiet},
		Logs:     fnlog.New(fnlog.Limits{}),
		WorkDir:  filepath.Join(dir, "functions"),
		Logger:   quiet,
		Registry: reg,
	})
	if err != nil {
		h.close()
		return nil, err
	}
	// Instances stop before the runtime closes.
	h.closeFuncs = append(h.closeFuncs, func() { h.exec.Close() })
	go h.exec.Run(ctx)

	_, err = st.Create(ctx, &v1.Environment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: wasmEnv},
		Spec:       v1.EnvironmentSpec{Version: 3, Runtime: v1.Runtime{Image: "isotope/wasm-env"}},
	})
	if err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	for i := len(h.closeFuncs) - 1; i >= 0; i-- {
		h.closeFuncs[i]()
	}
}

// executor returns the router's executor: the handler backend's functions
// get the in-process handler, every other function the real executor.
func (h *harness) executor() executor.Executor {
	return muxExecutor{handler: handlerExecutor{h: helloHandler()}, real: h.exec}
}

// reactorArchive builds examples/hello/hello.go with the go-wasm builder
// (the machine's GOCACHE and GOMODCACHE, so a rebuild takes seconds),
// uploads its deploy directory, zipped, to the storage service and
// returns the archive.
func (h *harness) reactorArchive() (*v1.Archive, error) {
	if h.reactor != nil {
		return h.reactor, nil
	}
	src := filepath.Join("examples", "hello", "hello.go")
	if _, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("the Go reactor's source (run from the repository root): %w", err)
	}
	deploy := filepath.Join(h.dir, "reactor-deploy")
	var log strings.Builder
	opts := gowasm.Options{GoCache: goEnv("GOCACHE"), ModCache: goEnv("GOMODCACHE")}
	if err := gowasm.Build(h.ctx, src, deploy, opts, &log); err != nil {
		return nil, fmt.Errorf("go-wasm build of %s: %v\n%s", src, err, log.String())
	}
	h.reactorDeploy = deploy
	a, err := h.uploadReactor("")
	if err != nil {
		return nil, err
	}
	h.reactor = a
	return a, nil
}

// uploadReactor zips the built reactor's deploy directory and uploads it
// (uploadDeploy).
func (h *harness) uploadReactor(nonce string) (*v1.Archive, error) {
	return h.uploadDeploy("go reactor", h.reactorDeploy, nonce)
}

// uploadDeploy zips a built deploy directory, as the builder's fetcher
// does (internal/archive), with a file "nonce" holding nonce unless it
// is empty, uploads it to the storage service and returns the archive.
// The deploy archive is the platform's, so a cold start pays for
// unpacking it.
func (h *harness) uploadDeploy(label, deploy, nonce string) (*v1.Archive, error) {
	dir := deploy
	if nonce != "" {
		dir = deploy + "-" + nonce
		if err := os.CopyFS(dir, os.DirFS(deploy)); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := os.WriteFile(filepath.Join(dir, "nonce"), []byte(nonce), 0o644); err != nil {
			return nil, err
		}
	}
	zipPath := dir + ".zip"
	if err := archive.WriteFile(zipPath, dir); err != nil {
		return nil, err
	}
	defer os.Remove(zipPath)
	f, err := os.Open(zipPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	res, err := h.storage.Upload(h.ctx, f, st.Size(), "deploy.zip", nil)
	if err != nil {
		return nil, fmt.Errorf("upload the %s to the storage service: %w", label, err)
	}
	fmt.Fprintf(os.Stderr, "%s: deploy archive %d bytes, archive %s\n", label, st.Size(), res.ID)
	return &v1.Archive{Type: v1.ArchiveTypeURL, URL: res.URL, Checksum: res.Checksum}, nil
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// addFunction stores a function of backend b named name (with its own
// package for the real executor) and an HTTPTrigger on path.
func (h *harness) addFunction(b backend, name, path string, tweak func(*v1.FunctionSpec)) (*v1.Function, error) {
	f, err := h.newFunction(b, name)
	if err != nil {
		return nil, err
	}
	if tweak != nil {
		tweak(&f.Spec)
	}
	obj, err := h.st.Create(h.ctx, f)
	if err != nil {
		return nil, err
	}
	if path != "" {
		if err := h.addRoute(name+"-route", name, path); err != nil {
			return nil, err
		}
	}
	return obj.(*v1.Function), nil
}

// newFunction stores the package of a function of backend b named name
// (none for the handler backend) and returns the function, unstored.
func (h *harness) newFunction(b backend, name string) (*v1.Function, error) {
	return h.newFunctionOf(b, name, "")
}

// newFunctionOf is newFunction with, unless nonce is "", a deploy
// archive of its own (backend.fresh).
func (h *harness) newFunctionOf(b backend, name, nonce string) (*v1.Function, error) {
	env := handlerEnv
	entry := "Handler"
	if b.archive != nil {
		archive, ep, err := b.archive(h)
		if err != nil {
			return nil, err
		}
		if nonce != "" {
			if archive, err = b.fresh(h, nonce); err != nil {
				return nil, err
			}
		}
		env, entry = wasmEnv, ep
		pkg := &v1.Package{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "-pkg"},
			Spec: v1.PackageSpec{
				Environment: v1.EnvironmentReference{Namespace: "default", Name: wasmEnv},
				Deployment:  *archive,
			},
			Status: v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
		}
		if _, err := h.st.Create(h.ctx, pkg); err != nil {
			return nil, err
		}
	}
	return &v1.Function{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: env},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Namespace: "default", Name: name + "-pkg"}, FunctionName: entry},
		},
	}, nil
}

// addRoute stores an HTTPTrigger for GET path to function fn.
func (h *harness) addRoute(name, fn, path string) error {
	t := &v1.HTTPTrigger{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.HTTPTriggerSpec{RelativeURL: path, Methods: []string{"GET"},
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: fn}},
	}
	_, err := h.st.Create(h.ctx, t)
	return err
}

// removeFunction deletes a function, its route and its package, so its
// instances are retired.
func (h *harness) removeFunction(name string) {
	h.st.Delete(h.ctx, v1.KindHTTPTrigger, "default", name+"-route", "")
	h.st.Delete(h.ctx, v1.KindFunction, "default", name, "")
	h.st.Delete(h.ctx, v1.KindPackage, "default", name+"-pkg", "")
}

// coldStarts reads the router's isotope_router_cold_starts_total for
// the functions of namespace default, by name.
func (h *harness) coldStarts() (map[string]float64, error) {
	mfs, err := h.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "isotope_router_cold_starts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == "default" {
				out[labels["function"]] += m.GetCounter().GetValue()
			}
		}
	}
	return out, nil
}

// muxExecutor dispatches on the function's environment.
type muxExecutor struct {
	handler executor.Executor
	real    executor.Executor
}

func (m muxExecutor) Acquire(ctx context.Context, fn *v1.Function) (executor.Lease, error) {
	if fn.Spec.Environment.Name == handlerEnv {
		return m.handler.Acquire(ctx, fn)
	}
	if m.real == nil {
		return nil, errors.New("no real executor")
	}
	return m.real.Acquire(ctx, fn)
}

// handlerExecutor leases one shared in-process handler: every request is
// warm, nothing is created, so the figure is the router's overhead.
type handlerExecutor struct{ h http.Handler }

func (e handlerExecutor) Acquire(context.Context, *v1.Function) (executor.Lease, error) {
	return handlerLease{e.h}, nil
}

type handlerLease struct{ http.Handler }

func (handlerLease) Release(error)   {}
func (handlerLease) ColdStart() bool { return false }
