package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// The Kubernetes roles: each runs one role of the platform against a
// kube-apiserver (Isotope's CRDs through kubestore), as the Deployments
// of the Helm chart do; `isotope server` (New) runs all roles in one
// process over bbolt instead. The CLI binds their flags to these options.

// KubeOptions are what every Kubernetes role takes.
type KubeOptions struct {
	// Kubeconfig is a kubeconfig file; "" means the in-cluster
	// configuration.
	Kubeconfig string
	// Namespace confines the store to one namespace ("" = all).
	Namespace string
	// Image has the isotope binary, for fetcher and wasm-env containers.
	Image string
	// StorageURL is the storage service URL fetchers use.
	StorageURL string
	// FetcherEnv are NAME=VALUE pairs added to every fetcher container.
	FetcherEnv []string
	// LeaderElect makes the role act only while it holds its Lease in
	// LeaseNamespace, as Identity.
	LeaderElect    bool
	LeaseNamespace string
	Identity       string
	// Log receives the role's log (default os.Stderr).
	Log io.Writer
}

// kubeRole is a role connected to the apiserver.
type kubeRole struct {
	o          KubeOptions
	cfg        *rest.Config
	client     client.Client
	store      *kubestore.Store
	log        *slog.Logger
	fetcherEnv []corev1.EnvVar
}

// connect checks o and connects a role to the apiserver.
func (o KubeOptions) connect() (*kubeRole, error) {
	var fenv []corev1.EnvVar
	for _, kv := range o.FetcherEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--fetcher-env %q: want NAME=VALUE", kv)
		}
		fenv = append(fenv, corev1.EnvVar{Name: k, Value: v})
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
	st, err := kubestore.New(cfg, kubestore.Options{Namespace: o.Namespace})
	if err != nil {
		return nil, err
	}
	out := o.Log
	if out == nil {
		out = os.Stderr
	}
	return &kubeRole{o: o, cfg: cfg, client: c, store: st, log: slog.New(slog.NewTextHandler(out, nil)), fetcherEnv: fenv}, nil
}

// restConfig loads the kubeconfig, or the in-cluster configuration
// when none is given.
func (o KubeOptions) restConfig() (*rest.Config, error) {
	if o.Kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not running in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", o.Kubeconfig, err)
	}
	return cfg, nil
}

// startTracing sets up tracing for the role (StartTracing).
func (r *kubeRole) startTracing(ctx context.Context, role string) (func(), error) {
	return StartTracing(ctx, r.log, role)
}

// lead runs run while this process holds the Lease name (when leader
// election is on); losing the Lease ends the role with an error, so that
// a restarted replica never acts alongside the new leader.
func (r *kubeRole) lead(ctx context.Context, name string, run func(context.Context) error) error {
	if !r.o.LeaderElect {
		return run(ctx)
	}
	return controller.RunAsLeader(ctx, controller.Lease{
		Config: r.cfg, Namespace: r.o.LeaseNamespace, Name: name, Identity: r.o.Identity, Logger: r.log,
	}, run)
}

// BuildermgrOptions configure the builder manager role.
type BuildermgrOptions struct {
	KubeOptions
	BuilderNamespace string // every builder here ("" = its environment's namespace)
	ServiceAccount   string // of builder pods
	Parallel         int
	BuildTimeout     time.Duration
}

// RunBuildermgr runs the builder manager: builder Deployments per
// environment and package builds, as the holder of "isotope-buildermgr".
func RunBuildermgr(ctx context.Context, o BuildermgrOptions) error {
	r, err := o.connect()
	if err != nil {
		return err
	}
	stop, err := r.startTracing(ctx, "buildermgr")
	if err != nil {
		return err
	}
	defer stop()
	kb, err := buildermgr.NewKubeBuilders(buildermgr.KubeConfig{
		Client: r.client, Namespace: o.BuilderNamespace, IsotopeImage: o.Image,
		StorageURL: o.StorageURL, FetcherEnv: r.fetcherEnv, ServiceAccount: o.ServiceAccount, Logger: r.log,
	})
	if err != nil {
		return err
	}
	mgr := buildermgr.New(buildermgr.Config{Store: r.store, Builders: kb, Parallel: o.Parallel, BuildTimeout: o.BuildTimeout, Logger: r.log})
	return r.lead(ctx, "isotope-buildermgr", mgr.Run)
}

// ExecutorOptions configure the executor role.
type ExecutorOptions struct {
	KubeOptions
	ServiceAccount string // of function pods
}

// RunExecutor runs the executor's controllers: pool Deployments and
// newdeploy objects, as the holder of "isotope-executor".
func RunExecutor(ctx context.Context, o ExecutorOptions) error {
	TuneGC()
	r, err := o.connect()
	if err != nil {
		return err
	}
	stop, err := r.startTracing(ctx, "executor")
	if err != nil {
		return err
	}
	defer stop()
	ctrl, err := kubert.NewController(kubert.Config{
		Client: r.client, Store: r.store, IsotopeImage: o.Image, StorageURL: o.StorageURL,
		FetcherEnv: r.fetcherEnv, ServiceAccount: o.ServiceAccount, Logger: r.log,
	})
	if err != nil {
		return err
	}
	return r.lead(ctx, "isotope-executor", ctrl.Run)
}

// RouterOptions configure the router role.
type RouterOptions struct {
	KubeOptions
	Addr string
	// APIHosts may read /metrics and /_version besides loopback names
	// and IP addresses.
	APIHosts []string
}

// RunRouter runs the router with the executor's admission in-process:
// every environment's instances are pods (kubert). Several replicas may
// run; each takes its own pods.
func RunRouter(ctx context.Context, o RouterOptions) error {
	TuneGC()
	guard, err := webguard.New(o.APIHosts)
	if err != nil {
		return err
	}
	r, err := o.connect()
	if err != nil {
		return err
	}
	stop, err := r.startTracing(ctx, "router")
	if err != nil {
		return err
	}
	defer stop()
	rt, err := kubert.NewRuntime(kubert.Config{Client: r.client, Store: r.store, StorageURL: o.StorageURL, Logger: r.log})
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "isotope-router-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// One registry for the router's and the executor's series (per
	// function instance counts included), served at /metrics.
	reg := prometheus.NewRegistry()
	exec, err := executor.New(executor.Config{
		Store: r.store, WorkDir: work, Logger: r.log.With("role", "executor"), Registry: reg,
		RuntimeFor: func(*v1.Environment) (instance.Runtime, error) { return rt, nil },
	})
	if err != nil {
		return err
	}
	defer exec.Close()
	rtr := router.New(router.Config{Store: r.store, Executor: exec, Logger: r.log.With("role", "router"), Registry: reg})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go exec.Run(ctx)
	go rtr.Run(ctx)
	// /metrics and /_version only to this pod's addresses and the names
	// given; function traffic to any host.
	return ServeRole(ctx, r.log, "router", o.Addr, guard.HostHandler(router.AdminPath, rtr))
}

// TimerOptions configure the timer role.
type TimerOptions struct {
	KubeOptions
	RouterURL string // a Service address, e.g. http://router
}

// RunTimer runs the timer: TimeTriggers call the router, as the holder of
// "isotope-timer", so a trigger fires once however many replicas run.
func RunTimer(ctx context.Context, o TimerOptions) error {
	r, err := o.connect()
	if err != nil {
		return err
	}
	stop, err := r.startTracing(ctx, "timer")
	if err != nil {
		return err
	}
	defer stop()
	tmr := timer.New(timer.Config{Store: r.store, RouterURL: o.RouterURL, Logger: r.log})
	return r.lead(ctx, "isotope-timer", tmr.Run)
}
