package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func zipNames(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return names
}

// fakeBuilder stands in for the builder manager (another part of
// Isotope): it watches packages and takes each pending one through
// running to succeeded, or to failed when its build command is "fail",
// writing a build log that grows line by line.
func fakeBuilder(t *testing.T, st store.Store) { fakeBuilderGated(t, st, nil) }

// fakeBuilderGated is fakeBuilder that leaves a package whose build
// command is "gated" pending until gate is closed.
func fakeBuilderGated(t *testing.T, st store.Store, gate <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	w, err := st.Watch(ctx, v1.KindPackage, store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Package)
			if !ok || ev.Type == store.Deleted || p.Status.BuildStatus != v1.BuildStatusPending {
				continue
			}
			if p.Spec.BuildCommand == "gated" && gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
					return
				}
			}
			steps := []v1.PackageStatus{
				{BuildStatus: v1.BuildStatusRunning},
				{BuildStatus: v1.BuildStatusRunning, BuildLog: "compiling " + p.Name + "\n"},
				{BuildStatus: v1.BuildStatusRunning, BuildLog: "compiling " + p.Name + "\nlinking\n"},
			}
			end := v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded, BuildLog: "compiling " + p.Name + "\nlinking\ndone\n"}
			if p.Spec.BuildCommand == "fail" {
				end = v1.PackageStatus{BuildStatus: v1.BuildStatusFailed, BuildLog: "compiling " + p.Name + "\nlinking\nhello.go:3: undefined: x\n"}
			}
			for _, s := range append(steps, end) {
				cur, err := store.GetAs[*v1.Package](ctx, st, p.Namespace, p.Name)
				if err != nil {
					return
				}
				s.LastUpdateTimestamp = metav1.Now()
				cur.Status = s
				if _, err := st.UpdateStatus(ctx, cur); err != nil {
					t.Errorf("fake builder: %v", err)
					return
				}
			}
		}
	}()
}

func TestPkgCreateWaitsForTheBuildAndStreamsTheLog(t *testing.T) {
	a := newTestAPI(t)
	gate := make(chan struct{})
	fakeBuilderGated(t, a.Store, gate)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	src := writeFile(t, "hello.go", "package main\n")

	r := a.ok("pkg", "create", "--name", "good", "--env", "go", "--src", src)
	if !strings.Contains(r.Stdout, "compiling good\nlinking\ndone\n") || strings.Count(r.Stdout, "compiling good") != 1 {
		t.Errorf("build log on stdout printed wrong:\n%s", r.Stdout)
	}
	for _, s := range []string{"package 'good': pending", "package 'good': running", "package 'good': succeeded"} {
		if !strings.Contains(r.Stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.Stderr)
		}
	}

	r = a.fails([]string{"pkg", "create", "--name", "bad", "--env", "go", "--src", src, "--buildcmd", "fail"}, "package 'bad' build failed")
	if !strings.Contains(r.Stdout, "hello.go:3: undefined: x") || !strings.Contains(r.Stderr, "package 'bad': failed") {
		t.Errorf("failed build output:\nstdout %s\nstderr %s", r.Stdout, r.Stderr)
	}
	if info := a.ok("pkg", "info", "--name", "bad").Stdout; !strings.Contains(info, "failed") || !strings.Contains(info, "undefined: x") {
		t.Errorf("pkg info:\n%s", info)
	}
	if out := a.ok("pkg", "list", "--status", "failed").Stdout; !strings.Contains(out, "bad") || strings.Contains(out, "good") {
		t.Errorf("pkg list --status failed:\n%s", out)
	}

	// fn create --src waits the same way.
	r = a.ok("fn", "create", "--name", "hello", "--env", "go", "--src", src, "--entrypoint", "Handler")
	if !strings.Contains(r.Stdout, "function 'hello' created") || !strings.Contains(r.Stderr, "succeeded") {
		t.Errorf("fn create --src:\nstdout %s\nstderr %s", r.Stdout, r.Stderr)
	}

	// rebuild: a succeeded package needs --force; a failed one is rebuilt.
	a.fails([]string{"pkg", "rebuild", "--name", "good"}, "--force")
	a.ok("pkg", "rebuild", "--name", "good", "--force")
	// The build stays pending until the rebuild has started to wait: its
	// first try at the live build log (404 here) opens the gate.
	var once sync.Once
	a.handle("/v1/buildlogs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(gate) })
		http.NotFound(w, r)
	}))
	a.ok("pkg", "update", "--name", "bad", "--buildcmd", "gated", "--no-wait")
	r = a.ok("pkg", "rebuild", "--name", "bad") // pending already: waits for it
	if getPkg(t, a, "bad").Status.BuildStatus != v1.BuildStatusSucceeded {
		t.Errorf("bad after rebuild: %+v\n%s", getPkg(t, a, "bad").Status, r.Stderr)
	}
}

func TestBuildWaitUsesTheLiveLogEndpointWhenThereIsOne(t *testing.T) {
	a := newTestAPI(t)
	fakeBuilder(t, a.Store)
	var asked sync.Map
	a.handle("/v1/buildlogs", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		asked.Store(q.Get("namespace")+"/"+q.Get("name")+"/"+q.Get("follow"), true)
		fmt.Fprintf(w, "live: building %s\nlive: done\n", q.Get("name"))
	}))
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	r := a.ok("pkg", "create", "--name", "live", "--env", "go", "--src", writeFile(t, "hello.go", "package main\n"))
	if _, ok := asked.Load("default/live/true"); !ok {
		t.Error("the live log endpoint was not asked with namespace, name and follow=true")
	}
	if !strings.Contains(r.Stdout, "live: building live\nlive: done\n") || strings.Contains(r.Stdout, "compiling") {
		t.Errorf("stdout should hold the live log only:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stderr, "succeeded") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
}

func TestFnCreateNoWaitReturnsAtOnce(t *testing.T) {
	a := newTestAPI(t) // no builder at all: waiting would never end
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	r := a.ok("fn", "create", "--name", "hello", "--env", "go", "--src", writeFile(t, "hello.go", "package main\n"), "--no-wait")
	if !strings.Contains(r.Stdout, "function 'hello' created") {
		t.Errorf("stdout: %s", r.Stdout)
	}
	if p := getPkg(t, a, getFn(t, a, "hello").Spec.Package.PackageRef.Name); p.Status.BuildStatus != v1.BuildStatusPending {
		t.Errorf("status = %q", p.Status.BuildStatus)
	}
}
