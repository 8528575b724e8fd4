package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/server"
)

func init() { register(newFetcherCommand) }

// newFetcherCommand is the `isotope fetcher` role: Fission's fetcher API
// over a shared directory (the fetcher sidecar of builder and function
// pods). Packages are read through the API at --server.
func newFetcherCommand(g *Globals) *cobra.Command {
	var (
		addr, secretDir, cfgmapDir, specializeReq, runtimeURL string
		specializeOnStartup                                   bool
	)
	cmd := &cobra.Command{
		Use:   "fetcher [--addr :8000] [-secret-dir DIR] [-cfgmap-dir DIR] [-specialize-on-startup -specialize-request JSON] SHARED_DIR",
		Short: "Run a fetcher: Fission's fetch/upload/specialize API over a shared directory",
		Long: `Run a fetcher: Fission's fetcher API (/fetch, /upload, /specialize,
/healthz, /readiness-healthz) on --addr for SHARED_DIR (/packages in a
builder pod, /userfunc in a function pod). Packages are read from the
kube-apiserver (with --kubeconfig, or in-cluster inside a pod, as Fission's
fetcher does), else through the Isotope API at --server (token from
ISOTOPE_TOKEN, also sent to the storage service). Archives are checked against their sha256 and extracted safely.
With -specialize-on-startup the fetcher specializes the runtime at
--runtime-url with -specialize-request (a FunctionSpecializeRequest) at
start, and /readiness-healthz answers 503 until that succeeded. Secrets and
ConfigMaps named in a fetch (the function's spec.secrets and
spec.configmaps) are read from the same place as Packages and written as
<dir>/<namespace>/<name>/<key> files under -secret-dir and -cfgmap-dir.
Flags may be written with one dash, as Fission's fetcher takes them.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, ok, err := parseSharedDir(cmd, args, "fetcher", "/userfunc")
			if !ok {
				return err
			}
			var startReq *fetcher.FunctionSpecializeRequest
			if specializeOnStartup {
				if specializeReq == "" {
					return errors.New("-specialize-on-startup needs -specialize-request")
				}
				startReq = new(fetcher.FunctionSpecializeRequest)
				if err := json.Unmarshal([]byte(specializeReq), startReq); err != nil {
					return fmt.Errorf("-specialize-request: not a FunctionSpecializeRequest: %w", err)
				}
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			packages, from, err := openRoleStore(g)
			if err != nil {
				return err
			}
			log.Info("fetcher reads Packages", "from", from)
			return server.RunFetcher(cmd.Context(), server.FetcherOptions{
				Addr: addr, SharedDir: dir, SecretDir: secretDir, ConfigDir: cfgmapDir,
				RuntimeURL: runtimeURL, StorageToken: g.Token, Packages: packages,
				SpecializeOnStartup: startReq, Logger: log,
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", ":8000", "listen address (port 0 picks a free port; the real one is logged)")
	fl.StringVar(&secretDir, "secret-dir", fetcher.DefaultSecretDir, "directory receiving secrets as <ns>/<name>/<key> files")
	fl.StringVar(&cfgmapDir, "cfgmap-dir", fetcher.DefaultConfigDir, "directory receiving configmaps as <ns>/<name>/<key> files")
	fl.BoolVar(&specializeOnStartup, "specialize-on-startup", false, "specialize the runtime at startup (newdeploy)")
	fl.StringVar(&specializeReq, "specialize-request", "", "FunctionSpecializeRequest JSON for -specialize-on-startup")
	fl.StringVar(&runtimeURL, "runtime-url", fetcher.DefaultRuntimeURL, "the co-located runtime that /specialize calls")
	return cmd
}
