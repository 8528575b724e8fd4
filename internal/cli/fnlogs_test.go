package cli

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/apiserver"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/store/boltstore"
)

// newLogsAPI is a real API server with the function log store mounted at
// /v1/logs, as `isotope server` mounts it, and one function "hello".
func newLogsAPI(t *testing.T) (*testAPI, *fnlog.Store) {
	t.Helper()
	bs, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := fnlog.New(fnlog.Limits{})
	mux := http.NewServeMux()
	mux.Handle("/v1/logs", logs.Handler())
	mux.Handle("/", apiserver.New(bs, apiserver.Options{Logger: slog.New(slog.DiscardHandler)}))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		bs.Close()
	})
	_, err = bs.Create(context.Background(), &v1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello"},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: "go"},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Namespace: "default", Name: "hello-pkg"}},
			InvokeStrategy: v1.InvokeStrategy{StrategyType: v1.StrategyTypeExecution,
				ExecutionStrategy: v1.ExecutionStrategy{ExecutorType: v1.ExecutorTypePoolmgr}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{t: t, URL: srv.URL, Store: bs}, logs
}

func TestFnLogsPrintsRecentLines(t *testing.T) {
	a, logs := newLogsAPI(t)
	for _, l := range []string{"one", "two", "three"} {
		logs.Append("default", "hello", "stderr", l)
	}
	out := a.ok("fn", "logs", "--name", "hello", "--recordcount", "2").Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "Z stderr two") || !strings.HasSuffix(lines[1], "Z stderr three") {
		t.Fatalf("fn logs printed:\n%s", out)
	}
	a.fails([]string{"fn", "logs", "--name", "nosuch"}, "nosuch", "not found")
	a.fails([]string{"fn", "logs"}, "--name")
}

func TestFnLogsFollow(t *testing.T) {
	a, logs := newLogsAPI(t)
	logs.Append("default", "hello", "stdout", "before")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	root := NewRootCommand()
	root.SetOut(pw)
	root.SetArgs([]string{"--server", a.URL, "fn", "logs", "--name", "hello", "-f"})
	done := make(chan error, 1)
	go func() {
		done <- root.ExecuteContext(ctx)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	read := func() string {
		t.Helper()
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return strings.TrimSpace(l)
	}
	if l := read(); !strings.HasSuffix(l, "stdout before") {
		t.Fatalf("first line %q", l)
	}
	logs.Append("default", "hello", "stderr", "after")
	if l := read(); !strings.HasSuffix(l, "stderr after") {
		t.Fatalf("followed line %q", l)
	}
	cancel()
	go io.Copy(io.Discard, pr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted follow: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fn logs -f did not stop when interrupted")
	}
}
