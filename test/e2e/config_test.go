package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// TestSecretsAndConfigMaps: a WebAssembly function reads its secret and
// config map at Fission's paths; values are sealed in the data dir and
// shown only with --show; a running instance keeps what it started with
// and a new one sees an update; a missing secret is named; hostile input
// is refused and loses nothing.
func TestSecretsAndConfigMaps(t *testing.T) {
	reactor, err := wasmtest.BuildReactor()
	if err != nil {
		t.Fatalf("build reactor module: %v", err)
	}
	dir := t.TempDir()
	data := t.TempDir()
	p := startPlatform(t, data)
	const pw = "s3cret-value-e2e"
	p.ok("secret", "create", "--name", "db", "--from-literal", "password="+pw)
	cfg := writeFile(t, dir, "settings.json", []byte(`{"mode":"fast"}`))
	p.ok("configmap", "create", "--name", "app", "--from-file", cfg, "--from-literal", "level=debug")

	// get never prints a value without --show.
	if out := p.ok("secret", "get", "--name", "db"); strings.Contains(out, pw) || !strings.Contains(out, "password") {
		t.Errorf("secret get without --show:\n%s", out)
	}
	if out := p.ok("secret", "get", "--name", "db", "--show"); !strings.Contains(out, pw) {
		t.Errorf("secret get --show lacks the value:\n%s", out)
	}
	if errOut := p.fails("secret", "get", "--name", "db", "-o", "yaml"); !strings.Contains(errOut, "--show") {
		t.Errorf("secret get -o yaml without --show: %s", errOut)
	}
	if out := p.ok("secret", "list"); strings.Contains(out, pw) || !strings.Contains(out, "db") {
		t.Errorf("secret list:\n%s", out)
	}

	p.ok("env", "create", "--name", "wasm", "--image", "isotope/wasm-env")
	p.ok("fn", "create", "--name", "reader", "--env", "wasm", "--deploy", reactor, "--entrypoint", "Files",
		"--secret", "db", "--configmap", "app")
	if body := p.waitServes(t, "/fission-function/reader?f=/secrets/default/db/password", 200); body != pw {
		t.Errorf("secret file: %q, want %q", body, pw)
	}
	if body := p.waitServes(t, "/fission-function/reader?f=/configs/default/app/settings.json", 200); body != `{"mode":"fast"}` {
		t.Errorf("config file: %q", body)
	}
	if body := p.waitServes(t, "/fission-function/reader?f=/configs/default/app/level", 200); body != "debug" {
		t.Errorf("config literal: %q", body)
	}
	// The guest sees only its own trees.
	if code, body := p.get(t, "GET", "/fission-function/reader?f=/secrets/default/../../../etc/passwd", nil); code == 200 {
		t.Errorf("guest escaped /secrets: %q", body)
	}

	// The store file holds no plaintext; the key file is the owner's.
	raw, err := os.ReadFile(filepath.Join(data, "isotope.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(pw)) {
		t.Error("isotope.db holds the secret's plaintext")
	}
	if fi, err := os.Stat(filepath.Join(data, "secrets.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secrets.key: %v %v", err, fi)
	}

	// An update reaches new instances; the running one keeps its files.
	p.ok("secret", "update", "--name", "db", "--from-literal", "password=rotated")
	if code, body := p.get(t, "GET", "/fission-function/reader?f=/secrets/default/db/password", nil); code != 200 || body != pw {
		t.Errorf("running instance after the update: %d %q, want the value it started with", code, body)
	}
	p.ok("fn", "update", "--name", "reader", "--fntimeout", "30") // a new instance
	waitFor(t, 60*time.Second, "a new instance to read the rotated secret", func() error {
		code, body := p.get(t, "GET", "/fission-function/reader?f=/secrets/default/db/password", nil)
		if code != 200 || body != "rotated" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})

	// A missing secret: the CLI warns, the function answers 503 naming it.
	r := p.run("fn", "create", "--name", "orphan", "--env", "wasm", "--deploy", reactor, "--entrypoint", "Files", "--secret", "nope")
	if r.code != 0 || !strings.Contains(r.stderr, "secret 'nope' not found") {
		t.Errorf("fn create with a missing secret: %s", r)
	}
	if code, body := p.get(t, "GET", "/fission-function/orphan?f=/secrets/default/nope/x", nil); code != http.StatusServiceUnavailable {
		t.Errorf("missing secret: %d %q, want 503", code, body)
	}
	if out := p.ok("fn", "logs", "--name", "orphan"); !strings.Contains(out, "secret default/nope of function default/orphan not found") {
		t.Errorf("fn logs does not name the missing secret:\n%s", out)
	}

	// Hostile input: names and keys that would leave the tree, oversized
	// values, typos. Nothing stored changes.
	big := writeFile(t, dir, "big", bytes.Repeat([]byte("x"), 1<<20+1))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"secret", "create", "--name", "../x", "--from-literal", "k=v"}, "metadata.name"},
		{[]string{"secret", "create", "--name", "x", "--from-literal", "../k=v"}, "data[../k]"},
		{[]string{"configmap", "create", "--name", "x", "--from-literal", "a/b=v"}, "data[a/b]"},
		{[]string{"secret", "create", "--name", "x", "--from-file", big}, "--from-file " + big},
		{[]string{"secret", "update", "--name", "db", "--from-literal", "..=v"}, "data[..]"},
		{[]string{"secret", "update", "--name", "db", "--remove-key", "nokey"}, `no key "nokey"`},
		{[]string{"secret", "craete", "--name", "x"}, `did you mean "create"?`},
		{[]string{"configmap", "lst"}, `did you mean "list"?`},
		{[]string{"secret", "create", "--name", "x", "--from-literl", "k=v"}, "did you mean --from-literal?"},
	} {
		if errOut := p.fails(tc.args...); !strings.Contains(errOut, tc.want) {
			t.Errorf("isotope %s: %s, want %q", strings.Join(tc.args, " "), errOut, tc.want)
		}
	}
	if out := p.ok("secret", "get", "--name", "db", "--show"); !strings.Contains(out, "rotated") {
		t.Errorf("after refused updates the secret changed:\n%s", out)
	}
	if out := p.ok("secret", "list"); strings.Contains(out, "\nx ") {
		t.Errorf("a refused secret was stored:\n%s", out)
	}
}
