package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/client"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/kubestore"
)

// openStore returns the store the user commands work on: Isotope's CRDs
// on the kube-apiserver when --kubeconfig is given (the Kubernetes mode,
// as Fission's CLI talks to the cluster), else the Isotope API at
// --server (the embedded mode).
func openStore(g *Globals) (store.Store, error) {
	if g.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", g.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", g.Kubeconfig, err)
		}
		return kubestore.New(cfg, kubestore.Options{})
	}
	return newStoreClient(g.Server, g.Token), nil
}

// openRoleStore is openStore for a role that runs inside a pod (the
// fetcher, the storage service's pruner): without --kubeconfig it uses
// the in-cluster configuration when there is one, as Fission's fetcher
// reads Packages from the kube-apiserver, and the Isotope API otherwise.
func openRoleStore(g *Globals) (store.Store, string, error) {
	if g.Kubeconfig != "" {
		st, err := openStore(g)
		return st, "kubeconfig " + g.Kubeconfig, err
	}
	if cfg, err := rest.InClusterConfig(); err == nil {
		st, err := kubestore.New(cfg, kubestore.Options{})
		return st, "in-cluster kube-apiserver", err
	}
	return newStoreClient(g.Server, g.Token), "Isotope API " + g.Server, nil
}

// storageURL is where archives are uploaded and listed: --storage-url,
// else the API at --server, which mounts the storage service in
// embedded mode.
func (g *Globals) storageURL() string {
	if g.Storage != "" {
		return g.Storage
	}
	return g.Server
}

// storageClient is the storage service client of the user commands.
func (g *Globals) storageClient() *storagesvc.Client {
	return storagesvc.NewClient(g.storageURL(), g.Token)
}

// newStoreClient returns a store client for the API at server.
func newStoreClient(server, token string) store.Store {
	return client.New(server, token, nil)
}

// runE adapts a command body to cobra: the body gets the command's
// context and a store client, and every error it returns is turned into
// one line a user can act on.
func runE(g *Globals, body func(ctx context.Context, cmd *cobra.Command, st store.Store) error) func(*cobra.Command, []string) error {
	return runWith(g, openStore, body)
}

// runWith is runE for a body that needs another client than the store:
// open makes it from the global flags.
func runWith[C any](g *Globals, open func(*Globals) (C, error), body func(ctx context.Context, cmd *cobra.Command, c C) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		c, err := open(g)
		if err != nil {
			return userError(g, err)
		}
		return userError(g, body(ctx, cmd, c))
	}
}

// userError rewrites err into a one-line cause: a refused connection names
// the API URL and the fix (with --kubeconfig, the URL that failed), a
// store error keeps its message (which names the object and the field
// path), anything else is flattened to one line.
func userError(g *Globals, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	if g.Kubeconfig != "" {
		// Not the Isotope API: say which server could not be reached
		// (the kube-apiserver, or the storage service at --storage-url).
		var ue *url.Error
		if errors.As(err, &ue) && store.ReasonOf(err) == "" {
			return fmt.Errorf("cannot reach %s (with --kubeconfig %s): %v", ue.URL, g.Kubeconfig, ue.Err)
		}
		return errors.New(oneLine(err.Error()))
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach the Isotope API at %s: is `isotope server` running?", g.Server)
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	if errors.As(err, &dnsErr) || errors.As(err, &opErr) {
		return fmt.Errorf("cannot reach the Isotope API at %s: %v", g.Server, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) && store.ReasonOf(err) == "" {
		return fmt.Errorf("cannot reach the Isotope API at %s: %v", g.Server, ue.Err)
	}
	return errors.New(oneLine(err.Error()))
}

// oneLine joins the lines of a multi-line message with "; ".
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return s
	}
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// ns is the namespace the command works in.
func (g *Globals) ns() string {
	if g.Namespace == "" {
		return v1.DefaultNamespace
	}
	return g.Namespace
}

// uniqueName returns base-<8 hex chars>, cut to Kubernetes' 63 character
// limit as Fission does for the packages `fn create` makes.
func uniqueName(base string) string {
	suffix := strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	base = kubifyName(base)
	if max := 63 - len(suffix) - 1; len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	if base == "" {
		return suffix
	}
	return base + "-" + suffix
}

// kubifyName lowercases s and replaces what a DNS-1123 label cannot hold
// with '-'.
func kubifyName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// requireFlag fails when a required string flag is empty, naming the flag.
func requireFlag(name, value string) error {
	if strings.TrimSpace(value) == "" {
		return fmt.Errorf("--%s is required", name)
	}
	return nil
}

// parseKeyValues parses "k=v" items (each item may hold several pairs
// separated by commas, as Fission's --labels does) into a map; the flag
// name is used in errors.
func parseKeyValues(flag string, items []string) (map[string]string, error) {
	m := map[string]string{}
	for _, item := range items {
		for _, kv := range strings.Split(item, ",") {
			kv = strings.TrimSpace(kv)
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("--%s: %q is not key=value", flag, kv)
			}
			m[strings.TrimSpace(k)] = v
		}
	}
	return m, nil
}
