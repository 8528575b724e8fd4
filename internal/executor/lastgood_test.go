package executor

import (
	"context"
	"net/http"
	"strings"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// While a package is rebuilt (pending, running) its functions keep
// serving the previous build, which spec.deployment still holds; when
// the rebuild fails they keep serving it and the function log says the
// latest build failed; when it succeeds they serve the new one. Only a
// package with no build yet answers 503. See
// docs/decisions/0005-serve-last-good-build.md.
func TestRebuildServesTheLastGoodBuild(t *testing.T) {
	f, _ := wasmFixture(t)
	ctx := context.Background()
	v1code := func(s string) []byte { return wasmtest.WAGIStatic("Content-Type: text/plain\n\n" + s + "\n") }
	pkg := f.pkg("p", string(v1code("build 1")), v1.BuildStatusSucceeded)
	warm := f.fn("warm", "p", nil)
	if body, _ := acquireServe(t, f, warm, "/"); body != "build 1\n" {
		t.Fatalf("before the rebuild: %q", body)
	}

	setStatus := func(st v1.BuildStatus) {
		t.Helper()
		cur, err := f.st.Get(ctx, v1.KindPackage, "default", "p")
		if err != nil {
			t.Fatal(err)
		}
		p := cur.(*v1.Package)
		p.Status.BuildStatus = st
		p.Status.BuildLog = "log of the " + string(st) + " build"
		if _, err := f.st.UpdateStatus(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// A new source was submitted: the rebuild is pending, then running.
	// Functions already warm and functions loaded now both serve build 1
	// (the fetch goes through Fission's fetcher, which itself refuses a
	// deployment of a package that is not succeeded or none).
	for _, st := range []v1.BuildStatus{v1.BuildStatusPending, v1.BuildStatusRunning} {
		setStatus(st)
		fresh := f.fn("during-"+string(st), "p", nil)
		for _, fn := range []*v1.Function{warm, fresh} {
			if body, _ := acquireServe(t, f, fn, "/"); body != "build 1\n" {
				t.Fatalf("%s while %s: %q, want the previous build", fn.Name, st, body)
			}
		}
	}

	// The rebuild failed: still build 1, and the log says so.
	setStatus(v1.BuildStatusFailed)
	afterFail := f.fn("after-fail", "p", nil)
	if body, _ := acquireServe(t, f, afterFail, "/"); body != "build 1\n" {
		t.Fatalf("after a failed rebuild: %q, want the last good build", body)
	}
	var noted bool
	for _, ln := range f.logs.Tail("default", "after-fail", 0) {
		noted = noted || (ln.Stream == "host" && strings.Contains(ln.Text, "the latest build of package default/p failed") &&
			strings.Contains(ln.Text, "serving its last successful build"))
	}
	if !noted {
		t.Fatalf("function log does not say the latest build failed: %v", f.logs.Tail("default", "after-fail", 0))
	}

	// The next rebuild succeeds: the builder manager replaces the
	// deployment, sets succeeded and bumps the functions.
	cur, err := f.st.Get(ctx, v1.KindPackage, "default", "p")
	if err != nil {
		t.Fatal(err)
	}
	pkg = cur.(*v1.Package)
	pkg.Spec.Deployment.Literal = v1code("build 2")
	if pkg, err = update(ctx, f.st, pkg); err != nil {
		t.Fatal(err)
	}
	setStatus(v1.BuildStatusSucceeded)
	warm.Spec.Package.PackageRef.ResourceVersion = pkg.ResourceVersion
	if warm, err = update(ctx, f.st, warm); err != nil {
		t.Fatal(err)
	}
	if body, _ := acquireServe(t, f, warm, "/"); body != "build 2\n" {
		t.Fatalf("after the rebuild succeeded: %q", body)
	}

	// A first build has nothing to serve yet.
	f.pkg("new", "", v1.BuildStatusRunning)
	_, err = f.m.Acquire(ctx, f.fn("first", "new", nil))
	if CodeOf(err) != http.StatusServiceUnavailable || err == nil || !strings.Contains(err.Error(), `build status is "running" (its first build)`) {
		t.Fatalf("first build: %v (code %d)", err, CodeOf(err))
	}
}
