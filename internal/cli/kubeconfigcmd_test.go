package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// isotope kubeconfig points at --server with the token of ISOTOPE_TOKEN,
// else the data dir's, else none; it warns that client-go sends no token
// over plain http, and refuses a --server that is not a URL.
func TestKubeconfigCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ISOTOPE_TOKEN", "")
	load := func(args ...string) (*clientcmdConfig, string) {
		t.Helper()
		out, err := execute(append([]string{"kubeconfig", "--data-dir", dir}, args...)...)
		if err != nil {
			t.Fatalf("kubeconfig %v: %v\n%s", args, err, out)
		}
		// execute mixes stdout and stderr: the warning comes first.
		warn, yaml, _ := strings.Cut(out, "apiVersion: v1")
		cfg, err := clientcmd.Load([]byte("apiVersion: v1" + yaml))
		if err != nil {
			t.Fatalf("not a kubeconfig: %v\n%s", err, out)
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		return &clientcmdConfig{server: cfg.Clusters[ctx.Cluster].Server, token: cfg.AuthInfos[ctx.AuthInfo].Token, namespace: ctx.Namespace}, warn
	}
	if c, warn := load("--server", "http://127.0.0.1:9999/", "-n", "team"); c.server != "http://127.0.0.1:9999" || c.token != "" || c.namespace != "team" || warn != "" {
		t.Errorf("no token anywhere: %+v %q", c, warn)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, warn := load("--server", "https://api.example:8889"); c.token != "fromfile" || warn != "" {
		t.Errorf("data dir token over https: %+v %q", c, warn)
	}
	t.Setenv("ISOTOPE_TOKEN", "fromenv")
	if c, warn := load(); c.token != "fromenv" || !strings.Contains(warn, "https only") {
		t.Errorf("ISOTOPE_TOKEN over http: %+v, warning %q", c, warn)
	}
	for _, bad := range []string{"127.0.0.1:8889", "ftp://x", "http://"} {
		if _, err := execute("kubeconfig", "--server", bad); err == nil || !strings.Contains(err.Error(), "--server") {
			t.Errorf("--server %q: %v, want an error naming --server", bad, err)
		}
	}
	if _, err := execute("kubeconfg"); err == nil || !strings.Contains(err.Error(), `did you mean "kubeconfig"`) {
		t.Errorf("typo: %v", err)
	}
}

type clientcmdConfig struct{ server, token, namespace string }

// migrate fission needs a cluster: without --kubeconfig outside a pod it
// says so; a missing kubeconfig file is named.
func TestMigrateFissionNeedsACluster(t *testing.T) {
	t.Setenv("ISOTOPE_KUBECONFIG", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := execute("migrate", "fission"); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("migrate fission without a cluster: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := execute("--kubeconfig", missing, "migrate", "fission"); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("migrate fission with a missing kubeconfig: %v", err)
	}
	if _, err := execute("migrate", "fision"); err == nil || !strings.Contains(err.Error(), `did you mean "fission"`) {
		t.Errorf("typo: %v", err)
	}
}
