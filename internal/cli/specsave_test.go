package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func TestCreateWithSpecWritesYAMLInsteadOfCreating(t *testing.T) {
	a := newTestAPI(t)
	src := writeFile(t, "hello.js", "hi")
	dir := filepath.Join(filepath.Dir(src), "specs") // the project holds the code
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--spec", "--specdir", dir)
	// spec apply confines archives to the project: a file outside it is
	// refused now, not when the spec is applied.
	outside := writeFile(t, "other.js", "x")
	a.fails([]string{"pkg", "create", "--name", "o", "--env", "go", "--deploy", outside, "--spec", "--specdir", dir}, "outside the project directory")
	a.ok("fn", "create", "--name", "hello", "--env", "go", "--code", src, "--url", "/hello", "--spec", "--specdir", dir)
	a.ok("timer", "create", "--name", "tick", "--function", "hello", "--cron", "@every 1m", "--spec", "--specdir", dir)
	a.ok("route", "create", "--name", "r", "--function", "hello", "--url", "/r", "--spec", "--specdir", dir)
	a.ok("pkg", "create", "--name", "p", "--env", "go", "--deploy", src, "--spec", "--specdir", dir)
	a.fails([]string{"env", "create", "--name", "go", "--image", "x", "--spec", "--specdir", dir}, "already exists")

	for _, kind := range []string{v1.KindEnvironment, v1.KindFunction, v1.KindPackage, v1.KindHTTPTrigger, v1.KindTimeTrigger} {
		objs, _, _ := a.Store.List(context.Background(), kind, store.ListOptions{})
		if len(objs) != 0 {
			t.Errorf("--spec created %d %s", len(objs), kind)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if strings.Join(names, ",") != "env-go.yaml,function-hello.yaml,package-p.yaml,route-r.yaml,timetrigger-tick.yaml" {
		t.Errorf("spec files = %v", names)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "function-hello.yaml"))
	docs := strings.Split(string(b), "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("function-hello.yaml has %d documents, want package, function, route:\n%s", len(docs), b)
	}
	var p v1.Package
	if err := yaml.Unmarshal([]byte(docs[0]), &p); err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != v1.APIVersion || p.Kind != v1.KindPackage || string(p.Spec.Deployment.Literal) != "hi" || p.UID != "" || p.ResourceVersion != "" {
		t.Errorf("package doc = %+v", p)
	}
	var fn v1.Function
	if err := yaml.Unmarshal([]byte(docs[1]), &fn); err != nil {
		t.Fatal(err)
	}
	if fn.Spec.Package.PackageRef.Name != p.Name || fn.Spec.Environment.Name != "go" {
		t.Errorf("function doc = %+v", fn.Spec)
	}

	// --dry prints the YAML and creates nothing either.
	out := a.ok("env", "create", "--name", "dry", "--image", "x", "--dry").Stdout
	var env v1.Environment
	if err := yaml.Unmarshal([]byte(out), &env); err != nil || env.Name != "dry" || env.Kind != v1.KindEnvironment {
		t.Errorf("--dry printed %q (%v)", out, err)
	}
	if _, err := a.Store.Get(context.Background(), v1.KindEnvironment, "default", "dry"); !store.IsNotFound(err) {
		t.Errorf("--dry created the environment: %v", err)
	}
}
