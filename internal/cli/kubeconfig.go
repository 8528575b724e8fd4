package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"isotope.dev/isotope/internal/auth/token"
)

func init() { register(newKubeconfigCommand) }

// newKubeconfigCommand is `isotope kubeconfig`: a kubeconfig for
// Kubernetes clients (Fission's CLI, kubectl, client-go programs) that
// points at the embedded API, which serves fission.io/v1 and
// isotope.dev/v1 with Kubernetes discovery.
func newKubeconfigCommand(g *Globals) *cobra.Command {
	var dataDir, contextName string
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a kubeconfig for Fission's CLI and other Kubernetes clients",
		Long: `Print a kubeconfig whose cluster is the Isotope API at --server and whose
user sends the API's bearer token: ISOTOPE_TOKEN when set, otherwise the
token the server generated into <data-dir>/token (a server on a non-loopback
address), otherwise none (a loopback server needs none). The context's
namespace is --namespace.

Fission's own CLI (v1.21) then works against Isotope:

  isotope kubeconfig > ~/.isotope/kubeconfig
  export KUBECONFIG=~/.isotope/kubeconfig FISSION_ROUTER_URL=http://127.0.0.1:8888
  fission env create --name nodejs --image fission/node-env

See docs/fission-cli.md for the commands that work and those that cannot.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := url.Parse(g.Server)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--server %q: want the API's URL, e.g. http://127.0.0.1:8889", g.Server)
			}
			tok := g.Token
			if tok == "" {
				data, err := os.ReadFile(filepath.Join(dataDir, token.FileName))
				switch {
				case err == nil:
					tok = strings.TrimSpace(string(data))
				case !errors.Is(err, fs.ErrNotExist):
					return fmt.Errorf("--data-dir: reading the server's token: %w", err)
				}
			}
			if tok != "" && u.Scheme == "http" {
				fmt.Fprintln(cmd.ErrOrStderr(), "Warning: client-go programs (Fission's CLI, kubectl) send a kubeconfig's token over https only, and this API needs one: "+
					"serve it behind a TLS-terminating proxy and give its https URL as --server, or run the server on a loopback address, where it needs no token")
			}
			out, err := clientcmd.Write(kubeconfigFor(strings.TrimRight(g.Server, "/"), tok, g.Namespace, contextName))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data dir, for its generated token when ISOTOPE_TOKEN is unset")
	cmd.Flags().StringVar(&contextName, "context", "isotope", "name of the cluster, user and context in the kubeconfig")
	return cmd
}

func kubeconfigFor(server, tok, namespace, name string) clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = name
	return *cfg
}
