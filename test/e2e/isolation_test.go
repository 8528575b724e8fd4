package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/archive"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// TestIsolationBetweenFunctions runs two WebAssembly functions from zip
// deploy archives through `isotope server`. Function A, the hostile guest
// of wasmtest.IsolationGoSource, reads its own archive but neither B's
// archive (by B's real path under the data dir, or relative to its own)
// nor the host's /etc/passwd.
func TestIsolationBetweenFunctions(t *testing.T) {
	guest, err := wasmtest.BuildIsolationGuest()
	if err != nil {
		t.Fatalf("build the hostile guest: %v", err)
	}
	wasm, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "b's secret 5c1e"
	dir := t.TempDir()
	zipOf := func(name string, files map[string]string) string {
		src := filepath.Join(dir, name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, src, "fn.wasm", wasm)
		for n, content := range files {
			writeFile(t, src, n, []byte(content))
		}
		z := filepath.Join(dir, name+".zip")
		if err := archive.WriteFile(z, src); err != nil {
			t.Fatal(err)
		}
		return z
	}
	aZip := zipOf("a", map[string]string{"own.txt": "mine"})
	bZip := zipOf("b", map[string]string{"secret.txt": secret})

	// The server keeps compiled modules in <data>/cache/wasm; pointing it
	// at the test cache spares compiling the guest again (wazero's cache
	// writes atomically, so sharing it is safe).
	data := t.TempDir()
	if err := os.MkdirAll(wasmtest.CompileCacheDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(wasmtest.CompileCacheDir(), filepath.Join(data, "cache", "wasm")); err != nil {
		t.Fatal(err)
	}
	p := startPlatform(t, data)
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/acme/isotope/wasm-env:1.0")
	p.ok("pkg", "create", "--name", "pa", "--env", "wasm", "--deploy", aZip)
	p.ok("pkg", "create", "--name", "pb", "--env", "wasm", "--deploy", bZip)
	p.ok("fn", "create", "--name", "a", "--env", "wasm", "--pkg", "pa", "--url", "/a", "--method", "GET")
	p.ok("fn", "create", "--name", "b", "--env", "wasm", "--pkg", "pb", "--url", "/b", "--method", "GET")

	read := func(fn, path string) (int, string) {
		return p.get(t, "GET", "/"+fn+"?"+url.Values{"op": {"read"}, "path": {path}}.Encode(), nil)
	}
	// Each reads its own archive; B's secret is readable, by B.
	start := time.Now()
	p.waitServes(t, "/a?op=read&path=/own.txt", 200)
	t.Logf("A served after %v", time.Since(start))
	if code, body := read("b", "/secret.txt"); code != 200 || body != secret {
		t.Fatalf("B reading its own secret: %d %q", code, body)
	}

	// B's archive directory on the host, where internal/executor/wasmrt
	// puts it: <data>/functions/wasm/<namespace>/_sha256/<checksum[:32]>/deployarchive.
	var pkg struct {
		Spec struct {
			Deployment struct {
				Checksum struct {
					Sum string `json:"sum"`
				} `json:"checksum"`
			} `json:"deployment"`
		} `json:"spec"`
	}
	if out := p.ok("pkg", "get", "--name", "pb", "-o", "json"); json.Unmarshal([]byte(out), &pkg) != nil || len(pkg.Spec.Deployment.Checksum.Sum) < 32 {
		t.Fatalf("package pb has no deployment checksum:\n%s", out)
	}
	bDir := filepath.Join(data, "functions", "wasm", "default", "_sha256", pkg.Spec.Deployment.Checksum.Sum[:32], "deployarchive")
	bSecret := filepath.Join(bDir, "secret.txt")
	if b, err := os.ReadFile(bSecret); err != nil || string(b) != secret {
		t.Fatalf("B's archive is not at %s (%v): the test would prove nothing", bSecret, err)
	}
	var aDirs []string
	all, _ := filepath.Glob(filepath.Join(data, "functions", "wasm", "default", "_sha256", "*", "deployarchive"))
	for _, d := range all {
		if d != bDir {
			aDirs = append(aDirs, d)
		}
	}
	if len(aDirs) != 1 {
		t.Fatalf("A's archive directories: %v", aDirs)
	}
	rel, err := filepath.Rel(aDirs[0], bSecret)
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{bSecret, bDir, rel, "/" + rel, filepath.Join(data, "functions"), data, "/etc/passwd", "../../../../../../etc/passwd"} {
		code, body := read("a", path)
		if code != http.StatusForbidden || !strings.HasPrefix(body, "ERR ") {
			t.Errorf("A reading %s: %d %q, want a failure", path, code, body)
		}
		if strings.Contains(body, secret) || strings.Contains(body, "root:") {
			t.Errorf("A reading %s leaked: %q", path, body)
		}
	}
	// And A still serves.
	if code, body := read("a", "own.txt"); code != 200 || body != "mine" {
		t.Errorf("A reading its own file after the attempts: %d %q", code, body)
	}
}
