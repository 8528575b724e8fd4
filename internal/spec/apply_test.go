package spec

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
	"isotope.dev/isotope/internal/store/boltstore"
)

func openStore(t *testing.T) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "isotope.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeVersion is the store-wide resourceVersion: it moves on every write.
func storeVersion(t *testing.T, st store.Store) string {
	t.Helper()
	_, rv, err := st.List(context.Background(), v1.KindEnvironment, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

func countObjects(t *testing.T, st store.Store) int {
	t.Helper()
	n := 0
	for _, k := range v1.Kinds() {
		objs, _, err := st.List(context.Background(), k.Kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n += len(objs)
	}
	return n
}

// applyDir is what `isotope spec apply --specdir dir` does.
func applyDir(t *testing.T, st store.Store, dir string, opts ApplyOptions) (Result, error) {
	t.Helper()
	set, err := DecodeDir(dir)
	if err != nil {
		return Result{}, err
	}
	return Apply(context.Background(), st, set, opts)
}

func refs(rs []Ref) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Kind+"/"+r.Name)
	}
	return strings.Join(s, " ")
}

const projectSpecs = `apiVersion: isotope.dev/v1
kind: Environment
metadata: {name: go}
spec:
  version: 3
  runtime: {image: isotope/wasm-env}
  builder: {image: isotope/go-wasm-builder}
---
apiVersion: isotope.dev/v1
kind: Package
metadata: {name: hello-pkg}
spec:
  environment: {name: go}
  source: {url: "archive://hello-src"}
---
kind: ArchiveUploadSpec
name: hello-src
include: ["src/*"]
exclude: ["*_test.go"]
`

const functionSpecs = `apiVersion: isotope.dev/v1
kind: Function
metadata: {name: hello, labels: {app: demo}}
spec:
  environment: {name: go}
  package: {packageref: {name: hello-pkg}, functionName: Handler}
  InvokeStrategy: {ExecutionStrategy: {ExecutorType: poolmgr}}
---
apiVersion: isotope.dev/v1
kind: HTTPTrigger
metadata: {name: hello-route}
spec:
  relativeurl: /hello/{name}
  functionref: {name: hello}
`

const timerSpec = `apiVersion: fission.io/v1
kind: TimeTrigger
metadata: {name: tick}
spec:
  cron: "@every 5s"
  functionref: {type: name, name: hello}
`

// newProject lays out a project: specs/ plus src/ with the code.
func newProject(t *testing.T) (project, specs string) {
	t.Helper()
	project = t.TempDir()
	specs = filepath.Join(project, "specs")
	if _, err := Init(specs, "demo"); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, project, map[string]string{
		"specs/project.yaml":    projectSpecs,
		"specs/function.yaml":   functionSpecs,
		"specs/timer.yaml":      timerSpec,
		"src/hello.go":          "package main\n",
		"src/hello_test.go":     "package main\n",
		"src/go.mod":            "module hello\n",
		"src/static/index.html": "<p>hi</p>\n",
	})
	return project, specs
}

func TestApplyIsIdempotent(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	project, specs := newProject(t)

	res, err := applyDir(t, st, specs, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(res.Created); got != "Environment/go Package/hello-pkg Function/hello HTTPTrigger/hello-route TimeTrigger/tick" {
		t.Fatalf("created in dependency order: %s", got)
	}
	fn, err := store.GetAs[*v1.Function](ctx, st, "default", "hello")
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustSet(t, specs).Config()
	if fn.Annotations[AnnotationDeploymentUID] != cfg.UID || fn.Annotations[AnnotationDeploymentName] != "demo" || fn.Labels["app"] != "demo" {
		t.Errorf("function metadata: %v %v", fn.Annotations, fn.Labels)
	}
	if fn.Spec.FunctionTimeout != 60 || fn.Spec.Package.PackageRef.Namespace != "default" {
		t.Errorf("function not defaulted: %+v", fn.Spec)
	}
	pkg, err := store.GetAs[*v1.Package](ctx, st, "default", "hello-pkg")
	if err != nil {
		t.Fatal(err)
	}
	if pkg.Spec.Source.Type != v1.ArchiveTypeLiteral || pkg.Status.BuildStatus != v1.BuildStatusPending || len(pkg.Spec.Source.Checksum.Sum) != 64 {
		t.Fatalf("package: %+v %+v", pkg.Spec.Source.Checksum, pkg.Status)
	}
	if files := zipNames(t, pkg.Spec.Source.Literal); files != "go.mod hello.go static/index.html" {
		t.Errorf("archive holds %s", files)
	}
	tt, err := store.GetAs[*v1.TimeTrigger](ctx, st, "default", "tick")
	if err != nil || tt.APIVersion != v1.APIVersion {
		t.Fatalf("fission.io/v1 time trigger: %+v %v", tt, err)
	}

	// Second apply: nothing written.
	rv := storeVersion(t, st)
	// Touching the source files changes their mtimes, not the archive.
	later := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(project, "src", "hello.go"), later, later)
	res, err = applyDir(t, st, specs, ApplyOptions{Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created)+len(res.Updated)+len(res.Deleted) != 0 || len(res.Unchanged) != 5 {
		t.Fatalf("second apply is not a no-op: %+v", res)
	}
	if got := storeVersion(t, st); got != rv {
		t.Fatalf("second apply wrote to the store: resourceVersion %s → %s", rv, got)
	}

	// The builder's output is kept while the source is unchanged.
	pkg.Spec.Deployment = v1.Archive{Type: v1.ArchiveTypeURL, URL: "http://127.0.0.1:8889/v1/archive?id=built", Checksum: v1.Checksum{Type: "sha256", Sum: strings.Repeat("0", 64)}}
	pkg, err = updatePackage(ctx, st, pkg, v1.BuildStatusSucceeded)
	if err != nil {
		t.Fatal(err)
	}
	res, err = applyDir(t, st, specs, ApplyOptions{})
	if err != nil || len(res.Unchanged) != 5 {
		t.Fatalf("apply after a build: %+v %v", res, err)
	}

	// A changed function and a changed source: only those are updated; the
	// package goes back to pending and loses its stale deployment.
	writeFiles(t, project, map[string]string{
		"src/hello.go":        "package main // v2\n",
		"specs/function.yaml": strings.Replace(functionSpecs, "functionName: Handler}", "functionName: Handler}\n  functionTimeout: 30", 1),
	})
	res, err = applyDir(t, st, specs, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(res.Updated); got != "Package/hello-pkg Function/hello" || len(res.Unchanged) != 3 {
		t.Fatalf("updated %s, unchanged %s", got, refs(res.Unchanged))
	}
	pkg, _ = store.GetAs[*v1.Package](ctx, st, "default", "hello-pkg")
	if pkg.Status.BuildStatus != v1.BuildStatusPending || !pkg.Spec.Deployment.IsEmpty() {
		t.Fatalf("rebuilt package: %+v %+v", pkg.Spec.Deployment, pkg.Status)
	}
	if fn, _ := store.GetAs[*v1.Function](ctx, st, "default", "hello"); fn.Spec.FunctionTimeout != 30 {
		t.Fatalf("function timeout %d", fn.Spec.FunctionTimeout)
	}
}

func updatePackage(ctx context.Context, st store.Store, p *v1.Package, status v1.BuildStatus) (*v1.Package, error) {
	obj, err := st.Update(ctx, p)
	if err != nil {
		return nil, err
	}
	p = obj.(*v1.Package)
	p.Status.BuildStatus = status
	obj, err = st.UpdateStatus(ctx, p)
	if err != nil {
		return nil, err
	}
	return obj.(*v1.Package), nil
}

func mustSet(t *testing.T, dir string) *Set {
	t.Helper()
	set, err := DecodeDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestApplyDeleteRemovesDroppedObjects(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	_, specs := newProject(t)
	if _, err := applyDir(t, st, specs, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	// An object made outside the specs is never touched.
	other := &v1.TimeTrigger{}
	other.Name = "manual"
	other.Spec = v1.TimeTriggerSpec{Cron: "@hourly", FunctionReference: v1.FunctionReference{Name: "hello"}}
	if _, err := st.Create(ctx, other); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filepath.Join(specs, "timer.yaml")); err != nil {
		t.Fatal(err)
	}
	// Without --delete the dropped object stays.
	res, err := applyDir(t, st, specs, ApplyOptions{})
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("apply without delete: %+v %v", res, err)
	}
	if _, err := st.Get(ctx, v1.KindTimeTrigger, "default", "tick"); err != nil {
		t.Fatal(err)
	}
	res, err = applyDir(t, st, specs, ApplyOptions{Delete: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(res.Deleted); got != "TimeTrigger/tick" || len(res.Unchanged) != 4 {
		t.Fatalf("deleted %s, unchanged %s", got, refs(res.Unchanged))
	}
	if _, err := st.Get(ctx, v1.KindTimeTrigger, "default", "tick"); !store.IsNotFound(err) {
		t.Fatalf("tick still stored: %v", err)
	}
	if _, err := st.Get(ctx, v1.KindTimeTrigger, "default", "manual"); err != nil {
		t.Fatalf("an object outside the deployment was touched: %v", err)
	}

	// Destroy removes the rest of the deployment, triggers first.
	res, err = Destroy(ctx, st, mustSet(t, specs))
	if err != nil {
		t.Fatal(err)
	}
	if got := refs(res.Deleted); got != "HTTPTrigger/hello-route Function/hello Package/hello-pkg Environment/go" {
		t.Fatalf("destroy deleted %s", got)
	}
	if n := countObjects(t, st); n != 1 {
		t.Fatalf("%d objects left, want only the manual trigger", n)
	}
}

// TestApplyRefusesBadInput: each bad spec is refused with its file and
// field, and nothing is stored, not even the valid objects around it.
func TestApplyRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, file, doc string
		want            []string
	}{
		{"bad YAML", "bad.yaml", "apiVersion: isotope.dev/v1\nkind: Function\nmetadata:\n  name: [oops\n",
			[]string{"bad.yaml: document 1: invalid YAML: yaml: line 4"}},
		{"unknown kind", "bad.yaml", "apiVersion: isotope.dev/v1\nkind: Lambda\nmetadata: {name: x}\n",
			[]string{`bad.yaml: document 1: unknown kind "Lambda" (known kinds: Secret, ConfigMap, Environment, Package`}},
		{"missing required field", "bad.yaml", "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: e2}\nspec: {version: 3}\n",
			[]string{`bad.yaml: document 1 (Environment "e2"): spec.runtime.image: Required value`}},
		{"bad cron", "bad.yaml", "---\n" + strings.Replace(timerSpec, "@every 5s", "61 * * * *", 1),
			[]string{`bad.yaml: document 1 (TimeTrigger "tick"): spec.cron: Invalid value: "61 * * * *": `, "above maximum (59)"}},
		{"bad name", "bad.yaml", "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: Go.Env}\nspec: {version: 3, runtime: {image: x}}\n",
			[]string{`bad.yaml: document 1 (Environment "Go.Env"): metadata.name: Invalid value: "Go.Env": a lowercase RFC 1123 label`}},
		{"unknown field", "bad.yaml", "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: {name: e3}\nspec: {version: 3, runtime: {image: x, cmd: y}}\n",
			[]string{`unknown field "spec.runtime.cmd"`}},
		{"archive without files", "bad.yaml", "kind: ArchiveUploadSpec\nname: nothing\ninclude: [nope/*.go]\n---\napiVersion: isotope.dev/v1\nkind: Package\nmetadata: {name: p2}\nspec: {environment: {name: go}, deployment: {url: 'archive://nothing'}}\n",
			[]string{`bad.yaml: document 1 (ArchiveUploadSpec "nothing"): include "nope/*.go" matches no file under`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			_, specs := newProject(t)
			writeFiles(t, specs, map[string]string{tc.file: tc.doc})
			rv := storeVersion(t, st)
			_, err := applyDir(t, st, specs, ApplyOptions{})
			wantErr(t, err, append([]string{filepath.Join(specs, tc.file)}, tc.want...)...)
			if n := countObjects(t, st); n != 0 || storeVersion(t, st) != rv {
				t.Fatalf("%d objects stored after a refused apply", n)
			}
		})
	}
}

func TestApplyRefusesOtherDeploymentsObjects(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	_, specs := newProject(t)
	env := &v1.Environment{}
	env.Name = "go"
	env.Spec = v1.EnvironmentSpec{Version: 3, Runtime: v1.Runtime{Image: "mine"}}
	if _, err := st.Create(ctx, env); err != nil {
		t.Fatal(err)
	}
	rv := storeVersion(t, st)
	_, err := applyDir(t, st, specs, ApplyOptions{})
	wantErr(t, err, `project.yaml: document 1 (Environment "go"): Environment default/go already exists and is not part of deployment "demo"`)
	if storeVersion(t, st) != rv {
		t.Fatal("a refused apply wrote to the store")
	}
	res, err := applyDir(t, st, specs, ApplyOptions{AllowConflicts: true})
	if err != nil || refs(res.Updated) != "Environment/go" {
		t.Fatalf("apply allowing conflicts: %+v %v", res, err)
	}
}

// fakeUploader stands in for the storage service's client (its own tests
// cover the real one); it records uploads and checks what it is given.
type fakeUploader struct {
	mu      sync.Mutex
	uploads []string
	data    map[string][]byte
}

func (f *fakeUploader) Upload(_ context.Context, name string, r io.Reader, size int64) (string, string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", "", err
	}
	if int64(len(b)) != size {
		return "", "", fmt.Errorf("size %d given, %d read", size, len(b))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads = append(f.uploads, name)
	url := fmt.Sprintf("http://127.0.0.1:8889/v1/archive?id=%d", len(f.uploads))
	if f.data == nil {
		f.data = map[string][]byte{}
	}
	f.data[url] = b
	return url, "", nil
}

func TestApplyUploadsLargeArchivesOnce(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	project, specs := newProject(t)
	// Incompressible content, so the zip exceeds the literal limit.
	big := make([]byte, v1.ArchiveLiteralSizeLimit+1024)
	seed := uint32(1)
	for i := range big {
		seed = seed*1664525 + 1013904223
		big[i] = byte(seed >> 24)
	}
	if err := os.WriteFile(filepath.Join(project, "src", "blob.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := applyDir(t, st, specs, ApplyOptions{})
	wantErr(t, err, `project.yaml: document 2 (Package "hello-pkg"): spec.source.url: archive "hello-src" is`, "no storage service")
	if n := countObjects(t, st); n != 0 {
		t.Fatalf("%d objects stored", n)
	}

	up := &fakeUploader{}
	if _, err := applyDir(t, st, specs, ApplyOptions{Uploader: up}); err != nil {
		t.Fatal(err)
	}
	pkg, err := store.GetAs[*v1.Package](ctx, st, "default", "hello-pkg")
	if err != nil {
		t.Fatal(err)
	}
	src := pkg.Spec.Source
	if len(up.uploads) != 1 || up.uploads[0] != "hello-src.zip" || src.Type != v1.ArchiveTypeURL || src.URL != "http://127.0.0.1:8889/v1/archive?id=1" {
		t.Fatalf("uploads %v, source %+v", up.uploads, src)
	}
	if !strings.Contains(zipNames(t, up.data[src.URL]), "blob.bin") {
		t.Fatal("uploaded archive lacks the file")
	}
	res, err := applyDir(t, st, specs, ApplyOptions{Uploader: up})
	if err != nil || len(up.uploads) != 1 || len(res.Unchanged) != 5 {
		t.Fatalf("unchanged archive uploaded again or package changed: %v %+v %v", up.uploads, res, err)
	}
}

func TestArchiveIsDeterministic(t *testing.T) {
	project := t.TempDir()
	writeFiles(t, project, map[string]string{"b.txt": "b", "a/x.txt": "x", "a/y.log": "y", "run.sh": "#!/bin/sh\n"})
	os.Chmod(filepath.Join(project, "run.sh"), 0o755)
	spec := &ArchiveUploadSpec{Name: "a", Include: []string{"*.txt", "a", "run.sh"}, Exclude: []string{"*.log"}}
	specDir := filepath.Join(project, "specs")
	one, err := buildArchive(specDir, spec)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(48 * time.Hour)
	for _, f := range []string{"b.txt", "a/x.txt", "run.sh"} {
		os.Chtimes(filepath.Join(project, f), later, later)
	}
	two, err := buildArchive(specDir, spec)
	if err != nil {
		t.Fatal(err)
	}
	if one.sum != two.sum || !bytes.Equal(one.data, two.data) {
		t.Fatal("the same files gave different archives")
	}
	if got := strings.Join(one.files, " "); got != "a/x.txt b.txt run.sh" {
		t.Fatalf("files %s", got)
	}
	writeFiles(t, project, map[string]string{"c/b.txt": "other b"})
	if _, err := buildArchive(specDir, &ArchiveUploadSpec{Name: "dup", Include: []string{"*.txt", "c/*"}}); err == nil ||
		!strings.Contains(err.Error(), `would both be "b.txt"`) {
		t.Fatalf("two files with one entry name: %v", err)
	}
}

func zipNames(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	return strings.Join(names, " ")
}

// An include of exactly one plain file is the file itself, as Fission's
// spec apply sends it; a directory, or more than one file, is a zip.
func TestSingleFileArchiveIsTheFile(t *testing.T) {
	project := t.TempDir()
	writeFiles(t, project, map[string]string{"helloWorld.js": "module.exports = 1\n", "lib/only.js": "x", "a.txt": "a", "b.txt": "b"})
	specDir := filepath.Join(project, "specs")
	for _, include := range [][]string{{"helloWorld.js"}, {"hello*.js"}} {
		b, err := buildArchive(specDir, &ArchiveUploadSpec{Name: "hello", Include: include})
		if err != nil {
			t.Fatal(err)
		}
		if string(b.data) != "module.exports = 1\n" || b.upload != "helloWorld.js" {
			t.Fatalf("include %v: archive %q uploaded as %q, want the file itself", include, b.data, b.upload)
		}
	}
	for _, include := range [][]string{{"lib"}, {"*.txt"}} {
		b, err := buildArchive(specDir, &ArchiveUploadSpec{Name: "many", Include: include})
		if err != nil {
			t.Fatal(err)
		}
		if zipNames(t, b.data) == "" || b.upload != "many.zip" {
			t.Fatalf("include %v: not a zip (%q)", include, b.upload)
		}
	}
	// A lone file that is a hostile zip is refused before anything is
	// stored, naming the file.
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("../escape.txt")
	w.Write([]byte("x"))
	zw.Close()
	os.WriteFile(filepath.Join(project, "bad.zip"), buf.Bytes(), 0o644)
	if _, err := buildArchive(specDir, &ArchiveUploadSpec{Name: "bad", Include: []string{"bad.zip"}}); err == nil || !strings.Contains(err.Error(), "bad.zip") {
		t.Fatalf("hostile lone zip: %v", err)
	}
}
