package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/executor/kubert"
	"isotope.dev/isotope/internal/server"
)

// The Kubernetes role commands: each binds its flags and runs one role of
// the platform against a kube-apiserver (internal/server assembles it),
// as the Deployments of the Helm chart do. `isotope server` runs all
// roles in one process over bbolt instead.
func init() {
	register(newBuildermgrRoleCommand)
	register(newExecutorRoleCommand)
	register(newRouterRoleCommand)
	// "timer" is the TimeTrigger command group (Fission's `fission
	// timer`), so the role is its subcommand `isotope timer serve`.
	registerSub("timer", newTimerServeCommand)
}

// addKubeFlags binds the flags every Kubernetes role takes to o.
func addKubeFlags(cmd *cobra.Command, o *server.KubeOptions, withLeader bool) {
	f := cmd.Flags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (env KUBECONFIG); empty means the in-cluster configuration")
	f.StringVar(&o.Namespace, "watch-namespace", "", "serve only this namespace (a namespaced Role suffices); empty serves all")
	f.StringVar(&o.Image, "image", envOr("ISOTOPE_IMAGE", kubert.DefaultIsotopeImage), "image with the isotope binary, for fetcher and wasm-env containers (env ISOTOPE_IMAGE; the default is a placeholder)")
	f.StringVar(&o.StorageURL, "storage-url", envOr("ISOTOPE_STORAGE_URL", "http://storagesvc"), "storage service URL that fetchers use (env ISOTOPE_STORAGE_URL)")
	f.StringArrayVar(&o.FetcherEnv, "fetcher-env", nil, "NAME=VALUE added to every fetcher container (repeatable)")
	if withLeader {
		f.BoolVar(&o.LeaderElect, "leader-elect", true, "act only while holding the role's Lease, so that one replica acts at a time")
		f.StringVar(&o.LeaseNamespace, "lease-namespace", envOr("POD_NAMESPACE", "default"), "namespace of the leader-election Lease (env POD_NAMESPACE)")
		host, _ := os.Hostname()
		f.StringVar(&o.Identity, "identity", envOr("POD_NAME", host), "this replica's name in the Lease (env POD_NAME)")
	}
}

func newBuildermgrRoleCommand(g *Globals) *cobra.Command {
	var o server.BuildermgrOptions
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
			o.Log = cmd.ErrOrStderr()
			return server.RunBuildermgr(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, true)
	f := cmd.Flags()
	f.StringVar(&o.BuilderNamespace, "builder-namespace", "", "namespace for every builder (no owner references then); empty puts each in its environment's namespace")
	f.StringVar(&o.ServiceAccount, "builder-service-account", "", "service account of builder pods")
	f.IntVar(&o.Parallel, "parallel", 2, "packages built at once")
	f.DurationVar(&o.BuildTimeout, "build-timeout", 10*time.Minute, "longest one build may take")
	return cmd
}

func newExecutorRoleCommand(g *Globals) *cobra.Command {
	var o server.ExecutorOptions
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
			o.Log = cmd.ErrOrStderr()
			return server.RunExecutor(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, true)
	cmd.Flags().StringVar(&o.ServiceAccount, "function-service-account", "", "service account of function pods")
	return cmd
}

func newRouterRoleCommand(g *Globals) *cobra.Command {
	var o server.RouterOptions
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
			o.Log = cmd.ErrOrStderr()
			return server.RunRouter(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, false)
	cmd.Flags().StringVar(&o.Addr, "addr", ":8888", "listen address")
	cmd.Flags().StringArrayVar(&o.APIHosts, "api-host", nil, "host name (no port) that may be used to read /metrics and /_version, besides loopback names and IP addresses (repeatable)")
	return cmd
}

func newTimerServeCommand(g *Globals) *cobra.Command {
	var o server.TimerOptions
	cmd := &cobra.Command{
		Use:   "serve --kubeconfig FILE",
		Short: "Run the timer role on Kubernetes: TimeTriggers call the router",
		Long: `Run the timer role against a kube-apiserver: every TimeTrigger calls
the router at --router (a Service address, e.g. http://router) on its cron
schedule. Only the holder of the Lease "isotope-timer" acts, so a trigger
fires once however many replicas run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log, o.RouterURL = cmd.ErrOrStderr(), g.Router
			return server.RunTimer(cmd.Context(), o)
		},
	}
	addKubeFlags(cmd, &o.KubeOptions, true)
	return cmd
}
