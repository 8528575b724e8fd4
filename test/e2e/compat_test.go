package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/executor/proctest"
)

// Fission's programs are written for a pod: its Go environment listens on
// :8888 and its builder on :8001 whatever $PORT says. The stand-in in
// testdata/fissionstandin behaves the same way (see its doc), built here
// from source.

var (
	standinOnce sync.Once
	standinPath string
	standinErr  error
)

func standin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		standinPath = filepath.Join(filepath.Dir(binary), "fissionstandin")
		cmd := exec.Command("go", "build", "-o", standinPath, "./testdata/fissionstandin")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			standinErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if standinErr != nil {
		t.Fatalf("build the Fission stand-in: %v", standinErr)
	}
	return standinPath
}

// needIsolation skips unless the server gave local programs their own
// network (it says so once at start).
func needIsolation(t *testing.T, p *platform) {
	t.Helper()
	if !strings.Contains(p.logs.String(), "get their own network namespace") {
		t.Skipf("this machine allows no network namespaces; the server said:\n%s", p.logs)
	}
}

// netnsOf is the network namespace of pid ("net:[4026…]"), "" if gone.
func netnsOf(pid int) string {
	ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	return ns
}

// TestFissionFixedPortProgramsSideBySide runs programs that hard-code
// Fission's ports — runtimes on :8888 (v1 and v2 protocol), builders on
// :8001 — several at once, and checks that a kill -9 of the server leaves
// no process and no network namespace behind.
func TestFissionFixedPortProgramsSideBySide(t *testing.T) {
	sa := standin(t)
	dir := t.TempDir()
	p := startPlatform(t, "")
	needIsolation(t, p)

	p.ok("env", "create", "--name", "fgo", "--image", "ghcr.io/fission/go-env-1.23", "--version", "2",
		"--runtime-command", sa+" runtime", "--poolsize", "2")
	p.ok("env", "create", "--name", "fv1", "--image", "ghcr.io/fission/go-env-1.23", "--version", "1",
		"--runtime-command", sa+" runtime", "--poolsize", "2")
	for _, fn := range []struct{ name, env string }{{"a", "fgo"}, {"b", "fgo"}, {"c", "fv1"}} {
		code := writeFile(t, dir, fn.name+".txt", []byte("function "+fn.name))
		p.ok("fn", "create", "--name", fn.name, "--env", fn.env, "--code", code)
	}
	pids, nets := map[string]string{}, map[string]bool{}
	for _, fn := range []string{"a", "b", "c"} {
		if body := p.waitServes(t, "/fission-function/"+fn, 200); body != "function "+fn {
			t.Fatalf("function %s answered %q", fn, body)
		}
		_, pid := p.get(t, "GET", "/fission-function/"+fn+"?pid", nil)
		_, ns := p.get(t, "GET", "/fission-function/"+fn+"?netns", nil)
		pids[pid] = fn
		nets[ns] = true
	}
	if len(pids) != 3 || len(nets) != 3 {
		t.Fatalf("three functions on :8888 should be three processes in three namespaces: pids %v, namespaces %v", pids, nets)
	}
	if out := p.ok("fn", "test", "--name", "b"); !strings.Contains(out, "function b") {
		t.Errorf("fn test printed %q", out)
	}

	// Two builders on :8001 at once, each building its environment's
	// packages through Fission's builder protocol.
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "main.txt", []byte("hello"))
	for _, env := range []string{"fb1", "fb2"} {
		p.ok("env", "create", "--name", env, "--image", "ghcr.io/fission/go-env-1.23", "--runtime-command", sa+" runtime",
			"--builder", "ghcr.io/fission/go-builder-1.23", "--builder-command", sa+" builder", "--poolsize", "1")
		p.ok("fn", "create", "--name", "built-"+env, "--env", env, "--src", src, "--entrypoint", "main.txt")
	}
	for _, env := range []string{"fb1", "fb2"} {
		if body := p.waitServes(t, "/fission-function/built-"+env, 200); body != "built: hello" {
			t.Fatalf("built function of %s answered %q", env, body)
		}
		pkg := getJSON(t, p, "fn", "built-"+env)["spec"].(map[string]any)["package"].(map[string]any)["packageref"].(map[string]any)["name"].(string)
		if info := p.ok("pkg", "info", "--name", pkg); !strings.Contains(info, "standin builder on :8001 building") {
			t.Errorf("build log of %s does not come from the builder on :8001:\n%s", env, info)
		}
	}

	// Every shim and program, and their namespaces, go with the server.
	running := procs(sa)
	if len(running) < 2*(2+2+2) {
		t.Errorf("expected a shim and a program per instance and builder, found %d processes: %v", len(running), running)
	}
	spaces := map[string]bool{}
	for pid := range running {
		if ns := netnsOf(pid); ns != "" && ns != netnsOf(os.Getpid()) {
			spaces[ns] = true
		}
	}
	p.kill()
	waitFor(t, 20*time.Second, "every shim and program to die with the server", func() error {
		if left := procs(sa); len(left) > 0 {
			return fmt.Errorf("still running: %v", left)
		}
		return nil
	})
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil && spaces[netnsOf(pid)] {
			t.Errorf("process %d is still in one of the instances' network namespaces", pid)
		}
	}
}

// TestNeverReadyProgramsFailInBoundedTime: a runtime and a builder that
// never listen fail the specialization and the build within the server's
// timeouts, saying what was waited for and quoting the program's output.
func TestNeverReadyProgramsFailInBoundedTime(t *testing.T) {
	sa := standin(t)
	dir := t.TempDir()
	p := startPlatform(t, "", "--instance-start-timeout", "3s", "--builder-ready-timeout", "3s")
	needIsolation(t, p)

	p.ok("env", "create", "--name", "slow", "--image", "ghcr.io/fission/go-env-1.23",
		"--runtime-command", sa+" runtime --never-ready", "--poolsize", "1")
	p.ok("fn", "create", "--name", "stuck", "--env", "slow", "--code", writeFile(t, dir, "x.txt", []byte("x")))
	start := time.Now()
	r := p.run("fn", "test", "--name", "stuck")
	if r.code == 0 {
		t.Fatalf("fn test of a runtime that never listens succeeded: %s", r)
	}
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("failing took %s", took)
	}
	// The router answers 500 without details; the function's log has them.
	logs := p.ok("fn", "logs", "--name", "stuck")
	for _, want := range []string{"127.0.0.1:8888 in its own network namespace", "waited 3", "--instance-start-timeout", "still warming up"} {
		if !strings.Contains(logs, want) {
			t.Errorf("fn logs does not say %q:\n%s", want, logs)
		}
	}

	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	writeFile(t, src, "main.txt", []byte("hello"))
	p.ok("env", "create", "--name", "slowbuild", "--image", "ghcr.io/fission/go-env-1.23", "--runtime-command", sa+" runtime",
		"--builder", "ghcr.io/fission/go-builder-1.23", "--builder-command", sa+" builder --never-ready")
	p.run("pkg", "create", "--name", "neverbuilt", "--env", "slowbuild", "--src", src) // waits for the build, which fails
	waitFor(t, 60*time.Second, "the build to fail", func() error {
		if s := buildStatus(t, p, "neverbuilt"); s != "failed" {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
	info := p.ok("pkg", "info", "--name", "neverbuilt")
	for _, want := range []string{"did not become ready within 3s", "GET /healthz", "127.0.0.1:8001 in its own network namespace", "still warming up"} {
		if !strings.Contains(info, want) {
			t.Errorf("build log does not say %q:\n%s", want, info)
		}
	}
}

// TestWithoutNamespaces runs the server as on a machine that allows
// neither user nor network namespaces (the documented knob): programs
// that honour $PORT still work, a fixed-port program fails saying what
// to do, and an environment or server that insists on isolation gets an
// error naming what is missing.
func TestWithoutNamespaces(t *testing.T) {
	sa := standin(t)
	dir := t.TempDir()
	knob := "ISOTOPE_NETNS_UNAVAILABLE=1"

	cmd := exec.Command(binary, "server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--router-addr", "127.0.0.1:0", "--instance-network", "isolated")
	cmd.Env = append(os.Environ(), knob)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--instance-network isolated") || !strings.Contains(string(out), "neither user nor network namespaces") {
		t.Errorf("server --instance-network isolated without namespaces: %v\n%s", err, out)
	}

	p := startPlatformEnv(t, "", []string{knob}, "--instance-start-timeout", "3s")
	if !strings.Contains(p.logs.String(), "run on the host network and must listen on $PORT") {
		t.Errorf("the server did not warn that programs get the host network:\n%s", p.logs)
	}
	code := writeFile(t, dir, "x.txt", []byte("on the host network"))

	p.ok("env", "create", "--name", "hostport", "--image", "example.com/env:1", "--runtime-command", proctest.EnvServer(t), "--poolsize", "1")
	p.ok("fn", "create", "--name", "portfn", "--env", "hostport", "--code", code)
	if body := p.waitServes(t, "/fission-function/portfn", 200); body != "on the host network" {
		t.Errorf("a $PORT program on the host network answered %q", body)
	}

	p.ok("env", "create", "--name", "fixed", "--image", "ghcr.io/fission/go-env-1.23", "--runtime-command", sa+" runtime", "--poolsize", "1")
	p.ok("fn", "create", "--name", "fixedfn", "--env", "fixed", "--code", code)
	if r := p.run("fn", "test", "--name", "fixedfn"); r.code == 0 {
		t.Errorf("a fixed-port program on the host network served: %s", r)
	}
	if logs := p.ok("fn", "logs", "--name", "fixedfn"); !strings.Contains(logs, "isotope.dev/network=isolated") {
		t.Errorf("a fixed-port program on the host network: the error does not say what to do:\n%s", logs)
	}

	p.ok("env", "create", "--name", "insists", "--image", "ghcr.io/fission/go-env-1.23", "--runtime-command", sa+" runtime",
		"--poolsize", "1", "--annotation", "isotope.dev/network=isolated")
	p.ok("fn", "create", "--name", "insistsfn", "--env", "insists", "--code", code)
	if r := p.run("fn", "test", "--name", "insistsfn"); r.code == 0 {
		t.Errorf("an environment that insists on its own network served without one: %s", r)
	}
	logs := p.ok("fn", "logs", "--name", "insistsfn")
	for _, want := range []string{"annotation isotope.dev/network=isolated", "neither user nor network namespaces", "isotope.dev/network=host"} {
		if !strings.Contains(logs, want) {
			t.Errorf("an environment that insists on its own network: the error does not say %q:\n%s", want, logs)
		}
	}
}

// nodeRuntime is a small Node.js environment server in Fission's manner:
// it hard-codes :8888 and, on /v2/specialize, requires the file at
// filepath and calls its export with Fission's (context, callback)
// arguments, as Fission's nodejs image does.
const nodeRuntime = `
const http = require('http');
let fn = null;
http.createServer((req, res) => {
  let body = '';
  req.on('data', c => body += c);
  req.on('end', () => {
    if (req.url === '/healthz') { res.end(); return; }
    if (req.method === 'POST' && req.url === '/v2/specialize') {
      if (fn) { res.writeHead(400); res.end('Not a generic container'); return; }
      const r = JSON.parse(body);
      try { const m = require(r.filepath); fn = r.functionName ? m[r.functionName] : m; }
      catch (e) { res.writeHead(500); res.end(String(e)); return; }
      res.writeHead(202); res.end(); return;
    }
    if (!fn) { res.writeHead(500); res.end('Generic container: no requests supported'); return; }
    Promise.resolve(fn({request: req})).then(out => {
      res.writeHead(out.status || 200); res.end(String(out.body));
    });
  });
}).listen(8888);
`

// TestFissionNodeSpecSingleFile applies a Fission spec directory whose
// package is one plain file (include: [helloWorld.js]), as Fission's
// examples are: the runtime must get the file, not a zip of it.
func TestFissionNodeSpecSingleFile(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (Debian package nodejs): the single-file Node.js spec needs it")
	}
	project := t.TempDir()
	server := writeFile(t, project, "server.js", []byte(nodeRuntime))
	writeFile(t, project, "helloWorld.js", []byte("module.exports = async function(context) {\n  return {status: 200, body: 'hello, world!\\n'};\n}\n"))
	specs := filepath.Join(project, "specs")
	os.MkdirAll(specs, 0o755)
	writeFile(t, specs, "fission-deployment-config.yaml", []byte("apiVersion: fission.io/v1\nkind: DeploymentConfig\nname: hello\nuid: 6d6e5c0c-7d1e-4f3a-9d8e-3b1f2a9c4d10\n"))
	writeFile(t, specs, "env-nodejs.yaml", []byte(fmt.Sprintf(`apiVersion: fission.io/v1
kind: Environment
metadata:
  name: nodejs
  namespace: default
spec:
  version: 2
  poolsize: 1
  runtime:
    image: ghcr.io/fission/node-env
    container:
      name: nodejs
      command: [%q, %q]
`, node, server)))
	writeFile(t, specs, "function-hello.yaml", []byte(`include:
- helloWorld.js
kind: ArchiveUploadSpec
name: helloworld-js-abcd

---
apiVersion: fission.io/v1
kind: Package
metadata:
  name: hello-pkg
  namespace: default
spec:
  deployment:
    checksum: {}
    type: url
    url: archive://helloworld-js-abcd
  environment:
    name: nodejs
    namespace: default
  source:
    checksum: {}
status:
  buildstatus: none
---
apiVersion: fission.io/v1
kind: Function
metadata:
  name: hello
  namespace: default
spec:
  environment:
    name: nodejs
    namespace: default
  InvokeStrategy:
    ExecutionStrategy:
      ExecutorType: poolmgr
    StrategyType: execution
  package:
    packageref:
      name: hello-pkg
      namespace: default
---
apiVersion: fission.io/v1
kind: HTTPTrigger
metadata:
  name: hello
  namespace: default
spec:
  relativeurl: /hello
  methods: [GET]
  functionref:
    type: name
    name: hello
`))
	p := startPlatform(t, "")
	p.ok("spec", "apply", "--specdir", specs)
	if body := p.waitServes(t, "/hello", 200); body != "hello, world!\n" {
		t.Errorf("the Node.js function answered %q", body)
	}
	deploy := filepath.Join(t.TempDir(), "deploy")
	p.ok("pkg", "getdeploy", "--name", "hello-pkg", "-o", deploy)
	if b, _ := os.ReadFile(deploy); !strings.HasPrefix(string(b), "module.exports") {
		t.Errorf("the deploy archive is not helloWorld.js itself: %.40q", b)
	}
}
