package wasmrt

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// countingFetcher is the real in-process fetcher, counting its fetches.
type countingFetcher struct {
	fetcher.InProcess
	n atomic.Int32
}

func (c *countingFetcher) FetchDeployment(ctx context.Context, pkg *v1.Package, dir, filename string, keep bool) error {
	c.n.Add(1)
	return c.InProcess.FetchDeployment(ctx, pkg, dir, filename, keep)
}

type sharing struct {
	t     *testing.T
	rt    *Runtime
	fetch *countingFetcher
	work  string
	env   *v1.Environment
}

func newSharing(t *testing.T) *sharing {
	t.Helper()
	w, err := wasm.NewRuntime(context.Background(), wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	s := &sharing{t: t, fetch: &countingFetcher{}, work: t.TempDir(),
		env: &v1.Environment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "wasm"}}}
	s.rt = New(Config{Wasm: w, WorkDir: s.work, Fetcher: s.fetch})
	return s
}

// deployZip is a deploy archive holding one WAGI module answering body.
func deployZip(t *testing.T, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	f, err := zw.Create("main.wasm")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(wasmtest.WAGIStatic("Content-Type: text/plain\n\n" + body))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// pkg is a package whose literal deploy archive is archive, claiming
// checksum sum ("" for none).
func pkg(ns, name string, archive []byte, sum string) *v1.Package {
	p := &v1.Package{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"}}
	p.Spec.Deployment = v1.Archive{Type: v1.ArchiveTypeLiteral, Literal: archive}
	if sum != "" {
		p.Spec.Deployment.Checksum = v1.Checksum{Type: v1.ChecksumTypeSHA256, Sum: sum}
	}
	p.Status.BuildStatus = v1.BuildStatusSucceeded
	return p
}

// specialize starts an instance for a function of p and checks it
// answers want (with Errorf: it runs on other goroutines too).
func (s *sharing) specialize(p *v1.Package, want string) instance.Instance {
	s.t.Helper()
	ins, _ := s.rt.Start(context.Background(), s.env) // no error with a runtime configured
	fn := &v1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: "fn-" + p.Name}}
	if err := ins.Specialize(context.Background(), instance.Function{Fn: fn, Env: s.env, Pkg: p}); err != nil {
		s.t.Errorf("specialize %s/%s: %v", p.Namespace, p.Name, err)
		return ins
	}
	rec := httptest.NewRecorder()
	ins.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 200 || rec.Body.String() != want {
		s.t.Errorf("%s/%s answered %d %q, want %q", p.Namespace, p.Name, rec.Code, rec.Body.String(), want)
	}
	return ins
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Packages of one namespace with the same sha256 share one fetched copy;
// another namespace fetches its own; the copy goes with its last user.
func TestArchiveSharedWithinNamespaceOnly(t *testing.T) {
	s := newSharing(t)
	a := deployZip(t, "same code")
	sa := sum(a)
	i1 := s.specialize(pkg("ns1", "a", a, sa), "same code")
	i2 := s.specialize(pkg("ns1", "b", a, sa), "same code")
	if n := s.fetch.n.Load(); n != 1 {
		t.Errorf("two packages of ns1 with one checksum: %d fetches, want 1", n)
	}
	i3 := s.specialize(pkg("ns2", "c", a, sa), "same code")
	if n := s.fetch.n.Load(); n != 2 {
		t.Errorf("the same checksum in ns2: %d fetches in all, want 2", n)
	}
	shared := filepath.Join(s.work, "ns1", "_sha256", sa[:32])
	if !exists(shared) || !exists(filepath.Join(s.work, "ns2", "_sha256", sa[:32])) {
		t.Fatalf("archive dirs missing under %s", s.work)
	}
	i1.Close()
	if !exists(shared) {
		t.Error("the shared copy went while package b still uses it")
	}
	i2.Close()
	if exists(filepath.Join(s.work, "ns1")) {
		t.Error("ns1's copy (and its empty parents) outlived its last instance")
	}
	i3.Close()
	if entries, _ := os.ReadDir(s.work); len(entries) != 0 {
		t.Errorf("work dir not empty after every instance closed: %v", entries)
	}
}

// Naming another package's checksum over other bytes gets nothing: the
// fetcher refuses the mismatch, and the honest package still fetches
// and serves its own code.
func TestChecksumOfOtherCodeIsRefused(t *testing.T) {
	s := newSharing(t)
	good, evil := deployZip(t, "good"), deployZip(t, "evil")
	ins, _ := s.rt.Start(context.Background(), s.env)
	err := ins.Specialize(context.Background(), instance.Function{
		Fn: &v1.Function{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "liar"}}, Env: s.env,
		Pkg: pkg("ns1", "liar", evil, sum(good)),
	})
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("a package claiming another archive's checksum: %v, want a checksum mismatch", err)
	}
	ins.Close()
	s.specialize(pkg("ns1", "honest", good, sum(good)), "good").Close()
}

// Archives without a sha256 are never shared, even with equal bytes.
func TestArchiveWithoutChecksumNotShared(t *testing.T) {
	s := newSharing(t)
	a := deployZip(t, "plain")
	i1 := s.specialize(pkg("ns1", "a", a, ""), "plain")
	i2 := s.specialize(pkg("ns1", "b", a, ""), "plain")
	defer i1.Close()
	defer i2.Close()
	if n := s.fetch.n.Load(); n != 2 {
		t.Errorf("two packages without checksums: %d fetches, want 2", n)
	}
	for _, name := range []string{"a", "b"} {
		if entries, _ := os.ReadDir(filepath.Join(s.work, "ns1", name)); len(entries) != 1 {
			t.Errorf("package %s: %d archive dirs, want its own one", name, len(entries))
		}
	}
}

// Many instances of one package specialized at once fetch it once.
func TestConcurrentSpecializationsFetchOnce(t *testing.T) {
	s := newSharing(t)
	a := deployZip(t, "burst")
	p := pkg("ns1", "a", a, sum(a))
	var wg sync.WaitGroup
	ins := make([]instance.Instance, 8)
	for i := range ins {
		wg.Go(func() { ins[i] = s.specialize(p, "burst") })
	}
	wg.Wait()
	if n := s.fetch.n.Load(); n != 1 {
		t.Errorf("8 concurrent specializations: %d fetches, want 1", n)
	}
	for _, in := range ins {
		in.Close()
	}
}
