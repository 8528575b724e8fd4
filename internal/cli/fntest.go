package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func init() { registerSub("fn", newFnTestCommand) }

// newFnTestCommand is `isotope fn test`: one request to a function
// through the router's internal route /fission-function/<ns>/<name>, as
// Fission's `fn test` does. The response body goes to stdout as it
// arrives; an answer of 400 or more ends with a non-zero exit naming the
// status.
func newFnTestCommand(g *Globals) *cobra.Command {
	var (
		name, method, body, subpath string
		headers, query              []string
		timeout                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test --name NAME",
		Short: "Call a function through the router and print its answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag("name", name); err != nil {
				return err
			}
			req, err := fnTestRequest(cmd.Context(), g, name, method, body, subpath, headers, query)
			if err != nil {
				return err
			}
			ctx := req.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
				req = req.WithContext(ctx)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return routerError(g, ctx, timeout, err)
			}
			defer resp.Body.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
				return routerError(g, ctx, timeout, err)
			}
			if resp.StatusCode >= 400 {
				return &exitError{code: 1, msg: fmt.Sprintf("function %s answered %s", name, resp.Status)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "function name")
	f.StringVarP(&method, "method", "m", http.MethodGet, "HTTP method")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Key: value' (repeatable)")
	f.StringVarP(&body, "body", "b", "", "request body")
	f.StringArrayVarP(&query, "query", "q", nil, "query parameter key=value (repeatable)")
	f.StringVar(&subpath, "subpath", "", "path after the function's URL, e.g. /items/1")
	f.DurationVarP(&timeout, "timeout", "t", 60*time.Second, "how long to wait for the answer (0: no limit)")
	return cmd
}

// fnTestRequest builds the request, refusing malformed --header and
// --query values by name.
func fnTestRequest(ctx context.Context, g *Globals, name, method, body, subpath string, headers, query []string) (*http.Request, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	base, err := url.Parse(strings.TrimRight(g.Router, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("--router %q: not an http(s) URL", g.Router)
	}
	if subpath != "" && !strings.HasPrefix(subpath, "/") {
		subpath = "/" + subpath
	}
	sub, rawQuery, _ := strings.Cut(subpath, "?")
	u := *base
	u.Path = base.Path + "/fission-function/" + g.ns() + "/" + name + sub
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("--subpath %q: bad query: %v", subpath, err)
	}
	for _, kv := range query {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--query %q: want key=value", kv)
		}
		q.Add(k, v)
	}
	u.RawQuery = q.Encode()

	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(method), u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("--method %q: %v", method, err)
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--header %q: want 'Key: value'", h)
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if g.Token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	return req, nil
}

// routerError says what went wrong calling the router in one line.
func routerError(g *Globals, ctx context.Context, timeout time.Duration, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("no answer from the function within %v (--timeout)", timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach the Isotope router at %s: is `isotope server` running?", g.Router)
	}
	return fmt.Errorf("calling the router at %s: %s", g.Router, oneLine(err.Error()))
}
