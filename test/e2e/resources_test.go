package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// createAll makes one object of every kind through the CLI.
func createAll(t *testing.T, p *platform, dir string) {
	t.Helper()
	wasm := filepath.Join(dir, "app.wasm")
	// A deploy archive need not be valid wasm to be stored.
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/example/isotope/wasm-env:v1")
	p.ok("pkg", "create", "--name", "app", "--env", "wasm", "--deploy", wasm)
	p.ok("fn", "create", "--name", "hello", "--env", "wasm", "--pkg", "app", "--entrypoint", "Handler")
	p.ok("route", "create", "--name", "hello", "--function", "hello", "--url", "/hello", "--method", "GET")
	p.ok("timer", "create", "--name", "tick", "--function", "hello", "--cron", "@every 1h")
}

// getJSON returns `<kind> get --name N -o json` decoded.
func getJSON(t *testing.T, p *platform, kind, name string) map[string]any {
	t.Helper()
	sub := "get"
	if kind == "fn" {
		sub = "getmeta" // fn get prints the source, as in Fission
	}
	out := p.ok(kind, sub, "--name", name, "-o", "json")
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s get -o json: %v\n%s", kind, err, out)
	}
	return m
}

func TestEveryKindCRUDAndRestart(t *testing.T) {
	dir := t.TempDir()
	data := t.TempDir()
	p := startPlatform(t, data)
	createAll(t, p, dir)

	for _, kind := range []string{"env", "pkg", "fn", "route", "timer"} {
		out := p.ok(kind, "list")
		if !strings.Contains(out, map[string]string{"env": "wasm", "pkg": "app", "fn": "hello", "route": "hello", "timer": "tick"}[kind]) {
			t.Errorf("%s list misses the object:\n%s", kind, out)
		}
	}
	fn := getJSON(t, p, "fn", "hello")
	if fn["apiVersion"] != "isotope.dev/v1" || fn["kind"] != "Function" {
		t.Errorf("fn getmeta -o json: apiVersion/kind = %v/%v", fn["apiVersion"], fn["kind"])
	}
	spec := fn["spec"].(map[string]any)
	if _, ok := spec["InvokeStrategy"].(map[string]any)["ExecutionStrategy"]; !ok {
		t.Errorf("function spec lacks Fission's InvokeStrategy.ExecutionStrategy: %v", spec)
	}
	if spec["package"].(map[string]any)["packageref"].(map[string]any)["name"] != "app" {
		t.Errorf("packageref.name: %v", spec["package"])
	}

	// Updates stick.
	p.ok("fn", "update", "--name", "hello", "--fntimeout", "7")
	p.ok("timer", "update", "--name", "tick", "--cron", "@every 2h")

	// A graceful restart keeps everything.
	p.stop()
	p = startPlatform(t, data)
	if got := getJSON(t, p, "fn", "hello")["spec"].(map[string]any)["functionTimeout"]; got != float64(7) {
		t.Errorf("functionTimeout after restart = %v, want 7", got)
	}
	if got := getJSON(t, p, "timer", "tick")["spec"].(map[string]any)["cron"]; got != "@every 2h" {
		t.Errorf("cron after restart = %v", got)
	}

	// kill -9 keeps everything too.
	p.kill()
	p = startPlatform(t, data)
	for _, kn := range [][2]string{{"env", "wasm"}, {"pkg", "app"}, {"fn", "hello"}, {"route", "hello"}, {"timer", "tick"}} {
		getJSON(t, p, kn[0], kn[1])
	}

	// Delete, in reverse dependency order.
	for _, kn := range [][2]string{{"timer", "tick"}, {"route", "hello"}, {"fn", "hello"}, {"pkg", "app"}, {"env", "wasm"}} {
		p.ok(kn[0], "delete", "--name", kn[1])
		if r := p.run(kn[0], "get", "--name", kn[1]); r.code == 0 {
			t.Errorf("%s %s still readable after delete", kn[0], kn[1])
		}
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	p := startPlatform(t, "")
	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	code := filepath.Join(t.TempDir(), "f.wasm")
	os.WriteFile(code, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	p.ok("fn", "create", "--name", "f", "--env", "wasm", "--code", code)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad name", []string{"env", "create", "--name", "Bad_Name", "--image", "x"}, "metadata.name"},
		{"bad version", []string{"env", "create", "--name", "v7", "--image", "x", "--version", "7"}, "spec.version"},
		{"duplicate", []string{"env", "create", "--name", "wasm", "--image", "isotope/wasm-env"}, "already exists"},
		{"bad cron", []string{"timer", "create", "--name", "t", "--function", "f", "--cron", "every tuesday"}, "spec.cron"},
		{"bad scale", []string{"fn", "create", "--name", "g", "--env", "wasm", "--code", "/dev/null", "--executortype", "newdeploy", "--minscale", "3", "--maxscale", "1"}, "MaxScale"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stderr := p.fails(c.args...)
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not name %q", stderr, c.want)
			}
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 0 {
				t.Errorf("want a one-line cause, got %d lines:\n%s", n+1, stderr)
			}
		})
	}

	specs := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(specs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bad.yaml", "apiVersion: isotope.dev/v1\nkind: Environment\nmetadata: [unclosed\n")
	if stderr := p.fails("spec", "apply", "--specdir", specs); !strings.Contains(stderr, "bad.yaml") {
		t.Errorf("bad YAML error does not name the file: %s", stderr)
	}
	os.Remove(filepath.Join(specs, "bad.yaml"))
	write("kind.yaml", "apiVersion: isotope.dev/v1\nkind: Gadget\nmetadata:\n  name: g\n")
	if stderr := p.fails("spec", "apply", "--specdir", specs); !strings.Contains(stderr, "Gadget") {
		t.Errorf("unknown kind error does not name it: %s", stderr)
	}
	os.Remove(filepath.Join(specs, "kind.yaml"))
	write("missing.yaml", "apiVersion: isotope.dev/v1\nkind: Function\nmetadata:\n  name: nofn\nspec:\n  environment:\n    name: wasm\n")
	if stderr := p.fails("spec", "apply", "--specdir", specs); !strings.Contains(stderr, "spec.package.packageref.name") {
		t.Errorf("missing field error does not name the field path: %s", stderr)
	}

	// Nothing but the first environment was stored.
	out := p.ok("env", "list", "-o", "json")
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("env list -o json: %v\n%s", err, out)
	}
	if len(list.Items) != 1 {
		t.Errorf("%d environments stored, want 1", len(list.Items))
	}
	for _, kind := range []string{"timer", "route"} {
		if out := strings.TrimSpace(p.ok(kind, "list", "-o", "json")); strings.Contains(out, `"name"`) {
			t.Errorf("%s list after refused creates is not empty:\n%s", kind, out)
		}
	}
}

func TestSpecApplyIsIdempotentAndDeletes(t *testing.T) {
	p := startPlatform(t, "")
	specs := filepath.Join(t.TempDir(), "specs")
	p.ok("spec", "init", "--specdir", specs, "--name", "demo")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(specs, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A Fission document applies as is.
	write("env.yaml", `apiVersion: fission.io/v1
kind: Environment
metadata:
  name: wasm
spec:
  version: 3
  runtime:
    image: isotope/wasm-env
`)
	write("timer.yaml", `apiVersion: isotope.dev/v1
kind: TimeTrigger
metadata:
  name: nightly
spec:
  cron: "0 0 3 * * *"
  functionref:
    type: name
    name: report
`)
	p.ok("spec", "apply", "--specdir", specs)
	envRV := getJSON(t, p, "env", "wasm")["metadata"].(map[string]any)["resourceVersion"]
	timerRV := getJSON(t, p, "timer", "nightly")["metadata"].(map[string]any)["resourceVersion"]

	// The second apply changes nothing.
	p.ok("spec", "apply", "--specdir", specs)
	if rv := getJSON(t, p, "env", "wasm")["metadata"].(map[string]any)["resourceVersion"]; rv != envRV {
		t.Errorf("second apply rewrote the environment: rv %v → %v", envRV, rv)
	}
	if rv := getJSON(t, p, "timer", "nightly")["metadata"].(map[string]any)["resourceVersion"]; rv != timerRV {
		t.Errorf("second apply rewrote the timer: rv %v → %v", timerRV, rv)
	}

	// Removing a document and applying with --delete deletes its object.
	os.Remove(filepath.Join(specs, "timer.yaml"))
	p.ok("spec", "apply", "--specdir", specs, "--delete")
	if r := p.run("timer", "get", "--name", "nightly"); r.code == 0 {
		t.Errorf("timer still exists after apply --delete")
	}
	getJSON(t, p, "env", "wasm")

	p.ok("spec", "destroy", "--specdir", specs)
	if r := p.run("env", "get", "--name", "wasm"); r.code == 0 {
		t.Errorf("environment still exists after spec destroy")
	}
}
