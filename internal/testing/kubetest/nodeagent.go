package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/nodeagent"
)

// StartNodeAgent runs a node agent (internal/testing/nodeagent, the kubelet's
// test double) against the control plane until the test ends. Its log
// goes to a file (cfg.Log is replaced) whose last lines the test prints
// when it fails.
func (e *Env) StartNodeAgent(t testing.TB, cfg nodeagent.Config) *nodeagent.Agent {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = logf
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := nodeagent.Start(ctx, e.Config, cfg)
	if err != nil {
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop()
		logf.Close()
		if t.Failed() {
			t.Logf("node agent %s log (last lines):\n%s", a.NodeName(), tailFile(logPath, 40))
		}
	})
	return a
}

// tailFile returns the last n lines of the file at path.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
