package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"isotope.dev/isotope/internal/server"
	"isotope.dev/isotope/internal/storagesvc"
)

func init() { register(newStoragesvcCommand) }

// storagesvcRefs returns the pruner's view of which archives Packages
// reference: every Package, listed from the kube-apiserver in a cluster
// (--kubeconfig or in-cluster) or through the API at --server.
func storagesvcRefs(g *Globals, log *slog.Logger) (storagesvc.RefsFunc, error) {
	st, from, err := openRoleStore(g)
	if err != nil {
		return nil, err
	}
	log.Info("pruner reads Packages", "from", from)
	return storagesvc.RefsFromStore(st), nil
}

// newStoragesvcCommand is the `isotope storagesvc` role: Fission's
// storage service (/v1/archive, /healthz) over a local directory, with
// the archive pruner. `isotope server` serves the same handler on its
// API listener instead.
func newStoragesvcCommand(g *Globals) *cobra.Command {
	var (
		addr, dir, maxSize, idPrefix, token string
		pruneInterval, pruneGrace           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "storagesvc",
		Short: "Run the storage service: archives over Fission's /v1/archive API",
		Long: `Run the storage service: source and deploy archives over Fission's
/v1/archive API, kept in --dir. Uploads are streamed, checksummed (sha256)
and made visible only when complete. Unless --prune-interval is 0, archives
that no Package references (listed from the kube-apiserver with --kubeconfig
or in a cluster, else through the API at --server) are deleted
once they are older than --prune-grace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			max, err := resource.ParseQuantity(maxSize)
			if err != nil || max.Value() <= 0 {
				return fmt.Errorf("--max-size: %q is not a size (e.g. 256Mi)", maxSize)
			}
			if pruneInterval < 0 || pruneGrace < 0 {
				return errors.New("--prune-interval and --prune-grace: must not be negative")
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			return server.RunStoragesvc(cmd.Context(), server.StoragesvcOptions{
				Addr: addr, Dir: dir, IDPrefix: idPrefix, Token: token, MaxSize: max.Value(),
				PruneInterval: pruneInterval, PruneGrace: pruneGrace, Logger: log,
				Refs: func() (storagesvc.RefsFunc, error) { return storagesvcRefs(g, log) },
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", ":8000", "listen address (port 0 picks a free port; the real one is logged)")
	f.StringVar(&dir, "dir", defaultArchiveDir(), "directory holding the archives")
	f.StringVar(&maxSize, "max-size", "256Mi", "largest archive accepted (bytes or a quantity like 256Mi, 1Gi)")
	f.DurationVar(&pruneInterval, "prune-interval", time.Hour, "how often unreferenced archives are pruned (0 disables pruning)")
	f.DurationVar(&pruneGrace, "prune-grace", time.Hour, "never prune an archive younger than this")
	f.StringVar(&idPrefix, "id-prefix", storagesvc.DefaultIDPrefix, `path-like prefix of archive ids ("/fission/fission-functions" serves a Fission volume)`)
	f.StringVar(&token, "token", "", "bearer token clients must send on /v1/archive (default: none)")
	return cmd
}

// defaultArchiveDir is $HOME/.isotope/archives, the archives directory of
// the default data dir.
func defaultArchiveDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".isotope", "archives")
	}
	return filepath.Join(home, ".isotope", "archives")
}
