package cli

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/auth/routerauth"
	"isotope.dev/isotope/internal/netns"
	"isotope.dev/isotope/internal/server"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/wasm"
)

func init() { register(newServerCommand) }

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".isotope")
	}
	return ".isotope"
}

func newServerCommand(g *Globals) *cobra.Command {
	var cfg server.Config
	var logLevel, token string
	var routerAuth routerauth.Options
	var routerAuthOn bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the whole platform in one process (embedded mode)",
		Long: `Run every Isotope role in one process: the API (with the archive store at
/v1/archive), the builder manager with local builders, the executor with
in-process WebAssembly, the router and the timer. State lives in a bbolt file
in the data dir. Port 0 picks a free port; the real addresses are logged.

The API requires a bearer token whenever it listens on a non-loopback
address: --token or ISOTOPE_TOKEN if given, otherwise one generated into
<data-dir>/token on first start (printed once) and reused later. With
--router-auth the router requires a bearer token too: POST /auth/login with
{"username","password"} (ISOTOPE_ROUTER_USERNAME / ISOTOPE_ROUTER_PASSWORD)
returns a JWT signed with ISOTOPE_ROUTER_SIGNING_KEY (random per start when
unset); see ` + "`isotope token create`" + `.

Against web pages in your browser, the API (and the router's /metrics and
/_version) answer only requests whose Host is a loopback name, an IP
address or a name given with --api-host, and refuse writes sent from
another origin (see SECURITY.md). Reach the server by another name, say
http://build-box:8889, only after starting it with --api-host build-box.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg.Token = g.Token
			if token != "" {
				cfg.Token = token
			}
			if routerAuthOn {
				routerAuth.Username = os.Getenv(routerauth.EnvUsername)
				routerAuth.Password = os.Getenv(routerauth.EnvPassword)
				if k := os.Getenv(routerauth.EnvSigningKey); k != "" {
					routerAuth.SigningKey = []byte(k)
				}
				cfg.RouterAuth = &routerAuth
			}
			srv, err := server.New(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for the store, archives and caches")
	f.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:8889", "API listen address (port 0 picks a free port)")
	f.StringVar(&cfg.RouterAddr, "router-addr", "127.0.0.1:8888", "router listen address (port 0 picks a free port)")
	f.Int64Var(&cfg.MaxArchiveSize, "max-archive-size", 256<<20, "largest archive the storage service accepts, in bytes")
	f.DurationVar(&cfg.PruneInterval, "prune-interval", time.Hour, "how often unreferenced archives are pruned")
	f.DurationVar(&cfg.PruneGrace, "prune-grace", time.Hour, "archives younger than this are never pruned")
	f.IntVar(&cfg.BuildParallel, "build-parallel", 2, "how many packages build at once")
	f.DurationVar(&cfg.BuildTimeout, "build-timeout", 10*time.Minute, "longest a build may take")
	f.DurationVar(&cfg.BuilderReadyTimeout, "builder-ready-timeout", 2*time.Minute, "longest a build waits for its environment's builder to answer /healthz; then it fails with the builder's last output")
	f.DurationVar(&cfg.InstanceStartTimeout, "instance-start-timeout", 30*time.Second, "longest a local runtime program may take to accept connections; then the specialization fails with its last output")
	f.StringVar((*string)(&cfg.InstanceNetwork), "instance-network", string(netns.Auto), "network of local runtime and builder programs: isolated (own network namespace, fixed ports 8888/8001 as in a Fission pod, loopback only), host (the server's network, the program listens on $PORT), or auto (isolated where the kernel allows it); annotation isotope.dev/network on an environment overrides it")
	f.IntVar(&cfg.Limits.MaxPoolSize, "max-poolsize", store.DefaultMaxPoolSize, "largest environment poolsize the API accepts (each instance of a process runtime is a local process)")
	f.IntVar(&cfg.Limits.MaxScale, "max-scale", store.DefaultMaxScale, "largest newdeploy MinScale/MaxScale the API accepts")
	f.IntVar(&cfg.GuestSlots, "guest-slots", 0, "WebAssembly calls running at once (0: GOMAXPROCS-1, at least 1; guests never hold every CPU)")
	f.IntVar(&cfg.GuestQueue, "guest-queue", wasm.DefaultGuestQueue, "WebAssembly calls that may wait for a guest slot before requests get 429")
	f.BoolVar(&cfg.MQ.NATS, "nats", false, "start an embedded NATS server with JetStream (stored in <data-dir>/nats) for nats-jetstream message queue triggers")
	f.StringVar(&cfg.MQ.NATSAddr, "nats-addr", "127.0.0.1:4222", "embedded NATS server listen address (with --nats; port 0 picks a free port)")
	f.StringVar(&cfg.MQ.NATSURL, "nats-url", "", "NATS server of nats-jetstream triggers without metadata.natsServerURL, when --nats is off")
	f.IntVar(&cfg.MQ.Concurrency, "mqt-concurrency", 0, "messages one message queue trigger handles at once unless its metadata.concurrency says (0: 4)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&cfg.APIHosts, "api-host", nil, "host name (no port) clients may use to reach the API and the router's /metrics, besides loopback names and IP addresses (repeatable)")
	f.StringVar(&token, "token", "", "bearer token the API requires (default ISOTOPE_TOKEN; none on loopback, else generated into <data-dir>/token)")
	f.BoolVar(&routerAuthOn, "router-auth", false, "require a bearer token on the router (credentials from ISOTOPE_ROUTER_USERNAME/PASSWORD)")
	f.StringVar(&routerAuth.LoginPath, "router-auth-path", routerauth.DefaultLoginPath, "router login path (with --router-auth)")
	f.DurationVar(&routerAuth.Expiry, "router-auth-expiry", routerauth.DefaultExpiry, "lifetime of a router token (with --router-auth)")
	return cmd
}
