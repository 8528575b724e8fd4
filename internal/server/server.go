// Package server is `isotope server`: every role in one process, over the
// embedded backends (a bbolt store, archives on the local disk, builders
// as supervised local processes, WebAssembly functions in-process).
//
// Listeners: the API (REST + watch, /v1/archive, /v1/logs,
// /v1/buildlogs, /healthz, /metrics) and the router. Port 0 picks a free
// port; the real addresses are logged and returned by Addrs.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/auth/routerauth"
	"isotope.dev/isotope/internal/auth/token"
	"isotope.dev/isotope/internal/auth/webguard"
	"isotope.dev/isotope/internal/buildermgr"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/netns"
	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
	"isotope.dev/isotope/internal/store/sealed"
)

// Config configures the embedded server.
type Config struct {
	// DataDir holds the store, archives, builder work dirs and caches.
	DataDir string
	// APIAddr and RouterAddr are listen addresses (port 0 = any free).
	APIAddr, RouterAddr string
	// Token, when set, is required as a bearer token on the API. When
	// empty and the API listens on a non-loopback address, the token in
	// <DataDir>/token is used, generated on first start (package token).
	Token string
	// RouterAuth, when set, turns on the router's login flow and requires
	// a bearer token on every router path (package routerauth). The API
	// token is accepted there too.
	RouterAuth *routerauth.Options
	// APIHosts are host names, besides loopback names and IP addresses,
	// that requests to the API and to the router's /metrics and /_version
	// may name in their Host header (--api-host); see package webguard.
	APIHosts []string
	// Stderr receives the one-time notice of a generated API token
	// (default os.Stderr).
	Stderr io.Writer
	// MaxArchiveSize caps one archive (default 256 MiB).
	MaxArchiveSize int64
	// PruneInterval and PruneGrace configure the archive pruner
	// (defaults 1h and 1h).
	PruneInterval, PruneGrace time.Duration
	// BuildParallel and BuildTimeout bound builds (defaults 2 and 10m).
	BuildParallel int
	BuildTimeout  time.Duration
	// BuilderReadyTimeout bounds the wait for a builder to answer
	// /healthz before a build fails (default 2m).
	BuilderReadyTimeout time.Duration
	// InstanceStartTimeout bounds the wait for a local runtime program to
	// accept connections (default 30s).
	InstanceStartTimeout time.Duration
	// InstanceNetwork is the default network of local runtime and builder
	// programs: netns.Auto (the default), netns.Isolated or netns.Host;
	// an Environment's isotope.dev/network annotation overrides it.
	InstanceNetwork netns.Mode
	// Limits bound the instances one object may ask for; zero fields
	// take store.DefaultMaxPoolSize and store.DefaultMaxScale.
	Limits store.Limits
	// GuestSlots and GuestQueue configure the WebAssembly guest
	// scheduler (wasm.Config; 0 takes its defaults).
	GuestSlots, GuestQueue int
	// Executable is the isotope binary builders run (default: this one).
	Executable string
	// ShutdownTimeout bounds the drain of in-flight requests (default 15s).
	ShutdownTimeout time.Duration
	// MQ configures message queue triggers and the embedded NATS server.
	MQ     MQOptions
	Logger *slog.Logger
}

// Server is a running embedded platform.
type Server struct {
	cfg      Config
	log      *slog.Logger
	apiLn    net.Listener
	routerLn net.Listener

	store *boltstore.Store
	// kv is the store every role reads and writes: the bbolt store with
	// secrets sealed (package sealed).
	kv       store.Store
	archives *storagesvc.LocalBackend
	builders *buildermgr.LocalBuilders
	roles    []role
	closers  []func()
	apiSrv   *http.Server
	routeSrv *http.Server

	routerAuth *routerauth.Auth
	guard      *webguard.Guard
	network    *netns.Policy
	// stopTracing flushes the spans still queued, after everything else
	// has stopped.
	stopTracing func()
	natsURL     string
}

// role is a background controller of the server.
type role struct {
	name string
	run  func(ctx context.Context) error
}

// Addrs are the real listen addresses.
type Addrs struct{ API, Router string }

// Addrs returns where the server listens.
func (s *Server) Addrs() Addrs {
	return Addrs{API: s.apiLn.Addr().String(), Router: s.routerLn.Addr().String()}
}

// New opens the data dir and the listeners and assembles every role. It
// fails, naming the cause, when the data dir is in use by another server
// or an address is taken.
func New(cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: the data dir is required")
	}
	guard, err := webguard.New(cfg.APIHosts)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, guard: guard}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()
	if s.stopTracing, err = StartTracing(context.Background(), s.log, ""); err != nil {
		return nil, err
	}
	for _, d := range []string{"", "archives", "builders", "cache"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
		}
	}
	if s.store, err = boltstore.Open(filepath.Join(cfg.DataDir, "isotope.db"), boltstore.Options{}); err != nil {
		return nil, fmt.Errorf("open the store in %s (is another isotope server using this data dir?): %w", cfg.DataDir, err)
	}
	keyPath := filepath.Join(cfg.DataDir, sealed.KeyFileName)
	key, _, err := sealed.LoadOrCreateKey(keyPath)
	if err != nil {
		return nil, err
	}
	if s.kv, err = sealed.New(s.store, key, keyPath); err != nil {
		return nil, err
	}
	if s.archives, err = storagesvc.NewLocalBackend(filepath.Join(cfg.DataDir, "archives"), storagesvc.LocalOptions{}); err != nil {
		return nil, fmt.Errorf("open the archive store: %w", err)
	}
	if s.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		return nil, fmt.Errorf("API listener (--api-addr %s): %w", cfg.APIAddr, err)
	}
	if s.routerLn, err = net.Listen("tcp", cfg.RouterAddr); err != nil {
		return nil, fmt.Errorf("router listener (--router-addr %s): %w", cfg.RouterAddr, err)
	}
	if err := s.resolveToken(s.apiLn.Addr().String()); err != nil {
		return nil, err
	}
	if err := s.assemble(); err != nil {
		return nil, err
	}
	return s, nil
}

// Token is the bearer token the API requires ("" when none).
func (s *Server) Token() string { return s.cfg.Token }

// resolveToken applies the API token rule to the address the API really
// listens on: a non-loopback API without an explicit token uses the data
// dir's token, generated (and announced once on Stderr) on first start.
func (s *Server) resolveToken(apiAddr string) error {
	if s.cfg.Token != "" || token.IsLoopback(apiAddr) {
		return nil
	}
	tok, created, err := token.LoadOrCreate(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.cfg.Token = tok
	path := filepath.Join(s.cfg.DataDir, token.FileName)
	if created {
		out := s.cfg.Stderr
		if out == nil {
			out = os.Stderr
		}
		fmt.Fprint(out, token.Notice(path, tok))
	} else {
		s.log.Info("the API listens on a non-loopback address: it requires the token in "+path, "api", apiAddr)
	}
	return nil
}

// setupNetwork makes the policy that gives local programs their network
// and says, once, what the default comes to on this machine.
func (s *Server) setupNetwork() error {
	mode := s.cfg.InstanceNetwork
	if mode == "" {
		mode = netns.Auto
	}
	if _, err := netns.ParseMode(string(mode), true); err != nil {
		return fmt.Errorf("--instance-network: %w", err)
	}
	s.network = &netns.Policy{Default: mode, Exe: s.cfg.Executable}
	if mode == netns.Host {
		return nil
	}
	if err := s.network.Available(); err != nil {
		if mode == netns.Isolated {
			return fmt.Errorf("--instance-network isolated: %w", err)
		}
		s.log.Warn("local runtime and builder programs run on the host network and must listen on $PORT: "+
			"programs with a fixed port (Fission's images) will not start", "reason", err)
		return nil
	}
	s.log.Info("local runtime and builder programs get their own network namespace (isotope.dev/network: host on an environment opts out)")
	return nil
}

// timerClient is the timer's client for the router: nil (a plain client)
// unless router auth is on, then one that sends router tokens.
func (s *Server) timerClient() *http.Client {
	if s.routerAuth == nil {
		return nil
	}
	return &http.Client{Transport: s.routerAuth.Transport(nil)}
}

// assemble wires every role over the embedded backends.
func (s *Server) assemble() error {
	cfg := s.cfg
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	apiURL := "http://" + s.apiLn.Addr().String()
	if cfg.RouterAuth != nil {
		o := *cfg.RouterAuth
		if cfg.Token != "" {
			o.StaticTokens = append(append([]string{}, o.StaticTokens...), cfg.Token)
		}
		if o.Logger == nil {
			o.Logger = s.log.With("role", "router-auth")
		}
		var err error
		if s.routerAuth, err = routerauth.New(o); err != nil {
			return err
		}
	}

	if cfg.Limits.MaxPoolSize <= 0 {
		cfg.Limits.MaxPoolSize = store.DefaultMaxPoolSize
	}
	if cfg.Limits.MaxScale <= 0 {
		cfg.Limits.MaxScale = store.DefaultMaxScale
	}
	s.cfg.Limits = cfg.Limits
	if err := s.setupNetwork(); err != nil {
		return err
	}
	api := apiserver.New(store.Limited(s.kv, cfg.Limits), apiserver.Options{Token: cfg.Token, Registry: reg, Logger: s.log.With("role", "api")})
	archives := storagesvc.NewServer(s.archives, storagesvc.Options{MaxSize: cfg.MaxArchiveSize, Token: cfg.Token, Logger: s.log.With("role", "storagesvc")})
	pruner := storagesvc.NewPruner(s.archives, storagesvc.RefsFromStore(s.store), storagesvc.PrunerOptions{
		Interval: cfg.PruneInterval, Grace: cfg.PruneGrace, Logger: s.log.With("role", "pruner"),
	})
	logs := fnlog.New(fnlog.Limits{})
	// The one fetcher of the process: builds and function instances
	// reach the storage service the same way, with the API's token.
	fetch := &fetcher.InProcess{
		Packages: s.store, StorageURL: apiURL, StorageToken: cfg.Token,
		Logger: s.log.With("role", "fetcher"),
	}

	var err error
	s.builders, err = buildermgr.NewLocalBuilders(buildermgr.LocalConfig{
		WorkDir:    filepath.Join(cfg.DataDir, "builders"),
		Executable: cfg.Executable,
		// Local builders are called unsigned over loopback: a server
		// started with an internal-auth secret must not pass it on.
		Env:     append([]string{"ISOTOPE_GO_CACHE=" + filepath.Join(cfg.DataDir, "cache", "go")}, hmac.DisableEnv()...),
		Fetcher: fetch,
		Output:  &prefixWriter{log: s.log.With("role", "builder")},
		Logger:  s.log,
		Network: s.network,
	})
	if err != nil {
		return err
	}
	bm := buildermgr.New(buildermgr.Config{
		Store: s.store, Builders: s.builders,
		Parallel: cfg.BuildParallel, BuildTimeout: cfg.BuildTimeout,
		BuilderReadyTimeout: cfg.BuilderReadyTimeout,
		Logger:              s.log,
	})

	mux := http.NewServeMux()
	mux.Handle("/v1/archive", archives)
	mux.Handle("/v1/logs", requireToken(cfg.Token, logs.Handler()))
	mux.Handle("/v1/buildlogs", requireToken(cfg.Token, bm.Handler()))
	mux.Handle("/", api)
	// Web pages may neither write cross-origin nor rebind a name to the
	// API (package webguard): it runs commands for whoever can write.
	s.apiSrv = &http.Server{Handler: s.guard.Handler(mux), ReadHeaderTimeout: 10 * time.Second}
	// Open watch streams would otherwise hold Shutdown until its timeout.
	s.apiSrv.RegisterOnShutdown(api.StopWatches)

	rtr, routerRoles, err := s.assembleServing(reg, logs, fetch)
	if err != nil {
		return err
	}
	if err := s.mountStatus(mux, rtr, logs.Handler(), bm.Handler(), apiURL); err != nil {
		return err
	}
	var routerHandler http.Handler = rtr
	if s.routerAuth != nil {
		routerHandler = s.routerAuth.Middleware(routerHandler)
	}
	// Function traffic may be addressed to any host; the router's own
	// metrics and version only to this machine's names.
	routerHandler = s.guard.HostHandler(router.AdminPath, routerHandler)
	s.routeSrv = &http.Server{Handler: routerHandler, ReadHeaderTimeout: 10 * time.Second}

	s.roles = append(s.roles,
		role{"buildermgr", bm.Run},
		role{"pruner", func(ctx context.Context) error { pruner.Run(ctx); return nil }},
	)
	s.roles = append(s.roles, routerRoles...)
	mq, err := s.assembleMQ(rtr)
	if err != nil {
		return err
	}
	s.roles = append(s.roles, mq)
	return nil
}

// Run serves until ctx ends, then drains in-flight requests (bounded by
// ShutdownTimeout), stops every role and builder, and closes the store.
func (s *Server) Run(ctx context.Context) error {
	TuneGC()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.log.Info("isotope server started",
		"api", "http://"+s.apiLn.Addr().String(),
		"router", "http://"+s.routerLn.Addr().String(),
		"data_dir", s.cfg.DataDir)
	if s.natsURL != "" {
		s.log.Info("embedded NATS server started", "nats", s.natsURL)
	}

	var wg sync.WaitGroup
	errc := make(chan error, len(s.roles)+2)
	for _, r := range s.roles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
	}
	serve := func(name string, srv *http.Server, ln net.Listener) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s: %w", name, err)
		}
	}
	go serve("API", s.apiSrv, s.apiLn)
	go serve("router", s.routeSrv, s.routerLn)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		s.log.Error("a role failed; shutting down", "err", runErr)
	}
	s.log.Info("shutting down: draining requests")
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer scancel()
	var swg sync.WaitGroup
	for _, srv := range []*http.Server{s.routeSrv, s.apiSrv} {
		swg.Add(1)
		go func() { defer swg.Done(); _ = srv.Shutdown(sctx) }()
	}
	swg.Wait()
	cancel()
	wg.Wait()
	s.closeAll()
	s.log.Info("isotope server stopped")
	return runErr
}

func (s *Server) closeAll() {
	if s.builders != nil {
		s.builders.Close()
	}
	for _, c := range s.closers {
		c()
	}
	if s.apiLn != nil {
		s.apiLn.Close()
	}
	if s.routerLn != nil {
		s.routerLn.Close()
	}
	if s.archives != nil {
		s.archives.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.stopTracing != nil {
		s.stopTracing()
		s.stopTracing = nil
	}
}

// requireToken guards handlers mounted beside the API server with the same
// bearer token.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="isotope"`)
			http.Error(w, "unauthorized: set ISOTOPE_TOKEN to the server's token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// prefixWriter logs each line a builder process prints.
type prefixWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			if len(p.buf) > 64<<10 {
				p.log.Info(string(p.buf))
				p.buf = p.buf[:0]
			}
			return len(b), nil
		}
		p.log.Info(string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
}
