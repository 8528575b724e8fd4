package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With --kubeconfig the commands talk to the cluster it names: an
// unreachable kube-apiserver is named in the error (not the Isotope API,
// which is not involved), and a missing kubeconfig file names the flag.
func TestKubeconfigErrorsNameTheCluster(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		root := NewRootCommand()
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(args)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return root.ExecuteContext(ctx)
	}
	err := run("--kubeconfig", kc, "--server", "http://127.0.0.1:2", "env", "list")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "Isotope API") {
		t.Errorf("env list against an unreachable cluster: %v", err)
	}
	err = run("--kubeconfig", filepath.Join(dir, "missing"), "env", "list")
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("env list with a missing kubeconfig: %v", err)
	}
}
