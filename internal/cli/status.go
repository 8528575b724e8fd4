package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/client-go/tools/clientcmd"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/router"
	"isotope.dev/isotope/internal/status"
	"isotope.dev/isotope/internal/store/kubestore"
)

func init() { register(newStatusCommand) }

func newStatusCommand(g *Globals) *cobra.Command {
	var output string
	var watch bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "status [-o json] [--watch]",
		Short: "Show every function at a glance: routes, build, instances, requests, errors, latency, last error",
		Long: `Show one table with a row per function: its environment, executor type,
routes, package build state, live instances, requests, errors and p50/p99
latency over the last 5 and 60 minutes, and its last error: the dashboard's
overview (/ui/) in the terminal. Every namespace unless -n is given.

Traffic and instances come from the router's windowed stats: through the
API's /v2/status, or with --kubeconfig from the router at --router.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != formatJSON {
				return userError(g, fmt.Errorf("--output: unknown format %q (want json)", output))
			}
			if watch && interval < 100*time.Millisecond {
				return userError(g, fmt.Errorf("--interval %s: give at least 100ms", interval))
			}
			ns := ""
			if f := cmd.Flag("namespace"); f != nil && f.Changed {
				ns = g.ns()
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			out := cmd.OutOrStdout()
			clear := watch && isTerminal(out)
			for {
				rep, err := fetchStatus(ctx, g, ns)
				if err != nil {
					return userError(g, err)
				}
				if clear {
					io.WriteString(out, "\x1b[H\x1b[2J")
				}
				if output == formatJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					if err := enc.Encode(rep); err != nil {
						return err
					}
				} else if err := printStatus(out, rep, ns == ""); err != nil {
					return err
				}
				if !watch {
					return nil
				}
				if !clear && output != formatJSON {
					fmt.Fprintln(out)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (default: a table)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "print the status again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch prints")
	return cmd
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// fetchStatus reads the status report: from the API's /v2/status, or
// with --kubeconfig built here from the kube-apiserver and the router's
// stats at --router.
func fetchStatus(ctx context.Context, g *Globals, ns string) (*status.Report, error) {
	if g.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", g.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", g.Kubeconfig, err)
		}
		st, err := kubestore.New(cfg, kubestore.Options{})
		if err != nil {
			return nil, err
		}
		return status.Build(ctx, st, &router.StatsClient{URL: strings.TrimRight(g.Router, "/")}, status.Options{Namespace: ns})
	}
	u := strings.TrimRight(g.Server, "/") + status.Path
	if ns != "" {
		u += "?" + url.Values{"namespace": {ns}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("--server %s: %w", g.Server, err)
	}
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("the Isotope API at %s refused the request: set ISOTOPE_TOKEN to the server's token", g.Server)
		}
		return nil, fmt.Errorf("status from %s: %s: %s", g.Server, resp.Status, msg)
	}
	var rep status.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("status from %s: %w", g.Server, err)
	}
	return &rep, nil
}

// statusHeaders are the status table's columns (fn list -o wide too).
var statusHeaders = []string{"NAME", "ENV", "EXECUTOR", "ROUTES", "BUILD", "INSTANCES",
	"REQ(5M)", "ERR(5M)", "P50(5M)", "P99(5M)", "REQ(60M)", "ERR(60M)", "P50(60M)", "P99(60M)", "LAST ERROR"}

func printStatus(w io.Writer, rep *status.Report, withNS bool) error {
	if rep.StatsError != "" {
		fmt.Fprintf(w, "warning: traffic and instances are unknown: %s\n", rep.StatsError)
	}
	headers := statusHeaders
	if withNS {
		headers = append([]string{"NAMESPACE"}, headers...)
	}
	t := newTable(w, headers...)
	for _, f := range rep.Functions {
		row := statusRow(f)
		if withNS {
			row = append([]string{f.Namespace}, row...)
		}
		t.row(row...)
	}
	return t.flush()
}

func statusRow(f status.Function) []string {
	routes := strings.Join(f.Routes, " ")
	if routes == "" {
		routes = "-"
	}
	build := f.BuildStatus
	if build == "" {
		build = "-"
	}
	inst := strconv.Itoa(f.Instances)
	if f.Busy > 0 {
		inst += fmt.Sprintf(" (%d busy)", f.Busy)
	}
	lastErr := "-"
	if e := f.LastError; e != nil {
		lastErr = fmt.Sprintf("%d %s %s (%s ago)", e.Code, e.Message, e.Path, time.Since(e.Time).Truncate(time.Second))
	}
	return []string{f.Name, f.Environment, f.ExecutorType, routes, build, inst,
		strconv.FormatInt(f.Last5m.Requests, 10), strconv.FormatInt(f.Last5m.Errors, 10), latency(f.Last5m.P50Ms), latency(f.Last5m.P99Ms),
		strconv.FormatInt(f.Last60m.Requests, 10), strconv.FormatInt(f.Last60m.Errors, 10), latency(f.Last60m.P50Ms), latency(f.Last60m.P99Ms),
		lastErr}
}

// latency prints milliseconds as a Go duration rounded to 3 digits.
func latency(ms float64) string {
	if ms == 0 {
		return "-"
	}
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// printWide is `fn list -o wide`: the status table's columns for the
// functions listed.
func printWide(ctx context.Context, g *Globals, out io.Writer, fns []*v1.Function, all bool) error {
	ns := g.ns()
	if all {
		ns = ""
	}
	rep, err := fetchStatus(ctx, g, ns)
	if err != nil {
		return err
	}
	keep := map[[2]string]bool{}
	for _, fn := range fns {
		keep[[2]string{fn.Namespace, fn.Name}] = true
	}
	kept := rep.Functions[:0]
	for _, f := range rep.Functions {
		if keep[[2]string{f.Namespace, f.Name}] {
			kept = append(kept, f)
		}
	}
	rep.Functions = kept
	return printStatus(out, rep, all)
}
