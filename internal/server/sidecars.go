package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/auth/webguard"
	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/tracing"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasmenv"
)

// The roles below are the programs of Fission's pods that Isotope also
// ships: the storage service, a fetcher, a builder and the wasm-env
// runtime. Each Run* assembles one from its options and serves it until
// ctx ends; the CLI only parses their flags.

// StoragesvcOptions configures RunStoragesvc.
type StoragesvcOptions struct {
	Addr, Dir, IDPrefix, Token string
	MaxSize                    int64
	// PruneInterval > 0 runs the pruner, which deletes archives older
	// than PruneGrace that no Package references; Refs opens its view of
	// the Packages and is called only then.
	PruneInterval, PruneGrace time.Duration
	Refs                      func() (storagesvc.RefsFunc, error)
	Logger                    *slog.Logger
}

// RunStoragesvc serves Fission's /v1/archive API over a local directory.
func RunStoragesvc(ctx context.Context, o StoragesvcOptions) error {
	log := o.Logger
	backend, err := storagesvc.NewLocalBackend(o.Dir, storagesvc.LocalOptions{IDPrefix: o.IDPrefix})
	if err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	defer backend.Close()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	// Cross-origin uploads (multipart needs no CORS preflight) are
	// refused; Host is not checked, since clients reach the role by
	// Service names.
	var guard webguard.Guard
	h := guard.OriginHandler(VerifyInternal(log, hmac.ServiceStoragesvc,
		storagesvc.NewServer(backend, storagesvc.Options{MaxSize: o.MaxSize, Token: o.Token, Logger: log}),
		hmac.VerifierOptions{MaxBody: o.MaxSize + 1<<20})) // + multipart framing
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.PruneInterval > 0 {
		refs, err := o.Refs()
		if err != nil {
			ln.Close()
			return err
		}
		p := storagesvc.NewPruner(backend, refs, storagesvc.PrunerOptions{
			Interval: o.PruneInterval, Grace: o.PruneGrace, Logger: log,
		})
		go p.Run(ctx)
	}
	stop, err := StartTracing(ctx, log, "storagesvc")
	if err != nil {
		ln.Close()
		return err
	}
	defer stop()
	log.Info("storage service listening", "addr", ln.Addr().String(), "dir", backend.Dir(),
		"maxSize", o.MaxSize, "pruneInterval", o.PruneInterval, "pruneGrace", o.PruneGrace)
	return ServeHTTP(ctx, ln, h, func() { log.Info("storage service shutting down") })
}

// FetcherOptions configures RunFetcher.
type FetcherOptions struct {
	Addr                                        string
	SharedDir, SecretDir, ConfigDir, RuntimeURL string
	StorageToken                                string
	Packages                                    store.Store
	// SpecializeOnStartup, when set, specializes the runtime at
	// RuntimeURL at start (newdeploy); a failure ends the role.
	SpecializeOnStartup *fetcher.FunctionSpecializeRequest
	Logger              *slog.Logger
}

// RunFetcher serves Fission's fetcher API over a shared directory.
func RunFetcher(ctx context.Context, o FetcherOptions) error {
	var secrets fetcher.SecretSource
	if o.Packages != nil {
		secrets = storeConfig{o.Packages}
	}
	f := fetcher.New(fetcher.Config{
		SharedDir: o.SharedDir, SecretDir: o.SecretDir, ConfigDir: o.ConfigDir,
		Packages: o.Packages, Secrets: secrets, StorageToken: o.StorageToken,
		RuntimeURL: o.RuntimeURL, Logger: o.Logger,
		HTTPClient: &http.Client{Transport: fetcherTransport(o.RuntimeURL)},
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	if o.SpecializeOnStartup != nil {
		go func() {
			if err := f.SpecializeOnStartup(ctx, *o.SpecializeOnStartup); err != nil {
				errc <- fmt.Errorf("specialize on startup: %w", err)
				cancel()
			}
		}()
	}
	err := ServeRole(ctx, o.Logger, "fetcher", o.Addr, f.Handler(), "sharedDir", o.SharedDir)
	select {
	case serr := <-errc:
		return serr
	default:
	}
	return err
}

// storeConfig is the fetcher's source of secrets and config maps: the
// store it reads Packages from. On Kubernetes that is the pod's
// ServiceAccount reading the core/v1 objects of the function's
// namespace, as Fission's fetcher does (decision 0021).
type storeConfig struct{ s store.Store }

func (c storeConfig) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	sec, err := store.GetAs[*v1.Secret](ctx, c.s, ns, name)
	if err != nil {
		return nil, err
	}
	return sec.Data, nil
}

func (c storeConfig) ConfigMap(ctx context.Context, ns, name string) (map[string]string, error) {
	cm, err := store.GetAs[*v1.ConfigMap](ctx, c.s, ns, name)
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

// fetcherTransport signs the fetcher's outgoing calls when internal auth
// is on: archive downloads from a storage service (/v1/archive) with the
// storagesvc key, specialize calls to the co-located runtime with the
// runtime key. Other requests (archives at third-party URLs) go unsigned.
func fetcherTransport(runtimeURL string) http.RoundTripper {
	secrets := hmac.SecretsFromEnv()
	if !secrets.Enabled() {
		return http.DefaultTransport
	}
	storage := hmac.NewSigner(secrets, hmac.ServiceStoragesvc, nil)
	storage.Match = func(r *http.Request) bool { return r.URL.Path == storagesvc.ArchivePath }
	runtime := hmac.NewSigner(secrets, hmac.ServiceRuntime, storage)
	rt, _ := url.Parse(runtimeURL)
	runtime.Match = func(r *http.Request) bool { return rt != nil && r.URL.Host == rt.Host }
	return runtime
}

// runtimeControlPaths are the paths of an environment runtime that the
// fetcher calls; function traffic on the other paths is not signed.
func runtimeControlPaths(r *http.Request) bool {
	return r.URL.Path == "/specialize" || r.URL.Path == "/v2/specialize"
}

// BuilderOptions configures RunBuilder.
type BuilderOptions struct {
	Addr, SharedDir string
	Timeout         time.Duration
	MaxLogBytes     int
	// BuildLog receives every build's output as it runs.
	BuildLog io.Writer
	Logger   *slog.Logger
}

// RunBuilder serves Fission's build API over a directory shared with a
// fetcher.
func RunBuilder(ctx context.Context, o BuilderOptions) error {
	b := builder.New(builder.Config{SharedDir: o.SharedDir, Timeout: o.Timeout, MaxLogBytes: o.MaxLogBytes, Log: o.BuildLog})
	return ServeRole(ctx, o.Logger, "builder", o.Addr, b.Handler(), "sharedDir", o.SharedDir)
}

// WasmEnvOptions configures RunWasmEnv.
type WasmEnvOptions struct {
	Addr, UserfuncDir, CacheDir string
	Env                         map[string]string
	Mounts                      map[string]string
	Limits                      wasm.Limits
	// GuestLog receives the guests' stderr; Logger the role's own lines.
	GuestLog io.Writer
	Logger   *slog.Logger
}

// RunWasmEnv serves the WebAssembly environment runtime (Fission's
// runtime protocol).
func RunWasmEnv(ctx context.Context, o WasmEnvOptions) error {
	TuneGC()
	rt, err := wasm.NewRuntime(ctx, wasm.Config{CacheDir: o.CacheDir})
	if err != nil {
		return err
	}
	defer rt.Close(context.Background())
	srv := wasmenv.New(wasmenv.Config{Runtime: rt, UserfuncDir: o.UserfuncDir, Limits: o.Limits, Env: o.Env, Log: o.GuestLog, Mounts: o.Mounts})
	defer srv.Close()
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return err
	}
	o.Logger.Info("wasm-env listening", "addr", ln.Addr().String())
	h := VerifyInternal(o.Logger, hmac.ServiceRuntime, srv, hmac.VerifierOptions{Protect: runtimeControlPaths})
	stop, err := StartTracing(ctx, o.Logger, "wasm-env")
	if err != nil {
		ln.Close()
		return err
	}
	defer stop()
	h = tracing.Handler(h, "/specialize", "/v2/specialize")
	return ServeHTTP(ctx, ln, h, nil)
}
