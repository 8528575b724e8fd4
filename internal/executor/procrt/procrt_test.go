package procrt_test

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/executor/procrt"
	"isotope.dev/isotope/internal/executor/proctest"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/netns"
	"isotope.dev/isotope/internal/store/boltstore"
)

func TestMain(m *testing.M) {
	// This test binary is also the network namespace shim, as the
	// isotope binary is for the server.
	if len(os.Args) > 1 && os.Args[1] == netns.ShimCommand {
		os.Exit(netns.ShimMain(os.Args[2:]))
	}
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

type fixture struct {
	rt   *procrt.Runtime
	logs *fnlog.Store
	st   *boltstore.Store
	work string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "store.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := fnlog.New(fnlog.Limits{})
	work := filepath.Join(dir, "work")
	rt := procrt.New(procrt.Config{
		WorkDir: work,
		Fetcher: &fetcher.InProcess{Packages: st},
		Logs:    logs,
	})
	return &fixture{rt: rt, logs: logs, st: st, work: work}
}

// function stores a package whose deploy archive is deploy and returns
// the function/env/package triple.
func (f *fixture) function(t *testing.T, env *v1.Environment, deploy []byte) instance.Function {
	t.Helper()
	pkg := &v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p-" + env.Name},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: env.Namespace, Name: env.Name},
			Deployment:  v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: deploy},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusNone},
	}
	obj, err := f.st.Create(context.Background(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	fn := &v1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fn-" + env.Name, UID: "uid-1"},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Namespace: env.Namespace, Name: env.Name},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Namespace: "default", Name: pkg.Name}, FunctionName: "Handler"},
		},
	}
	return instance.Function{Fn: fn, Env: env, Pkg: obj.(*v1.Package)}
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, res.Status, b)
	}
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type pider interface{ PID() int }

func TestV2SpecializeServesTheFetchedFileAndLogsOutput(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "v2env", 2, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	pid := inst.(pider).PID()
	fn := f.function(t, env, []byte("hello from v2"))
	if err := inst.Specialize(ctx, fn); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	if got := get(t, srv.URL+"/"); got != "hello from v2" {
		t.Fatalf("body %q", got)
	}
	get(t, srv.URL+"/?stderr=something+went+wrong")
	waitFor(t, "stderr line in the function log", func() bool {
		for _, l := range f.logs.Tail("default", fn.Fn.Name, 0) {
			if l.Stream == "stderr" && l.Text == "something went wrong" {
				return true
			}
		}
		return false
	})
	// Output printed before specialization reaches the log too.
	var banner bool
	for _, l := range f.logs.Tail("default", fn.Fn.Name, 0) {
		banner = banner || (l.Stream == "stdout" && strings.HasPrefix(l.Text, "envserver listening on"))
	}
	if !banner {
		t.Fatalf("start banner missing from log: %v", f.logs.Tail("default", fn.Fn.Name, 0))
	}
	if err := inst.Specialize(ctx, fn); err == nil {
		t.Fatal("second specialization accepted")
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if !proctest.ProcessGone(pid) {
		t.Fatalf("process %d still exists after Close", pid)
	}
	if inst.Alive() {
		t.Fatal("closed instance reports alive")
	}
	if entries, _ := os.ReadDir(f.work); len(entries) != 0 {
		t.Fatalf("instance directories left: %v", entries)
	}
}

// A runtime program inherits PATH and the like from the server, never the
// server's credentials.
func TestProgramDoesNotInheritServerSecrets(t *testing.T) {
	t.Setenv("ISOTOPE_TOKEN", "server-secret")
	t.Setenv("ISOTOPE_INTERNAL_AUTH_SECRET", "internal-secret")
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "secrets", 2, map[string]string{"GREETING": "hi"})
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Specialize(ctx, f.function(t, env, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	for name, want := range map[string]string{
		"ISOTOPE_TOKEN": "", "ISOTOPE_INTERNAL_AUTH_SECRET": "",
		"GREETING": "hi", "PATH": os.Getenv("PATH"),
	} {
		if got := get(t, srv.URL+"/?env="+name); got != want {
			t.Errorf("function sees %s=%q, want %q", name, got, want)
		}
	}
}

func TestV1SpecializeLoadsUserfuncUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "v1env", 1, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Specialize(ctx, f.function(t, env, []byte("v1 code"))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	if got := get(t, srv.URL+"/x"); got != "v1 code" {
		t.Fatalf("body %q", got)
	}
}

func TestZipArchiveIsExtractedAndEntrypointPassed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("Handler")
	io.WriteString(w, "from the zip")
	zw.Close()
	env := proctest.Environment(t, "default", "zipenv", 3, map[string]string{"GREETING": "hi", "ARG": "$(PORT)"})
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Specialize(ctx, f.function(t, env, buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	if got := get(t, srv.URL+"/"); got != "from the zip" {
		t.Fatalf("body %q", got)
	}
}

func TestProxyStreamsBodiesAndForwardsHeaders(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "echoenv", 2, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Specialize(ctx, f.function(t, env, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(inst)
	defer srv.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	res, err := http.Post(srv.URL+"/?echo", "application/octet-stream", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, big) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(big))
	}
	req, _ := http.NewRequest("GET", srv.URL+"/?header=X-Fission-Function-Name", nil)
	req.Header.Set("X-Fission-Function-Name", "fn-echoenv")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "fn-echoenv" {
		t.Fatalf("header not forwarded: %q", b)
	}
}

func TestDeadProcessMakesInstanceNotAlive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	env := proctest.Environment(t, "default", "dying", 2, nil)
	inst, err := f.rt.Start(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if err := inst.Specialize(ctx, f.function(t, env, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(inst.(pider).PID(), syscall.SIGKILL)
	waitFor(t, "instance to notice its process died", func() bool { return !inst.Alive() })
	rec := httptest.NewRecorder()
	inst.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("request to a dead instance: %d, want 502", rec.Code)
	}
}

func TestStartFailuresSayWhy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	noCmd := proctest.Environment(t, "default", "nocmd", 2, nil)
	noCmd.Spec.Runtime.Container = nil
	noCmd.Spec.Runtime.Image = "fission/python-env"
	_, err := f.rt.Start(ctx, noCmd)
	if err == nil || !strings.Contains(err.Error(), "--runtime-command") || !strings.Contains(err.Error(), "fission/python-env") {
		t.Fatalf("no-command error = %v", err)
	}

	exits := proctest.Environment(t, "default", "exits", 2, nil)
	exits.Spec.Runtime.Container = &corev1.Container{Command: []string{"sh", "-c", "echo cannot start: missing thing >&2; exit 3"}}
	_, err = f.rt.Start(ctx, exits)
	if err == nil || !strings.Contains(err.Error(), "cannot start: missing thing") {
		t.Fatalf("exiting command error = %v", err)
	}

	missing := proctest.Environment(t, "default", "missing", 2, nil)
	missing.Spec.Runtime.Container = &corev1.Container{Command: []string{"/nonexistent/runtime"}}
	if _, err = f.rt.Start(ctx, missing); err == nil || !strings.Contains(err.Error(), "/nonexistent/runtime") {
		t.Fatalf("missing command error = %v", err)
	}
	if entries, _ := os.ReadDir(f.work); len(entries) != 0 {
		t.Fatalf("failed starts left directories: %v", entries)
	}
}
