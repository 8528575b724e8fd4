package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/auth/webguard"
	"isotope.dev/isotope/internal/buildermgr"
	"isotope.dev/isotope/internal/controller"
	"isotope.dev/isotope/internal/executor"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/executor/kubert"
	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/store/kubestore"
	"isotope.dev/isotope/internal/timer"
)

// The Kubernetes role commands: each runs one role of the platform
// against a kube-apiserver (Isotope's CRDs through kubestore), as the
// Deployments of the Helm chart do. `isotope server` runs all roles in
// one process over bbolt instead.
func init() {
	register(newBuildermgrRoleCommand)
	register(newExecutorRoleCommand)
	register(newRouterRoleCommand)
	// "timer" is the TimeTrigger command group (Fission's `fission
	// timer`), so the role is its subcommand `isotope timer serve`.
	registerSub("timer", newTimerServeCommand)
}

// kubeOptions are the flags every Kubernetes role takes.
type kubeOptions struct {
	kubeconfig     string
	namespace      string // confine the store to one namespace ("" = all)
	image          string
	storageURL     string
	fetcherEnv     []string
	leaderElect    bool
	leaseNamespace string
	identity       string
}

func (o *kubeOptions) addFlags(cmd *cobra.Command, withLeader bool) {
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (env KUBECONFIG); empty means the in-cluster configuration")
	f.StringVar(&o.namespace, "watch-namespace", "", "serve only this namespace (a namespaced Role suffices); empty serves all")
	f.StringVar(&o.image, "image", envOr("ISOTOPE_IMAGE", kubert.DefaultIsotopeImage), "image with the isotope binary, for fetcher and wasm-env containers (env ISOTOPE_IMAGE; the default is a placeholder)")
	f.StringVar(&o.storageURL, "storage-url", envOr("ISOTOPE_STORAGE_URL", "http://storagesvc"), "storage service URL that fetchers use (env ISOTOPE_STORAGE_URL)")
	f.StringArrayVar(&o.fetcherEnv, "fetcher-env", nil, "NAME=VALUE added to every fetcher container (repeatable)")
	if withLeader {
		f.BoolVar(&o.leaderElect, "leader-elect", true, "act only while holding the role's Lease, so that one replica acts at a time")
		f.StringVar(&o.leaseNamespace, "lease-namespace", envOr("POD_NAMESPACE", "default"), "namespace of the leader-election Lease (env POD_NAMESPACE)")
		host, _ := os.Hostname()
		f.StringVar(&o.identity, "identity", envOr("POD_NAME", host), "this replica's name in the Lease (env POD_NAME)")
	}
}

// restConfig loads the kubeconfig, or the in-cluster configuration
// when none is given.
func (o *kubeOptions) restConfig() (*rest.Config, error) {
	if o.kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not running in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", o.kubeconfig, err)
	}
	return cfg, nil
}

func (o *kubeOptions) env() ([]corev1.EnvVar, error) {
	var out []corev1.EnvVar
	for _, kv := range o.fetcherEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--fetcher-env %q: want NAME=VALUE", kv)
		}
		out = append(out, corev1.EnvVar{Name: k, Value: v})
	}
	return out, nil
}

// kubeClients are what a role needs on the apiserver, with its logger
// and the fetcher containers' extra env (--fetcher-env).
type kubeClients struct {
	cfg        *rest.Config
	client     client.Client
	store      *kubestore.Store
	log        *slog.Logger
	fetcherEnv []corev1.EnvVar
}

// clients checks the role's flags and connects it; every role command
// starts with it.
func (o *kubeOptions) clients(cmd *cobra.Command) (*kubeClients, error) {
	fenv, err := o.env()
	if err != nil {
		return nil, err
	}
	cfg, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	st, err := kubestore.New(cfg, kubestore.Options{Namespace: o.namespace})
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	return &kubeClients{cfg: cfg, client: c, store: st, log: log, fetcherEnv: fenv}, nil
}

// runLeader runs run while this process holds the Lease name; losing
// the Lease ends the process (with an error), so that a restarted
// replica never acts alongside the new leader.
func (o *kubeOptions) runLeader(ctx context.Context, cfg *rest.Config, name string, log *slog.Logger, run func(context.Context) error) error {
	if !o.leaderElect {
		return run(ctx)
	}
	return controller.RunAsLeader(ctx, controller.Lease{
		Config: cfg, Namespace: o.leaseNamespace, Name: name, Identity: o.identity, Logger: log,
	}, run)
}

func newBuildermgrRoleCommand(g *Globals) *cobra.Command {
	var (
		o                kubeOptions
		builderNamespace string
		serviceAccount   string
		parallel         int
		buildTimeout     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "buildermgr --kubeconfig FILE",
		Short: "Run the builder manager on Kubernetes: builder Deployments per environment, package builds",
		Long: `Run the builder manager against a kube-apiserver: for every Environment
with a builder image, a Deployment and a Service named <env>-<resourceVersion>
with Fission's labels (envName, envNamespace, envResourceVersion,
owner=buildermgr) and ports (fetcher 8000, builder 8001); pending Packages
are built through the builder pod's fetcher and builder at the pod's IP.
Only the holder of the Lease "isotope-buildermgr" acts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kc, err := o.clients(cmd)
			if err != nil {
				return err
			}
			log, fenv := kc.log, kc.fetcherEnv
			kb, err := buildermgr.NewKubeBuilders(buildermgr.KubeConfig{
				Client: kc.client, Namespace: builderNamespace, IsotopeImage: o.image,
				StorageURL: o.storageURL, FetcherEnv: fenv, ServiceAccount: serviceAccount, Logger: log,
			})
			if err != nil {
				return err
			}
			mgr := buildermgr.New(buildermgr.Config{Store: kc.store, Builders: kb, Parallel: parallel, BuildTimeout: buildTimeout, Logger: log})
			return o.runLeader(cmd.Context(), kc.cfg, "isotope-buildermgr", log, mgr.Run)
		},
	}
	o.addFlags(cmd, true)
	f := cmd.Flags()
	f.StringVar(&builderNamespace, "builder-namespace", "", "namespace for every builder (no owner references then); empty puts each in its environment's namespace")
	f.StringVar(&serviceAccount, "builder-service-account", "", "service account of builder pods")
	f.IntVar(&parallel, "parallel", 2, "packages built at once")
	f.DurationVar(&buildTimeout, "build-timeout", 10*time.Minute, "longest one build may take")
	return cmd
}

func newExecutorRoleCommand(g *Globals) *cobra.Command {
	var (
		o              kubeOptions
		serviceAccount string
	)
	cmd := &cobra.Command{
		Use:   "executor --kubeconfig FILE",
		Short: "Run the executor's controllers on Kubernetes: pool Deployments and newdeploy objects",
		Long: `Run the executor's controllers against a kube-apiserver: a pool
Deployment poolmgr-<env>-<ns>-<resourceVersion> of generic pods per
Environment (managed=true, poolsize replicas), and for each newdeploy
Function a Deployment, Service and HorizontalPodAutoscaler
newdeploy-<name>-<ns>-<uid suffix>, all owned by their object. Requests are
served by "isotope router", which takes pods from the pools. Only the
holder of the Lease "isotope-executor" acts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kc, err := o.clients(cmd)
			if err != nil {
				return err
			}
			log, fenv := kc.log, kc.fetcherEnv
			ctrl, err := kubert.NewController(kubert.Config{
				Client: kc.client, Store: kc.store, IsotopeImage: o.image, StorageURL: o.storageURL,
				FetcherEnv: fenv, ServiceAccount: serviceAccount, Logger: log,
			})
			if err != nil {
				return err
			}
			return o.runLeader(cmd.Context(), kc.cfg, "isotope-executor", log, ctrl.Run)
		},
	}
	o.addFlags(cmd, true)
	cmd.Flags().StringVar(&serviceAccount, "function-service-account", "", "service account of function pods")
	return cmd
}

func newRouterRoleCommand(g *Globals) *cobra.Command {
	var (
		o        kubeOptions
		addr     string
		apiHosts []string
	)
	cmd := &cobra.Command{
		Use:   "router --kubeconfig FILE [--addr :8888]",
		Short: "Run the router on Kubernetes: HTTP triggers to function pods",
		Long: `Run the router against a kube-apiserver: HTTPTriggers and the internal
/fission-function/<ns>/<name> routes, served by function pods reached at
their pod IPs. The executor's admission (concurrency, requestsPerPod, idle
reaping) runs in this process: a poolmgr function takes a pod out of its
environment's pool and specializes it through its fetcher; a newdeploy
function is proxied to a ready pod of its own Deployment. Several router
replicas may run; each takes its own pods.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			guard, err := webguard.New(apiHosts)
			if err != nil {
				return err
			}
			kc, err := o.clients(cmd)
			if err != nil {
				return err
			}
			log := kc.log
			rt, err := kubert.NewRuntime(kubert.Config{Client: kc.client, Store: kc.store, StorageURL: o.storageURL, Logger: log})
			if err != nil {
				return err
			}
			work, err := os.MkdirTemp("", "isotope-router-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			exec, err := executor.New(executor.Config{
				Store: kc.store, WorkDir: work, Logger: log.With("role", "executor"),
				// Every environment's instances are pods.
				RuntimeFor: func(*v1.Environment) (instance.Runtime, error) { return rt, nil },
			})
			if err != nil {
				return err
			}
			defer exec.Close()
			rtr := router.New(router.Config{Store: kc.store, Executor: exec, Logger: log.With("role", "router")})
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go exec.Run(ctx)
			go rtr.Run(ctx)
			// /metrics and /_version only to this pod's addresses and
			// the names given; function traffic to any host.
			return serveRole(ctx, log, "router", addr, guard.HostHandler(router.AdminPath, rtr))
		},
	}
	o.addFlags(cmd, false)
	cmd.Flags().StringVar(&addr, "addr", ":8888", "listen address")
	cmd.Flags().StringArrayVar(&apiHosts, "api-host", nil, "host name (no port) that may be used to read /metrics and /_version, besides loopback names and IP addresses (repeatable)")
	return cmd
}

func newTimerServeCommand(g *Globals) *cobra.Command {
	var o kubeOptions
	cmd := &cobra.Command{
		Use:   "serve --kubeconfig FILE",
		Short: "Run the timer role on Kubernetes: TimeTriggers call the router",
		Long: `Run the timer role against a kube-apiserver: every TimeTrigger calls
the router at --router (a Service address, e.g. http://router) on its cron
schedule. Only the holder of the Lease "isotope-timer" acts, so a trigger
fires once however many replicas run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kc, err := o.clients(cmd)
			if err != nil {
				return err
			}
			log := kc.log
			tmr := timer.New(timer.Config{Store: kc.store, RouterURL: g.Router, Logger: log})
			return o.runLeader(cmd.Context(), kc.cfg, "isotope-timer", log, tmr.Run)
		},
	}
	o.addFlags(cmd, true)
	return cmd
}
