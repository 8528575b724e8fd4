package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func init() { registerSub("fn", newFnLogsCommand) }

// newFnLogsCommand is `isotope fn logs`: the function's recent output
// (its instances' stdout and stderr, WebAssembly stderr, the platform's
// lines about it), read from the API's /v1/logs; -f keeps following.
func newFnLogsCommand(g *Globals) *cobra.Command {
	var (
		name   string
		follow bool
		count  int
	)
	cmd := &cobra.Command{
		Use:   "logs --name NAME",
		Short: "Show a function's logs (stdout and stderr of its instances)",
		Args:  cobra.NoArgs,
		RunE: runE(g, func(ctx context.Context, cmd *cobra.Command, st store.Store) error {
			if err := requireFlag("name", name); err != nil {
				return err
			}
			if count < 0 {
				return fmt.Errorf("--recordcount must be >= 0, got %d", count)
			}
			// Say so when the function does not exist, rather than print
			// nothing.
			obj, err := st.Get(ctx, v1.KindFunction, g.Namespace, name)
			if err != nil {
				return err
			}
			if g.Kubeconfig != "" {
				// The runtime container is named after the environment.
				return fmt.Errorf("fn logs reads the log store of isotope server; on Kubernetes a function's output is its pods' log: kubectl logs -n %s -l functionName=%s -c %s",
					g.Namespace, name, obj.(*v1.Function).Spec.Environment.Name)
			}
			q := url.Values{}
			q.Set("namespace", g.Namespace)
			q.Set("function", name)
			q.Set("recordcount", strconv.Itoa(count))
			if follow {
				q.Set("follow", "true")
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(g.Server, "/")+"/v1/logs?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			if g.Token != "" {
				req.Header.Set("Authorization", "Bearer "+g.Token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
				return fmt.Errorf("logs of function %s: %s: %s", name, res.Status, strings.TrimSpace(string(msg)))
			}
			_, err = io.Copy(cmd.OutOrStdout(), res.Body)
			if follow && errors.Is(err, context.Canceled) {
				return nil // interrupted while following
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "function name")
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new lines as the function writes them")
	f.IntVar(&count, "recordcount", 20, "number of most recent lines to show (0: all kept)")
	return cmd
}
