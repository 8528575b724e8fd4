package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/store"
)

func TestEnvCreateGetListUpdateDelete(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder",
		"--runtime-command", `myruntime --port 8888 "two words"`, "--runtime-env", "A=1",
		"--labels", "team=a,tier=web", "--mincpu", "100", "--maxmemory", "128", "--poolsize", "2")

	// -o yaml prints the whole object; it reads back as an Environment.
	var env v1.Environment
	if err := yaml.Unmarshal([]byte(a.ok("env", "get", "--name", "go", "-o", "yaml").Stdout), &env); err != nil {
		t.Fatal(err)
	}
	if env.APIVersion != v1.APIVersion || env.Kind != v1.KindEnvironment {
		t.Errorf("apiVersion/kind = %q/%q", env.APIVersion, env.Kind)
	}
	if env.Spec.Runtime.Image != "isotope/wasm-env" || env.Spec.Builder.Image != "isotope/go-wasm-builder" ||
		env.Spec.Poolsize != 2 || env.Spec.Version != 3 || env.Labels["tier"] != "web" {
		t.Errorf("env spec = %+v labels %v", env.Spec, env.Labels)
	}
	c := env.Spec.Runtime.Container
	if c == nil || strings.Join(c.Command, "|") != "myruntime" || strings.Join(c.Args, "|") != "--port|8888|two words" ||
		len(c.Env) != 1 || c.Env[0].Name != "A" || c.Env[0].Value != "1" {
		t.Errorf("runtime container = %+v", c)
	}
	if q := env.Spec.Resources.Requests.Cpu(); q.MilliValue() != 100 {
		t.Errorf("mincpu = %v", q)
	}
	if q := env.Spec.Resources.Limits.Memory(); q.Value() != 128<<20 {
		t.Errorf("maxmemory = %v", q)
	}
	// -o json round-trips to the same object.
	var envJSON v1.Environment
	if err := json.Unmarshal([]byte(a.ok("env", "get", "--name", "go", "-o", "json").Stdout), &envJSON); err != nil {
		t.Fatal(err)
	}
	if envJSON.ResourceVersion != env.ResourceVersion || envJSON.Spec.Runtime.Image != env.Spec.Runtime.Image {
		t.Errorf("json and yaml differ: %+v vs %+v", envJSON.ObjectMeta, env.ObjectMeta)
	}
	// The default get is a human summary.
	if out := a.ok("env", "get", "--name", "go").Stdout; !strings.Contains(out, "Runtime command:") || !strings.Contains(out, "myruntime --port 8888") {
		t.Errorf("summary:\n%s", out)
	}

	a.ok("environment", "create", "--name", "py", "--image", "fission/python-env")
	list := a.ok("env", "list").Stdout
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "go ") || !strings.HasPrefix(lines[2], "py ") {
		t.Errorf("env list:\n%s", list)
	}
	// Columns are aligned: IMAGE starts at the same offset on every line.
	col := strings.Index(lines[0], "IMAGE")
	for _, l := range lines[1:] {
		if l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("misaligned row %q (IMAGE at %d)", l, col)
		}
	}
	var envList struct {
		APIVersion, Kind string
		Items            []v1.Environment
	}
	if err := json.Unmarshal([]byte(a.ok("env", "list", "-o", "json").Stdout), &envList); err != nil {
		t.Fatal(err)
	}
	if envList.Kind != "EnvironmentList" || envList.APIVersion != v1.APIVersion || len(envList.Items) != 2 || envList.Items[0].Kind != v1.KindEnvironment {
		t.Errorf("env list -o json = %+v", envList)
	}

	// update changes only the flags given.
	a.ok("env", "update", "--name", "go", "--poolsize", "5")
	got, err := store.GetAs[*v1.Environment](context.Background(), a.Store, "default", "go")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Poolsize != 5 || got.Spec.Runtime.Image != "isotope/wasm-env" || got.Spec.Runtime.Container == nil || got.Labels["team"] != "a" {
		t.Errorf("after update: %+v", got.Spec)
	}
	a.ok("env", "update", "--name", "go", "--runtime-command", "")
	got, _ = store.GetAs[*v1.Environment](context.Background(), a.Store, "default", "go")
	if c := got.Spec.Runtime.Container; c == nil || len(c.Command) != 0 || len(c.Env) != 1 {
		t.Errorf("clearing the command kept %+v", c)
	}

	a.ok("env", "delete", "--name", "py")
	a.fails([]string{"env", "get", "--name", "py"}, "py", "not found")
	a.fails([]string{"env", "delete", "--name", "py"}, "not found")
	a.ok("env", "delete", "--name", "py", "-f")
}

func TestBadInputIsRefusedWithFieldPath(t *testing.T) {
	a := newTestAPI(t)
	a.fails([]string{"env", "create", "--name", "Bad_Name", "--image", "x"}, "metadata.name")
	a.fails([]string{"env", "create", "--name", "e", "--image", "x", "--version", "7"}, "spec.version")
	a.fails([]string{"env", "create", "--image", "x"}, "--name is required")
	a.ok("env", "create", "--name", "e", "--image", "x")
	a.fails([]string{"env", "create", "--name", "e", "--image", "y"}, "already exists")
	got, _ := store.GetAs[*v1.Environment](context.Background(), a.Store, "default", "e")
	if got.Spec.Runtime.Image != "x" {
		t.Errorf("a refused duplicate changed the stored object: %q", got.Spec.Runtime.Image)
	}
	a.fails([]string{"env", "get", "--name", "e", "-o", "xml"}, "--output", "xml")

	src := writeFile(t, "hello.js", "module.exports = 1")
	a.ok("fn", "create", "--name", "f", "--env", "e", "--code", src)
	a.fails([]string{"timer", "create", "--name", "t", "--function", "f", "--cron", "not a cron"}, "spec.cron")
	a.fails([]string{"fn", "create", "--name", "g", "--env", "e", "--code", src, "--maxscale", "1", "--minscale", "3"}, "spec.InvokeStrategy.ExecutionStrategy.MaxScale")
	a.fails([]string{"fn", "create", "--name", "g", "--env", "nope", "--code", src}, "--env", "nope")
	a.fails([]string{"fn", "create", "--name", "g", "--env", "e", "--code", filepath.Join(t.TempDir(), "missing.js")}, "--code", "missing.js")
	a.fails([]string{"route", "create", "--function", "f"}, "--url or --prefix")
	a.fails([]string{"route", "create", "--function", "nope", "--url", "/x"}, "function 'nope' not found")
	a.fails([]string{"route", "create", "--function", "f", "--function", "g", "--weight", "50", "--weight", "10", "--url", "/x"}, "100")
	// Nothing refused above left anything behind.
	for _, kind := range []string{v1.KindFunction, v1.KindPackage, v1.KindHTTPTrigger, v1.KindTimeTrigger} {
		objs, _, err := a.Store.List(context.Background(), kind, store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{v1.KindFunction: 1, v1.KindPackage: 1}[kind]
		if len(objs) != want {
			t.Errorf("%d %s stored, want %d", len(objs), kind, want)
		}
	}
}

func TestConnectionRefusedSaysWhatToDo(t *testing.T) {
	a := newTestAPI(t)
	a.URL = "http://127.0.0.1:1" // nothing listens on port 1
	a.fails([]string{"env", "list"}, "cannot reach the Isotope API at http://127.0.0.1:1", "isotope server")
}

func TestTokenFromTheEnvironment(t *testing.T) {
	a := newTestAPIWithToken(t, "s3cret")
	t.Setenv("ISOTOPE_TOKEN", "")
	a.fails([]string{"env", "list"}, "nauthorized")
	t.Setenv("ISOTOPE_TOKEN", "s3cret")
	a.ok("env", "create", "--name", "node", "--image", "fission/node-env")
	// Archive uploads carry the token too.
	big := writeFile(t, "big.js", strings.Repeat("x", v1.ArchiveLiteralSizeLimit+1))
	a.ok("fn", "create", "--name", "big", "--env", "node", "--code", big)
	if out := a.ok("fn", "get", "--name", "big").Stdout; len(out) != v1.ArchiveLiteralSizeLimit+1 {
		t.Errorf("fn get returned %d bytes", len(out))
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func getPkg(t *testing.T, a *testAPI, name string) *v1.Package {
	t.Helper()
	p, err := store.GetAs[*v1.Package](context.Background(), a.Store, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func getFn(t *testing.T, a *testAPI, name string) *v1.Function {
	t.Helper()
	fn, err := store.GetAs[*v1.Function](context.Background(), a.Store, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	return fn
}

func TestFnCreateWithCodeInlinesALiteral(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "node", "--image", "fission/node-env")
	src := writeFile(t, "hello.js", "module.exports = async () => 'hi'\n")
	r := a.ok("fn", "create", "--name", "hello", "--env", "node", "--code", src, "--ft", "30", "--entry", "main", "--con", "7")
	if !strings.Contains(r.Stdout, "function 'hello' created") {
		t.Errorf("stdout: %s", r.Stdout)
	}
	fn := getFn(t, a, "hello")
	es := fn.Spec.InvokeStrategy.ExecutionStrategy
	if fn.Spec.FunctionTimeout != 30 || fn.Spec.Package.FunctionName != "main" || fn.Spec.Concurrency != 7 ||
		es.ExecutorType != v1.ExecutorTypePoolmgr || fn.Spec.IdleTimeout == nil || *fn.Spec.IdleTimeout != 120 || fn.Spec.RequestsPerPod != 1 {
		t.Errorf("function spec = %+v", fn.Spec)
	}
	ref := fn.Spec.Package.PackageRef
	if !strings.HasPrefix(ref.Name, "hello-") || len(ref.Name) > 63 || ref.ResourceVersion == "" {
		t.Errorf("package ref = %+v", ref)
	}
	p := getPkg(t, a, ref.Name)
	if p.Spec.Deployment.Type != v1.ArchiveTypeLiteral || string(p.Spec.Deployment.Literal) != "module.exports = async () => 'hi'\n" ||
		p.Spec.Deployment.Checksum.Sum == "" || p.Status.BuildStatus != v1.BuildStatusNone {
		t.Errorf("package = %+v status %+v", p.Spec.Deployment, p.Status)
	}
	// get, getsrc and getdeploy print the code.
	for _, sub := range []string{"get", "getsrc", "getdeploy"} {
		if out := a.ok("fn", sub, "--name", "hello").Stdout; out != "module.exports = async () => 'hi'\n" {
			t.Errorf("fn %s = %q", sub, out)
		}
	}
	var meta v1.Function
	if err := yaml.Unmarshal([]byte(a.ok("fn", "getmeta", "--name", "hello", "-o", "yaml").Stdout), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Kind != v1.KindFunction || meta.Spec.FunctionTimeout != 30 {
		t.Errorf("getmeta = %+v", meta)
	}
	if out := a.ok("fn", "list").Stdout; !strings.Contains(out, "hello") || !strings.Contains(out, "poolmgr") {
		t.Errorf("fn list:\n%s", out)
	}

	// update: only the given flags change; new code updates the package
	// in place and points the function at its new version.
	src2 := writeFile(t, "hello2.js", "module.exports = 2\n")
	a.ok("fn", "update", "--name", "hello", "--code", src2, "--ft", "45")
	fn2 := getFn(t, a, "hello")
	if fn2.Spec.FunctionTimeout != 45 || fn2.Spec.Concurrency != 7 || fn2.Spec.Package.PackageRef.Name != ref.Name {
		t.Errorf("after update: %+v", fn2.Spec)
	}
	p2 := getPkg(t, a, ref.Name)
	if string(p2.Spec.Deployment.Literal) != "module.exports = 2\n" || fn2.Spec.Package.PackageRef.ResourceVersion != p2.ResourceVersion {
		t.Errorf("package after update: %q rv %s, fn ref rv %s", p2.Spec.Deployment.Literal, p2.ResourceVersion, fn2.Spec.Package.PackageRef.ResourceVersion)
	}

	// A second function on the same package blocks in-place code changes
	// without --force.
	a.ok("fn", "create", "--name", "hello2", "--pkg", ref.Name)
	if getFn(t, a, "hello2").Spec.Environment.Name != "node" {
		t.Error("fn create --pkg did not take the package's environment")
	}
	a.fails([]string{"fn", "update", "--name", "hello", "--code", src}, "hello2", "--force")
	a.ok("fn", "update", "--name", "hello", "--code", src, "--force")
	if got := getFn(t, a, "hello2").Spec.Package.PackageRef.ResourceVersion; got != getPkg(t, a, ref.Name).ResourceVersion {
		t.Errorf("the other function's package ref was not bumped: %s", got)
	}

	a.fails([]string{"pkg", "delete", "--name", ref.Name}, "used by function(s)")
	a.ok("fn", "delete", "--name", "hello")
	a.ok("fn", "delete", "--name", "hello2")
	a.fails([]string{"fn", "get", "--name", "hello"}, "not found")
	if out := a.ok("pkg", "list", "--orphan").Stdout; !strings.Contains(out, ref.Name) {
		t.Errorf("pkg list --orphan:\n%s", out)
	}
	a.ok("pkg", "delete", "--orphan")
	if out := a.ok("pkg", "list").Stdout; strings.Contains(out, ref.Name) {
		t.Errorf("orphan not deleted:\n%s", out)
	}
}

func TestFnCreateWithURLMakesARoute(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "node", "--image", "fission/node-env")
	src := writeFile(t, "hello.js", "x")
	a.ok("fn", "create", "--name", "hello", "--env", "node", "--code", src, "--url", "hello/{id}", "--method", "GET", "--method", "post")
	routes, _, err := store.ListAs[*v1.HTTPTrigger](context.Background(), a.Store, store.ListOptions{})
	if err != nil || len(routes) != 1 {
		t.Fatalf("routes = %v, %v", routes, err)
	}
	r := routes[0].Spec
	if r.RelativeURL != "/hello/{id}" || strings.Join(r.Methods, ",") != "GET,POST" || r.FunctionReference.Name != "hello" ||
		r.FunctionReference.Type != v1.FunctionReferenceTypeFunctionName {
		t.Errorf("route = %+v", r)
	}
}

func TestRouteCRUD(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "node", "--image", "fission/node-env")
	src := writeFile(t, "hello.js", "x")
	a.ok("fn", "create", "--name", "a", "--env", "node", "--code", src)
	a.ok("fn", "create", "--name", "b", "--env", "node", "--code", src)

	a.ok("route", "create", "--name", "r1", "--function", "a", "--url", "/a")
	a.ok("ht", "create", "--name", "canary", "--function", "a", "--weight", "90", "--function", "b", "--weight", "10",
		"--prefix", "/api", "--keepprefix", "--method", "GET", "--method", "POST", "--host", "example.com")
	var r v1.HTTPTrigger
	if err := yaml.Unmarshal([]byte(a.ok("httptrigger", "get", "--name", "canary", "-o", "yaml").Stdout), &r); err != nil {
		t.Fatal(err)
	}
	if r.Spec.FunctionReference.Type != v1.FunctionReferenceTypeFunctionWeights || r.Spec.FunctionReference.FunctionWeights["b"] != 10 ||
		r.Spec.Prefix == nil || *r.Spec.Prefix != "/api" || !r.Spec.KeepPrefix || r.Spec.Host != "example.com" {
		t.Errorf("canary route = %+v", r.Spec)
	}
	list := a.ok("route", "list").Stdout
	if !strings.Contains(list, "a:90,b:10") || !strings.Contains(list, "/api*") || !strings.Contains(list, "r1") {
		t.Errorf("route list:\n%s", list)
	}
	if out := a.ok("route", "list", "--function", "b").Stdout; strings.Contains(out, "r1") || !strings.Contains(out, "canary") {
		t.Errorf("route list --function b:\n%s", out)
	}
	a.ok("route", "update", "--name", "r1", "--url", "/a2", "--method", "PUT")
	got, _ := store.GetAs[*v1.HTTPTrigger](context.Background(), a.Store, "default", "r1")
	if got.Spec.RelativeURL != "/a2" || strings.Join(got.Spec.Methods, ",") != "PUT" || got.Spec.FunctionReference.Name != "a" {
		t.Errorf("r1 after update = %+v", got.Spec)
	}
	a.ok("route", "update", "--name", "canary", "--function", "a", "--function", "b", "--weight", "50", "--weight", "50")
	got, _ = store.GetAs[*v1.HTTPTrigger](context.Background(), a.Store, "default", "canary")
	if got.Spec.FunctionReference.FunctionWeights["a"] != 50 || !got.Spec.KeepPrefix {
		t.Errorf("canary after update = %+v", got.Spec)
	}
	var rl struct{ Items []v1.HTTPTrigger }
	if err := yaml.Unmarshal([]byte(a.ok("route", "list", "-o", "yaml").Stdout), &rl); err != nil || len(rl.Items) != 2 {
		t.Errorf("route list -o yaml: %v %+v", err, rl)
	}
	a.ok("route", "delete", "--name", "r1")
	a.ok("route", "delete", "--function", "b")
	if out := a.ok("route", "list").Stdout; strings.Count(out, "\n") != 1 {
		t.Errorf("routes left:\n%s", out)
	}
}

func TestTimerCRUD(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "node", "--image", "fission/node-env")
	a.ok("fn", "create", "--name", "tick", "--env", "node", "--code", writeFile(t, "t.js", "x"))
	a.ok("timer", "create", "--name", "every5", "--function", "tick", "--cron", "@every 5s", "--subpath", "/run", "--method", "post")
	var tt v1.TimeTrigger
	if err := json.Unmarshal([]byte(a.ok("tt", "get", "--name", "every5", "-o", "json").Stdout), &tt); err != nil {
		t.Fatal(err)
	}
	if tt.Spec.Cron != "@every 5s" || tt.Spec.FunctionReference.Name != "tick" || tt.Spec.Method != "POST" || tt.Spec.Subpath != "/run" {
		t.Errorf("timer = %+v", tt.Spec)
	}
	a.ok("timetrigger", "update", "--name", "every5", "--cron", "*/10 * * * * *")
	a.fails([]string{"timer", "update", "--name", "every5", "--cron", "61 * * * *"}, "spec.cron")
	if out := a.ok("timer", "list").Stdout; !strings.Contains(out, "*/10 * * * * *") || !strings.Contains(out, "tick") {
		t.Errorf("timer list:\n%s", out)
	}
	a.ok("timer", "delete", "--name", "every5")
	a.fails([]string{"timer", "get", "--name", "every5"}, "not found")
}

func TestPkgCreateNoWaitAndInfo(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env", "--builder", "isotope/go-wasm-builder")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "hello.go"), []byte("package main\n"), 0o644)
	r := a.ok("pkg", "create", "--name", "hello", "--env", "go", "--src", dir, "--buildcmd", "build.sh", "--no-wait")
	if !strings.Contains(r.Stdout, "package 'hello' created") || strings.Contains(r.Stderr, "waiting") {
		t.Errorf("stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	p := getPkg(t, a, "hello")
	if p.Status.BuildStatus != v1.BuildStatusPending || p.Spec.Source.Type != v1.ArchiveTypeLiteral || p.Spec.BuildCommand != "build.sh" {
		t.Errorf("package = %+v / %+v", p.Spec, p.Status)
	}
	// The source is a deterministic zip of the directory's contents.
	zipped := a.ok("pkg", "getsrc", "--name", "hello").Stdout
	if names := zipNames(t, []byte(zipped)); strings.Join(names, ",") != "go.mod,sub/hello.go" {
		t.Errorf("zip entries = %v", names)
	}
	a.ok("pkg", "create", "--name", "hello-again", "--env", "go", "--src", dir, "--no-wait")
	if getPkg(t, a, "hello-again").Spec.Source.Checksum != p.Spec.Source.Checksum {
		t.Error("zipping the same directory twice gave different checksums")
	}
	out := filepath.Join(t.TempDir(), "src.zip")
	a.ok("pkg", "getsrc", "--name", "hello", "-o", out)
	if b, _ := os.ReadFile(out); string(b) != zipped {
		t.Error("pkg getsrc -o wrote other bytes than stdout")
	}
	a.fails([]string{"pkg", "getdeploy", "--name", "hello"}, "no deploy archive", "pending")

	info := a.ok("pkg", "info", "--name", "hello").Stdout
	if !strings.Contains(info, "Status:") || !strings.Contains(info, "pending") || !strings.Contains(info, "Build log:") {
		t.Errorf("pkg info:\n%s", info)
	}
	if out := a.ok("pkg", "list", "--status", "pending").Stdout; !strings.Contains(out, "hello") {
		t.Errorf("pkg list --status pending:\n%s", out)
	}
	if out := a.ok("pkg", "list", "--status", "failed").Stdout; strings.Contains(out, "hello") {
		t.Errorf("pkg list --status failed:\n%s", out)
	}
	a.fails([]string{"pkg", "list", "--status", "weird"}, "--status")

	// pkg update with new source resets the status to pending.
	p.Status = v1.PackageStatus{BuildStatus: v1.BuildStatusFailed, BuildLog: "boom"}
	if _, err := a.Store.UpdateStatus(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	a.ok("pkg", "update", "--name", "hello", "--src", writeFile(t, "h.go", "package main"), "--no-wait")
	if p := getPkg(t, a, "hello"); p.Status.BuildStatus != v1.BuildStatusPending || p.Status.BuildLog != "" {
		t.Errorf("after update: %+v", p.Status)
	}
	a.ok("pkg", "delete", "--name", "hello")
	a.fails([]string{"pkg", "info", "--name", "hello"}, "not found")
}

func TestLargeSourceGoesThroughTheStorageService(t *testing.T) {
	a := newTestAPI(t)
	a.ok("env", "create", "--name", "go", "--image", "isotope/wasm-env")
	big := make([]byte, v1.ArchiveLiteralSizeLimit+1)
	for i := range big {
		big[i] = byte(i*7 + i>>8) // deterministic, not very compressible... but --code is not zipped anyway
	}
	path := filepath.Join(t.TempDir(), "big.wasm")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	a.ok("fn", "create", "--name", "big", "--env", "go", "--code", path)
	p := getPkg(t, a, getFn(t, a, "big").Spec.Package.PackageRef.Name)
	if p.Spec.Deployment.Type != v1.ArchiveTypeURL || !strings.HasPrefix(p.Spec.Deployment.URL, a.URL+"/v1/archive?id=") ||
		len(p.Spec.Deployment.Literal) != 0 || p.Spec.Deployment.Checksum.Sum == "" {
		t.Fatalf("deployment = %+v", p.Spec.Deployment)
	}
	out := filepath.Join(t.TempDir(), "back.wasm")
	a.ok("pkg", "getdeploy", "--name", p.Name, "-o", out)
	got, _ := os.ReadFile(out)
	if string(got) != string(big) {
		t.Errorf("downloaded %d bytes, want the %d uploaded", len(got), len(big))
	}
	if s := a.ok("fn", "getdeploy", "--name", "big").Stdout; s != string(big) {
		t.Errorf("fn getdeploy gave %d bytes", len(s))
	}
}

func TestCompletionAndVersion(t *testing.T) {
	a := newTestAPI(t)
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := a.ok("completion", sh).Stdout; !strings.Contains(out, "isotope") {
			t.Errorf("completion %s printed %d bytes", sh, len(out))
		}
	}
	a.fails([]string{"completion", "tcsh"}, "tcsh")
	if out := a.ok("version").Stdout; !strings.HasPrefix(out, "isotope ") {
		t.Errorf("version = %q", out)
	}
}
