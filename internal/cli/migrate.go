package cli

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"isotope.dev/isotope/internal/migrate"
	"isotope.dev/isotope/internal/store/kubestore"
)

func init() { register(newMigrateCommand) }

func newMigrateCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Move another platform's resources to Isotope"}
	var apply bool
	fission := &cobra.Command{
		Use:   "fission",
		Short: "Copy a cluster's fission.io/v1 resources to isotope.dev/v1 (dry run unless --apply)",
		Long: `Read every fission.io/v1 Environment, Package, Function, HTTPTrigger and
TimeTrigger of the cluster (--kubeconfig, else in-cluster) and write each as
the isotope.dev/v1 object of the same namespace and name. Without --apply it
only prints what it would do, checking each object against Isotope's
validation. It is idempotent: run it again after changing Fission objects and
it updates only what changed. Fission's objects are never changed or deleted;
Fission kinds Isotope does not have (CanaryConfig, MessageQueueTrigger,
KubernetesWatchTrigger) are listed as skipped. All namespaces unless
-n/--namespace is given. See docs/fission-cli.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *rest.Config
			var err error
			if g.Kubeconfig != "" {
				if cfg, err = clientcmd.BuildConfigFromFlags("", g.Kubeconfig); err != nil {
					return fmt.Errorf("--kubeconfig %s: %w", g.Kubeconfig, err)
				}
			} else if cfg, err = rest.InClusterConfig(); err != nil {
				return fmt.Errorf("migrate fission works on a Kubernetes cluster: give --kubeconfig (or ISOTOPE_KUBECONFIG), or run it in a pod (%v)", err)
			}
			src, err := dynamic.NewForConfig(cfg)
			if err != nil {
				return err
			}
			dst, err := kubestore.New(cfg, kubestore.Options{})
			if err != nil {
				return err
			}
			ns := ""
			if cmd.Flags().Changed("namespace") {
				ns = g.Namespace
			}
			out := cmd.OutOrStdout()
			res, err := migrate.Fission(cmd.Context(), src, dst, migrate.Options{Namespace: ns, Apply: apply}, out)
			if err != nil {
				return err
			}
			var parts []string
			for a, n := range res.Counts {
				parts = append(parts, fmt.Sprintf("%d %s", n, a))
			}
			sort.Strings(parts)
			mode := "dry run, nothing written (run again with --apply)"
			if apply {
				mode = "applied"
			}
			fmt.Fprintf(out, "%s: %s\n", mode, strings.Join(parts, ", "))
			if len(res.Failed) > 0 {
				return fmt.Errorf("%d objects not migrated: %s", len(res.Failed), strings.Join(res.Failed, ", "))
			}
			return nil
		},
	}
	fission.Flags().BoolVar(&apply, "apply", false, "write the isotope.dev/v1 objects (default: print what would be done)")
	cmd.AddCommand(fission)
	return cmd
}
