package wasm

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The isolation tests run wasmtest.IsolationGoSource, a hostile WAGI
// guest, through the real runtime: whatever it tries, it sees only its own
// archive directory and environment, reaches no socket and cannot take
// more memory than its limit.

var (
	hostileOnce  sync.Once
	hostileBytes []byte
	hostileErr   error
)

func hostileModule(t testing.TB) []byte {
	t.Helper()
	hostileOnce.Do(func() {
		var p string
		if p, hostileErr = wasmtest.BuildIsolationGuest(); hostileErr == nil {
			hostileBytes, hostileErr = os.ReadFile(p)
		}
	})
	if hostileErr != nil {
		t.Fatalf("building the hostile guest: %v", hostileErr)
	}
	return hostileBytes
}

// ask sends one ?op= request to the hostile guest.
func ask(t *testing.T, srv string, op string, args ...string) result {
	t.Helper()
	q := url.Values{"op": {op}}
	for i := 0; i+1 < len(args); i += 2 {
		q.Set(args[i], args[i+1])
	}
	return do(t, "GET", srv+"/?"+q.Encode(), "", nil)
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestIsolationFiles: a function reads its own archive directory and
// nothing else: not the host's files, not another function's archive,
// not the data directory, whatever path it uses.
func TestIsolationFiles(t *testing.T) {
	data := t.TempDir() // stands for the server's data dir
	own := filepath.Join(data, "functions", "default", "a", "deployarchive")
	other := filepath.Join(data, "functions", "default", "b", "deployarchive")
	mustWrite(t, filepath.Join(own, "own.txt"), "mine")
	mustWrite(t, filepath.Join(own, "sub", "deep.txt"), "deep and mine")
	const secret = "b's secret 7f3a"
	mustWrite(t, filepath.Join(other, "secret.txt"), secret)
	hostSecret := filepath.Join(t.TempDir(), "host-secret.txt")
	mustWrite(t, hostSecret, secret)

	// A link inside the archive is followed; wazero's mount would follow
	// one leaving it just as well, so Load refuses such a directory
	// (internal/archive never produces one; this is the runtime's guard).
	if err := os.Symlink("own.txt", filepath.Join(own, "inner-link")); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs-link":      other,
		"rel-link":      filepath.Join("..", "..", "b", "deployarchive"),
		"dangling-link": "/tmp/isotope-not-there-yet",
		"chain-link":    "inner-chain/..",
	} {
		evil := filepath.Join(t.TempDir(), "deployarchive")
		mustWrite(t, filepath.Join(evil, "own.txt"), "mine")
		if name == "chain-link" {
			os.Symlink("..", filepath.Join(evil, "inner-chain"))
		}
		if err := os.Symlink(target, filepath.Join(evil, name)); err != nil {
			t.Fatal(err)
		}
		_, err := sharedRuntime(t).Load(context.Background(), LoadRequest{Wasm: hostileModule(t), Name: "default/evil", ArchiveDir: evil})
		if err == nil || !strings.Contains(err.Error(), "points outside the archive directory") {
			t.Errorf("archive dir with %s -> %s: Load error %v, want a refusal", name, target, err)
		}
	}

	rt := sharedRuntime(t)
	srv := serve(t, load(t, rt, LoadRequest{Wasm: hostileModule(t), Name: "default/a", ArchiveDir: own}), "").URL

	for path, want := range map[string]string{
		"/own.txt":          "mine",
		"/inner-link":       "mine",
		"own.txt":           "mine",
		"/sub/deep.txt":     "deep and mine",
		"sub/../own.txt":    "mine",
		"/../../../own.txt": "mine", // ".." stops at the guest's root
	} {
		if r := ask(t, srv, "read", "path", path); r.status != 200 || r.body != want {
			t.Errorf("reading its own %s: %d %q, want %q", path, r.status, r.body, want)
		}
	}

	rel, err := filepath.Rel(own, filepath.Join(other, "secret.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/etc/passwd",
		"/etc/hostname",
		"/proc/self/environ",
		"/proc/self/maps",
		"../../../../../../../../etc/passwd",
		rel, // ../../b/deployarchive/secret.txt
		"/" + rel,
		filepath.Join(other, "secret.txt"), // B's archive by its host path
		other,
		data,
		own, // even its own directory is not at its host path
		hostSecret,
		filepath.Dir(hostSecret),
	} {
		r := ask(t, srv, "read", "path", path)
		if r.status != http.StatusForbidden || !strings.HasPrefix(r.body, "ERR ") {
			t.Errorf("reading %s: %d %q, want a failure", path, r.status, r.body)
		}
		if strings.Contains(r.body, secret) || strings.Contains(r.body, "root:") {
			t.Errorf("reading %s leaked: %q", path, r.body)
		}
	}

	// Without an archive directory the guest has no files at all.
	bare := serve(t, load(t, rt, LoadRequest{Wasm: hostileModule(t), Name: "default/bare"}), "").URL
	for _, path := range []string{"/", "/etc/passwd", "own.txt", hostSecret} {
		if r := ask(t, bare, "read", "path", path); r.status != http.StatusForbidden {
			t.Errorf("reading %s with no archive dir: %d %q, want a failure", path, r.status, r.body)
		}
	}
}

// TestIsolationSockets: a guest cannot connect anywhere (WASI preview 1
// has no connect, and the host offers no socket extension) and finds no
// preopened listener among its file descriptors.
func TestIsolationSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()

	srv := serve(t, load(t, sharedRuntime(t), LoadRequest{Wasm: hostileModule(t), Name: "default/dialer", ArchiveDir: t.TempDir()}), "").URL
	for _, addr := range []string{ln.Addr().String(), "localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "1.1.1.1:53", "[::1]:22"} {
		r := ask(t, srv, "dial", "addr", addr)
		if r.status != http.StatusForbidden || !strings.HasPrefix(r.body, "ERR ") {
			t.Errorf("dial %s: %d %q, want a failure", addr, r.status, r.body)
		}
		t.Logf("dial %s from the guest: %s", addr, strings.TrimSpace(r.body))
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the host listener accepted %d connections from the guest", n)
	}
	if r := ask(t, srv, "listeners"); r.status != 200 || r.body != "done\n" {
		t.Errorf("preopened listeners: %d %q, want none", r.status, r.body)
	}
}

// TestIsolationMemory: a guest allocating past its MemoryPages fails
// (502) while a neighbouring function keeps serving, and the host's
// resident memory grows by far less than the guests asked for.
func TestIsolationMemory(t *testing.T) {
	const pages = 512 // 32 MiB
	const askMiB = 256
	rt := sharedRuntime(t)
	logs := &testlog.Buffer{}
	hog := serve(t, load(t, rt, LoadRequest{Wasm: hostileModule(t), Name: "default/hog", Limits: Limits{MemoryPages: pages}, Log: logs}), "").URL
	neighbour := serve(t, load(t, rt, LoadRequest{Wasm: wasmtest.WAGIHello(), Name: "default/neighbour"}), "").URL

	// Within the limit it works, which also warms everything up before
	// the resident size is measured.
	if r := ask(t, hog, "alloc", "mb", "8"); r.status != 200 || r.body != "allocated 8 MiB\n" {
		t.Fatalf("allocating 8 MiB under a 32 MiB limit: %d %q", r.status, r.body)
	}
	debug.FreeOSMemory()
	before := vmRSS(t)

	// Each hog instance holds at most its 32 MiB limit live, but linear
	// memory grows by copying into a buffer 1.25 times larger, and the
	// old copies stay until the host's GC frees them: 1 + 0.8 + 0.64 +
	// ... = 5 × limit allocated per instance at worst, whatever it asks.
	const hogs = 2
	bound := int64(hogs*5*pages*65536) + 64<<20
	for round := 1; round <= 2; round++ {
		var wg sync.WaitGroup
		results := make(chan result, hogs)
		for range hogs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- ask(t, hog, "alloc", "mb", strconv.Itoa(askMiB))
			}()
		}
		// The neighbour serves while the hogs run.
		for i := 0; i < 10; i++ {
			if r := do(t, "GET", neighbour+"/", "", nil); r.status != 200 || r.body != "hello\n" {
				t.Fatalf("neighbour during the hogs: %d %q", r.status, r.body)
			}
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r.status != http.StatusBadGateway {
				t.Errorf("allocating %d MiB under a 32 MiB limit: %d %q, want 502", askMiB, r.status, r.body)
			}
		}
		peak := vmRSS(t)
		debug.FreeOSMemory()
		kept := vmRSS(t)
		t.Logf("round %d: %d guests asked %d MiB each (limit %d MiB): VmRSS %d MiB before, %d MiB after, %d MiB once freed",
			round, hogs, askMiB, pages*65536>>20, before>>20, peak>>20, kept>>20)
		if raceEnabled {
			continue // the detector's shadow memory swamps the figures
		}
		if grew := peak - before; grew > bound {
			t.Errorf("round %d: host RSS grew by %d MiB (bound %d MiB)", round, grew>>20, bound>>20)
		}
		if grew := kept - before; grew > 64<<20 {
			t.Errorf("round %d: host keeps %d MiB more after the hogs ended", round, grew>>20)
		}
	}
	if !strings.Contains(logs.String(), "out of memory") {
		t.Errorf("log lacks the guest's out of memory report:\n%s", logs.String())
	}
	if r := do(t, "GET", neighbour+"/", "", nil); r.status != 200 {
		t.Errorf("neighbour after the hogs: %d %q", r.status, r.body)
	}
	if r := ask(t, hog, "alloc", "mb", "8"); r.status != 200 {
		t.Errorf("the hog function after its failures: %d %q", r.status, r.body)
	}
}

// vmRSS reads this process's resident set size from /proc.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestIsolationEnv: a guest sees the CGI variables, its configured
// environment and ISOTOPE_ENTRYPOINT, and nothing of the host's.
func TestIsolationEnv(t *testing.T) {
	const secret = "host-secret-0b5e"
	t.Setenv("ISOTOPE_TEST_HOST_SECRET", secret)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	m := load(t, sharedRuntime(t), LoadRequest{
		Wasm:       hostileModule(t),
		Name:       "default/env",
		Entrypoint: "main",
		Env:        map[string]string{"GREETING": "hi", "DB_URL": "postgres://fn"},
	})
	r := ask(t, serve(t, m, "").URL, "env")
	if r.status != 200 {
		t.Fatalf("env: %d %q", r.status, r.body)
	}
	if strings.Contains(r.body, secret) {
		t.Fatalf("the guest sees the host's secret:\n%s", r.body)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(r.body), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	for k, want := range map[string]string{"GREETING": "hi", "DB_URL": "postgres://fn", EnvEntrypoint: "main", "REQUEST_METHOD": "GET"} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	cgi := map[string]bool{}
	for _, kv := range cgiEnv(&http.Request{Method: "GET", URL: &url.URL{Path: "/"}}, InvokeOptions{}, 0) {
		cgi[kv[0]] = true
	}
	for k := range env {
		if !cgi[k] && !strings.HasPrefix(k, "HTTP_") && k != "GREETING" && k != "DB_URL" && k != EnvEntrypoint {
			t.Errorf("unexpected variable %s=%q in the guest (host leak?)", k, env[k])
		}
	}
	for _, k := range []string{"PATH", "HOME", "USER", "ISOTOPE_TEST_HOST_SECRET", "AWS_SECRET_ACCESS_KEY", "GOCACHE"} {
		if _, ok := env[k]; ok && os.Getenv(k) != "" {
			t.Errorf("host variable %s is visible to the guest", k)
		}
	}
}
