package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func TestSpecInitApplyReapplyDeleteDestroy(t *testing.T) {
	a := newTestAPI(t)
	project := t.TempDir()
	specs := filepath.Join(project, "specs")
	a.ok("spec", "init", "--specdir", specs, "--name", "demo")
	a.fails([]string{"spec", "init", "--specdir", specs}, "already exists")

	// Fill the directory with the create commands' --spec, as a user would.
	code := filepath.Join(project, "hello")
	os.MkdirAll(code, 0o755)
	os.WriteFile(filepath.Join(code, "hello.go"), []byte("package main\n"), 0o644)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder", "--spec", "--specdir", specs)
	a.ok("fn", "create", "--name", "hello", "--env", "go", "--src", code, "--entrypoint", "Handler", "--spec", "--specdir", specs)
	a.ok("route", "create", "--name", "hello-route", "--function", "hello", "--url", "/hello", "--spec", "--specdir", specs)
	// A Fission document applies too.
	os.WriteFile(filepath.Join(specs, "timer.yaml"), []byte(`apiVersion: fission.io/v1
kind: TimeTrigger
metadata:
  name: tick
spec:
  cron: "@every 1m"
  functionref:
    type: name
    name: hello
`), 0o644)

	if out := a.ok("spec", "validate", "--specdir", specs).Stdout; !strings.Contains(out, "valid: 5 object(s)") {
		t.Errorf("validate: %s", out)
	}
	r := a.ok("spec", "apply", "--specdir", specs)
	if !strings.Contains(r.Stdout, "5 created, 0 updated, 0 unchanged, 0 deleted") {
		t.Errorf("first apply:\n%s", r.Stdout)
	}
	fn := getFn(t, a, "hello")
	p := getPkg(t, a, fn.Spec.Package.PackageRef.Name)
	// One plain file is uploaded as itself, as Fission's spec apply does.
	if p.Spec.Source.Type != v1.ArchiveTypeLiteral || string(p.Spec.Source.Literal) != "package main\n" ||
		p.Status.BuildStatus != v1.BuildStatusPending {
		t.Errorf("package from the ArchiveUploadSpec: %+v %+v", p.Spec.Source, p.Status)
	}

	// Applying again changes nothing.
	r = a.ok("spec", "apply", "--specdir", specs)
	if !strings.Contains(r.Stdout, "0 created, 0 updated, 5 unchanged, 0 deleted") {
		t.Errorf("second apply:\n%s", r.Stdout)
	}
	if out := a.ok("spec", "list", "--specdir", specs).Stdout; strings.Count(out, "\n") != 6 || !strings.Contains(out, "tick") {
		t.Errorf("spec list:\n%s", out)
	}

	// Removing a document and applying with --delete deletes its object.
	os.Remove(filepath.Join(specs, "route-hello-route.yaml"))
	r = a.ok("spec", "apply", "--specdir", specs, "--delete")
	if !strings.Contains(r.Stdout, "deleted HTTPTrigger default/hello-route") || !strings.Contains(r.Stdout, "1 deleted") {
		t.Errorf("apply --delete:\n%s", r.Stdout)
	}
	if _, err := a.Store.Get(context.Background(), v1.KindHTTPTrigger, "default", "hello-route"); !store.IsNotFound(err) {
		t.Errorf("route still stored: %v", err)
	}

	// A bad document is refused with its file and field path, and nothing changes.
	os.WriteFile(filepath.Join(specs, "bad.yaml"), []byte(`apiVersion: isotope.dev/v1
kind: TimeTrigger
metadata:
  name: bad
spec:
  cron: "not a cron"
  functionref: {type: name, name: hello}
`), 0o644)
	a.fails([]string{"spec", "validate", "--specdir", specs}, "bad.yaml", "spec.cron")
	a.fails([]string{"spec", "apply", "--specdir", specs}, "bad.yaml", "spec.cron")
	if _, err := a.Store.Get(context.Background(), v1.KindTimeTrigger, "default", "bad"); !store.IsNotFound(err) {
		t.Errorf("bad timer stored: %v", err)
	}
	os.Remove(filepath.Join(specs, "bad.yaml"))

	r = a.ok("spec", "destroy", "--specdir", specs)
	if !strings.Contains(r.Stdout, "4 deleted") {
		t.Errorf("destroy:\n%s", r.Stdout)
	}
	for _, k := range v1.Kinds() {
		if objs, _, _ := a.Store.List(context.Background(), k.Kind, store.ListOptions{}); len(objs) != 0 {
			t.Errorf("%d %s left after destroy", len(objs), k.Kind)
		}
	}
}

func TestSpecApplyUploadsLargeArchivesAndWaits(t *testing.T) {
	a := newTestAPI(t)
	fakeBuilder(t, a.Store)
	project := t.TempDir()
	specs := filepath.Join(project, "specs")
	a.ok("spec", "init", "--specdir", specs)
	big := make([]byte, v1.ArchiveLiteralSizeLimit+1024) // random: zipping cannot shrink it under the limit
	rand.Read(big)
	os.WriteFile(filepath.Join(project, "blob.bin"), big, 0o644)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder", "--spec", "--specdir", specs)
	a.ok("pkg", "create", "--name", "blob", "--env", "go", "--src", filepath.Join(project, "blob.bin"), "--spec", "--specdir", specs)
	r := a.ok("spec", "apply", "--specdir", specs, "--wait")
	p := getPkg(t, a, "blob")
	if p.Spec.Source.Type != v1.ArchiveTypeURL || !strings.HasPrefix(p.Spec.Source.URL, a.URL+"/v1/archive?id=") {
		t.Errorf("large source = %+v", p.Spec.Source)
	}
	if p.Status.BuildStatus != v1.BuildStatusSucceeded || !strings.Contains(r.Stderr, "package 'blob': succeeded") {
		t.Errorf("--wait returned with status %q\nstderr %s", p.Status.BuildStatus, r.Stderr)
	}
	src := a.ok("pkg", "getsrc", "--name", "blob").Stdout
	if !bytes.Equal([]byte(src), big) {
		t.Errorf("downloaded source is %d bytes, not the %d-byte file uploaded as itself", len(src), len(big))
	}
}
