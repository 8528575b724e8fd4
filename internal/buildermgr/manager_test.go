package buildermgr_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/builder"
	"isotope.dev/isotope/internal/buildermgr"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
	"isotope.dev/isotope/internal/testing/kubetest"
)

// The test binary doubles as a builder process: with ISOTOPE_TEST_BUILDER
// set it serves the real builder package at ISOTOPE_BUILDER_ADDR, over the
// shared directory given as its last argument, with one built-in build
// command "testbuild" standing in for a language toolchain.
func TestMain(m *testing.M) {
	if os.Getenv("ISOTOPE_TEST_BUILDER") == "1" {
		runTestBuilder()
		return
	}
	// The Kubernetes tests (kube_test.go) share one control plane,
	// stopped when the tests end.
	kubetest.Main(m)
}

func runTestBuilder() {
	shared := os.Args[len(os.Args)-1]
	b := builder.New(builder.Config{
		SharedDir: shared,
		Builtins: map[string]builder.BuiltinFunc{
			// testbuild copies $SRC_PKG to $DEPLOY_PKG, and fails like a
			// compiler when a source file says BROKEN (kube_test.go).
			"testbuild": testBuild,
		},
	})
	srv := &http.Server{Addr: os.Getenv("ISOTOPE_BUILDER_ADDR"), Handler: b.Handler()}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type fixture struct {
	st       *boltstore.Store
	builders *buildermgr.LocalBuilders
	mgr      *buildermgr.Manager
	storage  *httptest.Server
	cancel   context.CancelFunc
	done     chan struct{}
	dbPath   string
}

func newFixture(t *testing.T, dbPath string) *fixture {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "isotope.db")
	}
	st, err := boltstore.Open(dbPath, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := storagesvc.NewLocalBackend(t.TempDir(), storagesvc.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/archive", storagesvc.NewServer(backend, storagesvc.Options{}))
	storage := httptest.NewServer(mux)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	builders, err := buildermgr.NewLocalBuilders(buildermgr.LocalConfig{
		WorkDir:    t.TempDir(),
		Executable: exe,
		Env:        []string{"ISOTOPE_TEST_BUILDER=1"},
		Fetcher:    &fetcher.InProcess{Packages: st, StorageURL: storage.URL},
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	mgr := buildermgr.New(buildermgr.Config{Store: st, Builders: builders, Logger: log, BuilderReadyTimeout: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{st: st, builders: builders, mgr: mgr, storage: storage, cancel: cancel, done: make(chan struct{}), dbPath: dbPath}
	go func() { defer close(f.done); mgr.Run(ctx) }()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) close() {
	f.cancel()
	<-f.done
	f.builders.Close()
	f.storage.Close()
	f.st.Close()
}

// testEnv is an environment whose builder is this test binary.
func testEnv(t *testing.T, name string) *v1.Environment {
	exe, _ := os.Executable()
	env := &v1.Environment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	env.Spec.Version = 3
	env.Spec.Runtime.Image = "isotope/wasm-env"
	env.Spec.Builder.Image = "example.com/test-builder:1"
	env.Spec.Builder.Command = "testbuild"
	env.Spec.Builder.Container = containerCmd(exe)
	return env
}

func sourceZip(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	zw.Close()
	return buf.Bytes()
}

func create(t *testing.T, st store.Store, obj v1.Object) v1.Object {
	t.Helper()
	out, err := st.Create(context.Background(), obj)
	if err != nil {
		t.Fatalf("create %s: %v", obj.GetName(), err)
	}
	return out
}

func pkgWithSource(name, env string, src []byte) *v1.Package {
	p := &v1.Package{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	p.Spec.Environment = v1.EnvironmentReference{Namespace: "default", Name: env}
	p.Spec.Source = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: src}
	return p
}

// waitStatus polls until the package reaches one of the final states.
func waitStatus(t *testing.T, st store.Store, name string) *v1.Package {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := store.GetAs[*v1.Package](context.Background(), st, "default", name)
		if err == nil && (p.Status.BuildStatus == v1.BuildStatusSucceeded || p.Status.BuildStatus == v1.BuildStatusFailed) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("package %s did not finish building: %+v %v", name, p, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func TestBuildSucceedsAndRefreshesFunctions(t *testing.T) {
	f := newFixture(t, "")
	create(t, f.st, testEnv(t, "go"))
	// The function exists before its package is built (a rebuild): the
	// build must point it at the package's new version.
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	fn.Spec.Environment = v1.EnvironmentReference{Name: "go"}
	fn.Spec.Package.PackageRef = v1.PackageRef{Name: "hello"}
	create(t, f.st, fn)
	create(t, f.st, pkgWithSource("hello", "go", sourceZip(t, map[string]string{"hello.go": "package main"})))

	p := waitStatus(t, f.st, "hello")
	if p.Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Fatalf("build %s:\n%s", p.Status.BuildStatus, p.Status.BuildLog)
	}
	if !strings.Contains(p.Status.BuildLog, "compiling") {
		t.Errorf("build log lacks the build's output:\n%s", p.Status.BuildLog)
	}
	d := p.Spec.Deployment
	if d.Type != v1.ArchiveTypeURL || d.URL == "" || len(d.Checksum.Sum) != 64 {
		t.Fatalf("deployment archive not recorded: %+v", d)
	}
	// The deploy archive is downloadable and holds the build output.
	var buf bytes.Buffer
	if _, err := storagesvc.DownloadURL(context.Background(), d.URL, &buf); err != nil {
		t.Fatalf("download deploy archive: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatalf("deploy archive is not a zip: %v", err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "hello.go.out" {
		t.Errorf("deploy archive files: %v", zr.File)
	}
	// The functions are bumped right after the status is written.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ := store.GetAs[*v1.Function](context.Background(), f.st, "default", "hello")
		if got.Spec.Package.PackageRef.ResourceVersion == p.ResourceVersion {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("function packageref.resourceversion = %q, want the package's %q", got.Spec.Package.PackageRef.ResourceVersion, p.ResourceVersion)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func TestFailuresSayWhatToFix(t *testing.T) {
	f := newFixture(t, "")
	create(t, f.st, testEnv(t, "go"))
	noBuilder := testEnv(t, "plain")
	noBuilder.Spec.Builder = v1.Builder{}
	create(t, f.st, noBuilder)
	foreign := testEnv(t, "foreign")
	foreign.Spec.Builder.Container = nil
	create(t, f.st, foreign)
	missing := testEnv(t, "missingprog")
	missing.Spec.Builder.Container = containerCmd("/nonexistent/builder")
	create(t, f.st, missing)

	cases := []struct{ pkg, env, src, want string }{
		{"broken", "go", "BROKEN", "syntax error: unexpected BROKEN"},
		{"noenv", "nosuchenv", "ok", "environment default/nosuchenv does not exist"},
		{"nobuilder", "plain", "ok", "has no builder"},
		{"foreign", "foreign", "ok", "cannot run in embedded mode"},
		{"missingprog", "missingprog", "ok", "not found"},
	}
	for _, c := range cases {
		create(t, f.st, pkgWithSource(c.pkg, c.env, sourceZip(t, map[string]string{"main.go": c.src})))
	}
	for _, c := range cases {
		p := waitStatus(t, f.st, c.pkg)
		if p.Status.BuildStatus != v1.BuildStatusFailed || !strings.Contains(p.Status.BuildLog, c.want) {
			t.Errorf("%s: status %s, log %q; want failed with %q", c.pkg, p.Status.BuildStatus, p.Status.BuildLog, c.want)
		}
	}
}

func TestInterruptedBuildIsRebuiltAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "isotope.db")
	// A package left "running" by a crash.
	st, err := boltstore.Open(db, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	create(t, st, testEnv(t, "go"))
	p := create(t, st, pkgWithSource("hello", "go", sourceZip(t, map[string]string{"a.go": "package main"}))).(*v1.Package)
	p.Status.BuildStatus = v1.BuildStatusRunning
	if _, err := st.UpdateStatus(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	st.Close()

	f := newFixture(t, db)
	got := waitStatus(t, f.st, "hello")
	if got.Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Fatalf("interrupted package ended %s:\n%s", got.Status.BuildStatus, got.Status.BuildLog)
	}
}

func TestEnvironmentUpdateAndDeleteStopBuilders(t *testing.T) {
	f := newFixture(t, "")
	env := create(t, f.st, testEnv(t, "go")).(*v1.Environment)
	first := waitPID(t, f.builders, "default/go", 0)

	env.Spec.Builder.Command = "testbuild again"
	if _, err := f.st.Update(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	second := waitPID(t, f.builders, "default/go", first)
	waitGone(t, first)

	if err := f.st.Delete(context.Background(), v1.KindEnvironment, "default", "go", ""); err != nil {
		t.Fatal(err)
	}
	waitGone(t, second)

	// Close leaves no builder processes behind.
	env2 := testEnv(t, "go2")
	create(t, f.st, env2)
	third := waitPID(t, f.builders, "default/go2", 0)
	f.close()
	waitGone(t, third)
}

// waitPID waits for a builder of key with a PID other than not.
func waitPID(t *testing.T, b *buildermgr.LocalBuilders, key string, not int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pid := b.Running()[key]; pid != 0 && pid != not {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new builder process for %s", key)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// waitGone waits until pid no longer exists.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("builder process %d still running", pid)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
