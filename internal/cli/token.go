package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/auth/routerauth"
)

func init() { register(newTokenCommand) }

// newTokenCommand is `isotope token`, Fission's `fission token`: get a
// router token from a router running with --router-auth.
func newTokenCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Router auth tokens"}
	var user, pass, authURI string
	create := &cobra.Command{
		Use:   "create --username U --password P",
		Short: "Log in to the router and print a bearer token for function calls",
		Long: `Log in at the router's login path (POST {"username","password"}) and print
the bearer token it returns. Send it as "Authorization: Bearer <token>" on
function calls; it expires after the router's --router-auth-expiry (120 s
by default). The credentials default to ISOTOPE_ROUTER_USERNAME and
ISOTOPE_ROUTER_PASSWORD.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("username", user); err != nil {
				return err
			}
			if err := requireFlag("password", pass); err != nil {
				return err
			}
			if !strings.HasPrefix(authURI, "/") {
				return fmt.Errorf("--authuri %q: must start with /", authURI)
			}
			body, _ := json.Marshal(routerauth.LoginRequest{Username: user, Password: pass})
			url := strings.TrimRight(g.Router, "/") + authURI
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("--router %q: %w", g.Router, err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("cannot reach the router at %s: %v", g.Router, err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				msg := strings.TrimSpace(string(raw))
				if resp.StatusCode == http.StatusNotFound {
					msg = "no login at " + authURI + " (is the server running with --router-auth?)"
				}
				return fmt.Errorf("login at %s: %s: %s", url, resp.Status, oneLine(msg))
			}
			var tr routerauth.TokenResponse
			if err := json.Unmarshal(raw, &tr); err != nil || tr.AccessToken == "" {
				return fmt.Errorf("login at %s: the answer holds no accesstoken", url)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tr.AccessToken)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&user, "username", envOr(routerauth.EnvUsername, ""), "router username (env "+routerauth.EnvUsername+")")
	f.StringVar(&pass, "password", envOr(routerauth.EnvPassword, ""), "router password (env "+routerauth.EnvPassword+")")
	f.StringVar(&authURI, "authuri", routerauth.DefaultLoginPath, "the router's login path")
	cmd.AddCommand(create)
	return cmd
}
