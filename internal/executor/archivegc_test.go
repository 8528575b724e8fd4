package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// archiveDirs lists the fetched archive dirs of package ns/pkg under the
// wasm runtime's work dir.
func archiveDirs(t *testing.T, f *fixture, ns, pkg string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.m.cfg.WorkDir, "wasm", ns, pkg))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A fetched deploy archive is deleted once no loaded module uses it:
// after a rebuild swaps the instances, and when the function is deleted.
// One shared by two functions stays until both are gone.
func TestOldDeployArchivesAreDeleted(t *testing.T) {
	f, _ := wasmFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	code := func(s string) []byte { return wasmtest.WAGIStatic("Content-Type: text/plain\n\n" + s + "\n") }
	pkg := f.pkg("p", string(code("build 1")), v1.BuildStatusSucceeded)
	a := f.fn("a", "p", nil)
	b := f.fn("b", "p", nil)
	for _, fn := range []*v1.Function{a, b} {
		if body, _ := acquireServe(t, f, fn, "/"); body != "build 1\n" {
			t.Fatalf("%s: %q", fn.Name, body)
		}
	}
	first := archiveDirs(t, f, "default", "p")
	if len(first) != 1 {
		t.Fatalf("archive dirs %v: want one, shared by both functions", first)
	}

	// Rebuild: new deployment, functions bumped.
	pkg.Spec.Deployment.Literal = code("build 2")
	pkg, err := update(ctx, f.st, pkg)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range []*v1.Function{a, b} {
		fn.Spec.Package.PackageRef.ResourceVersion = pkg.ResourceVersion
		nfn, err := update(ctx, f.st, fn)
		if err != nil {
			t.Fatal(err)
		}
		if body, _ := acquireServe(t, f, nfn, "/"); body != "build 2\n" {
			t.Fatalf("%s after the rebuild: %q", fn.Name, body)
		}
	}
	waitFor(t, "the first build's archive to be deleted", func() bool {
		dirs := archiveDirs(t, f, "default", "p")
		return len(dirs) == 1 && dirs[0] != first[0]
	})

	// Deleting one function keeps the archive the other still uses.
	f.m.mu.Lock()
	poolA := f.m.pools[poolID(a)]
	f.m.mu.Unlock()
	if err := f.st.Delete(ctx, v1.KindFunction, "default", "a", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "function a's instances to be retired", func() bool {
		poolA.mu.Lock()
		defer poolA.mu.Unlock()
		return poolA.retired && len(poolA.insts) == 0
	})
	f.m.bg.Wait() // their Close has run
	if dirs := archiveDirs(t, f, "default", "p"); len(dirs) != 1 {
		t.Fatalf("archive dirs %v after deleting one of two functions", dirs)
	}
	if err := f.st.Delete(ctx, v1.KindFunction, "default", "b", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the last archive and its empty parents to be deleted", func() bool {
		_, err := os.Stat(filepath.Join(f.m.cfg.WorkDir, "wasm", "default"))
		return os.IsNotExist(err)
	})
}

// Packages of a namespace whose deploy archives have the same sha256
// share one fetched copy (the fetcher verified the bytes against it),
// kept while any of their functions runs; a package with no checksum, or
// in another namespace, gets its own.
func TestArchivesWithTheSameChecksumAreFetchedOnce(t *testing.T) {
	f, _ := wasmFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.m.Run(ctx)
	code := wasmtest.WAGIStatic("Content-Type: text/plain\n\nshared\n")
	sum := sha256.Sum256(code)
	for _, name := range []string{"p1", "p2"} {
		pkg := f.pkg(name, string(code), v1.BuildStatusSucceeded)
		pkg.Spec.Deployment.Checksum = v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: hex.EncodeToString(sum[:])}
		if _, err := update(ctx, f.st, pkg); err != nil {
			t.Fatal(err)
		}
	}
	f.pkg("p3", string(code), v1.BuildStatusSucceeded) // no checksum
	a, b, c := f.fn("a", "p1", nil), f.fn("b", "p2", nil), f.fn("c", "p3", nil)
	other := f.inNamespace(t, "other", code, hex.EncodeToString(sum[:]))
	for _, fn := range []*v1.Function{a, b, c, other} {
		if body, _ := acquireServe(t, f, fn, "/"); body != "shared\n" {
			t.Fatalf("%s: %q", fn.Name, body)
		}
	}
	shared := filepath.Join(f.m.cfg.WorkDir, "wasm", "default", "_sha256")
	entries, err := os.ReadDir(shared)
	if err != nil || len(entries) != 1 || entries[0].Name() != hex.EncodeToString(sum[:16]) {
		t.Fatalf("%s holds %v (%v): want the one archive both packages name", shared, entries, err)
	}
	if _, err := os.Stat(filepath.Join(f.m.cfg.WorkDir, "wasm", "other", "_sha256", hex.EncodeToString(sum[:16]))); err != nil {
		t.Fatalf("the package in namespace other has no copy of its own: %v", err)
	}
	if dirs := archiveDirs(t, f, "default", "p3"); len(dirs) != 1 {
		t.Fatalf("package p3 (no checksum) has archive dirs %v, want its own", dirs)
	}
	if dirs := archiveDirs(t, f, "default", "p1"); len(dirs) != 0 {
		t.Fatalf("package p1 has its own archive dirs %v besides the shared one", dirs)
	}

	if err := f.st.Delete(ctx, v1.KindFunction, "default", "a", ""); err != nil {
		t.Fatal(err)
	}
	if body, _ := acquireServe(t, f, b, "/"); body != "shared\n" {
		t.Fatalf("b after deleting a: %q", body)
	}
	if err := f.st.Delete(ctx, v1.KindFunction, "default", "b", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shared archive to be deleted with its last function", func() bool {
		_, err := os.Stat(shared)
		return os.IsNotExist(err)
	})
}

// inNamespace stores, in namespace ns, a package whose deployment is code
// with checksum sum and a function of it, and returns the function.
func (f *fixture) inNamespace(t *testing.T, ns string, code []byte, sum string) *v1.Function {
	t.Helper()
	f.create(&v1.Package{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: v1.PackageSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: f.env.Name},
			Deployment: v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: code,
				Checksum: v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: sum}},
		},
		Status: v1.PackageStatus{BuildStatus: v1.BuildStatusSucceeded},
	})
	return f.create(&v1.Function{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "fn"},
		Spec: v1.FunctionSpec{
			Environment: v1.EnvironmentReference{Namespace: "default", Name: f.env.Name},
			Package:     v1.FunctionPackageRef{PackageRef: v1.PackageRef{Namespace: ns, Name: "p"}, FunctionName: "fn"},
		},
	}).(*v1.Function)
}
