// Package cli is the isotope command line: the user commands (env, fn,
// pkg, route, timer, archive, spec) and the role commands that start
// platform processes (server, storagesvc, builder, fetcher, wasm-env).
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Globals are the flags every command shares.
type Globals struct {
	Server    string // API URL (--server, ISOTOPE_URL)
	Router    string // router URL (--router, ISOTOPE_ROUTER_URL)
	Token     string // bearer token (ISOTOPE_TOKEN)
	Namespace string // -n/--namespace
	// Kubeconfig (--kubeconfig, ISOTOPE_KUBECONFIG) makes the commands
	// work on Isotope's CRDs in a Kubernetes cluster instead of the API.
	Kubeconfig string
	// Storage (--storage-url, ISOTOPE_STORAGE_URL) is the storage
	// service for archives; empty means the API at Server.
	Storage string
}

// commandFactories are registered by the files of this package, one per
// command group, so each group lives in its own file.
var commandFactories []func(*Globals) *cobra.Command

func register(f func(*Globals) *cobra.Command) {
	commandFactories = append(commandFactories, f)
}

// subcommandFactories add subcommands to a group made in another file
// (e.g. "fn" gets "logs" and "test" from the files that own logs and
// invocation), keyed by the group's name.
var subcommandFactories = map[string][]func(*Globals) *cobra.Command{}

func registerSub(parent string, f func(*Globals) *cobra.Command) {
	subcommandFactories[parent] = append(subcommandFactories[parent], f)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// NewRootCommand builds the whole command tree.
func NewRootCommand() *cobra.Command {
	g := &Globals{}
	root := &cobra.Command{
		Use:           "isotope",
		Short:         "Isotope: a serverless function platform with a WebAssembly runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.Server, "server", envOr("ISOTOPE_URL", "http://127.0.0.1:8889"), "Isotope API URL (env ISOTOPE_URL)")
	pf.StringVar(&g.Router, "router", envOr("ISOTOPE_ROUTER_URL", "http://127.0.0.1:8888"), "Isotope router URL (env ISOTOPE_ROUTER_URL)")
	pf.StringVarP(&g.Namespace, "namespace", "n", "default", "namespace of the resources")
	pf.StringVar(&g.Kubeconfig, "kubeconfig", os.Getenv("ISOTOPE_KUBECONFIG"), "work on Isotope's CRDs in the cluster of this kubeconfig instead of the API at --server (env ISOTOPE_KUBECONFIG)")
	pf.StringVar(&g.Storage, "storage-url", os.Getenv("ISOTOPE_STORAGE_URL"), "storage service URL for archives (env ISOTOPE_STORAGE_URL; default: the API at --server)")
	g.Token = os.Getenv("ISOTOPE_TOKEN")
	for _, f := range commandFactories {
		root.AddCommand(f(g))
	}
	for _, c := range root.Commands() {
		for _, f := range subcommandFactories[c.Name()] {
			c.AddCommand(f(g))
		}
	}
	strict(root)
	root.SetFlagErrorFunc(flagError)
	return root
}

// Main runs the CLI and returns the process exit code. Every failure is
// reported as one line on stderr.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRootCommand()
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "Error:", ee.msg)
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// exitError ends the process with a chosen code (e.g. a failed build).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
