package cli

import (
	"os"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/server"
)

func init() { register(newDashboardRoleCommand) }

// newDashboardRoleCommand is the dashboard role of Kubernetes mode, where
// no Isotope API process serves /ui/ and /v2/status (decision 0024).
func newDashboardRoleCommand(g *Globals) *cobra.Command {
	var o server.DashboardOptions
	cmd := &cobra.Command{
		Use:   "dashboard --kubeconfig FILE --router URL [--addr :8889]",
		Short: "Run the web dashboard on Kubernetes: /ui/ and /v2/status over the cluster's Isotope objects",
		Long: `Run the web dashboard against a kube-apiserver: the pages isotope server
serves at /ui/ (functions, packages and builds, environments, timers, the
invoke, rebuild and new-function forms) and the status report at
/v2/status, built from the cluster's Isotope objects, the router's
windowed stats (--router, the router Service) and archives from the
storage service (--storage-url).

A token is required: the login form asks for it and /v2/status wants it
as a bearer token (isotope status --server URL with ISOTOPE_TOKEN). Without
--token or ISOTOPE_DASHBOARD_TOKEN the dashboard is locked: nobody can log
in. Function logs are not shown (they are the pods' container logs: the
page says how to read them with kubectl); build logs appear when a build
ends, as the builder manager stores them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Log, o.RouterURL = cmd.ErrOrStderr(), g.Router
			return server.RunDashboard(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file (env KUBECONFIG); empty means the in-cluster configuration")
	f.StringVar(&o.Namespace, "watch-namespace", "", "show only this namespace (a namespaced Role suffices); empty shows all")
	f.StringVar(&o.StorageURL, "storage-url", envOr("ISOTOPE_STORAGE_URL", "http://storagesvc"), "storage service URL, for the code view (env ISOTOPE_STORAGE_URL)")
	f.StringVar(&o.Addr, "addr", ":8889", "listen address")
	f.StringVar(&o.Token, "token", os.Getenv(server.DashboardTokenEnv), "token the login form and /v2/status require (env "+server.DashboardTokenEnv+"); empty locks the dashboard")
	f.StringArrayVar(&o.APIHosts, "api-host", nil, "host name (no port) the dashboard may be reached by, besides loopback names and IP addresses: the Service's or an Ingress's (repeatable)")
	return cmd
}
