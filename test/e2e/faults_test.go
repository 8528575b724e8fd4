package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// Fault tests: the server is killed with SIGKILL in the middle of work,
// restarted on the same data dir, and must converge: nothing partial is
// visible, nothing stored is lost, nothing keeps running.

// TestFaultKillDuringArchiveUpload kills the server while an upload is
// half sent.
func TestFaultKillDuringArchiveUpload(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	p := startPlatform(t, data)
	before := []uploaded{p.upload(t, dir, "a.bin", 300<<10), p.upload(t, dir, "b.bin", 2<<20)}

	// 1 MiB of an 8 MiB archive arrives, then the client stalls.
	pausedUpload(t, p.api, 8<<20, 1<<20)
	waitFor(t, 10*time.Second, "the upload in progress on disk", func() error {
		for _, f := range tempFiles(t, data) {
			if st, err := os.Stat(f); err == nil && st.Size() > 0 {
				return nil
			}
		}
		return errors.New("no temp file with data yet")
	})
	if ids := p.archiveIDs(t); len(ids) != 2 {
		t.Errorf("while an upload is in progress, archive list shows %d archives, want 2: %v", len(ids), ids)
	}
	p.kill()
	if len(tempFiles(t, data)) == 0 {
		t.Fatalf("the kill left no temp file: the test did not catch the upload mid-body")
	}

	p = startPlatform(t, data)
	ids := p.archiveIDs(t)
	want := []string{before[0].ID, before[1].ID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("after restart archive list = %v, want only the two whole archives %v", ids, want)
	}
	if left := tempFiles(t, data); len(left) > 0 {
		t.Errorf("the restart left the partial upload on disk: %v", left)
	}
	for i, u := range before {
		out := filepath.Join(dir, fmt.Sprintf("down-%d", i))
		p.ok("archive", "download", "--id", u.ID, "-o", out)
		if got := fileSum(t, out); got != u.Checksum.Sum {
			t.Errorf("archive %s downloads with sha256 %s, want %s", u.ID, got, u.Checksum.Sum)
		}
	}
	// The store still takes uploads.
	p.upload(t, dir, "c.bin", 64<<10)
}

// slowBuildScript is a build command that records its pid, waits while
// the file "slow" exists next to it, then deploys its source as is.
const slowBuildScript = `#!/bin/sh
echo $$ > %[1]s/build.pid
echo "slow build started"
while [ -e %[1]s/slow ]; do sleep 0.05; done
cp -r "$SRC_PKG" "$DEPLOY_PKG"
echo "slow build done"
`

// TestFaultKillDuringBuild kills the server while a package builds: the
// builder and its build command die with it, and after the restart the
// package is built again instead of staying "running".
func TestFaultKillDuringBuild(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	script := writeFile(t, dir, "slowbuild.sh", fmt.Appendf(nil, slowBuildScript, dir))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "slow", nil)
	src := writeFile(t, dir, "main.txt", []byte("source"))

	p := startPlatform(t, data)
	p.ok("env", "create", "--name", "slow", "--image", "example.com/slow-env:1", "--poolsize", "0",
		"--builder", "example.com/slow-builder:1", "--builder-command", binary+" builder", "--buildcmd", script)
	p.ok("pkg", "create", "--name", "slowpkg", "--env", "slow", "--src", src, "--no-wait")

	var scriptPID int
	waitFor(t, 60*time.Second, "the build to be running", func() error {
		if st := buildStatus(t, p, "slowpkg"); st != "running" {
			return fmt.Errorf("build status %q", st)
		}
		b, err := os.ReadFile(filepath.Join(dir, "build.pid"))
		if err != nil {
			return err
		}
		_, err = fmt.Sscan(string(b), &scriptPID)
		return err
	})
	// Everything the build started: the builder (its command line names
	// the data dir), the build script, and their children.
	builders := procs(data)
	if len(builders) == 0 {
		t.Fatalf("no builder process names the data dir %s", data)
	}
	groups := []int{scriptPID}
	for pid := range builders {
		groups = append(groups, pid)
	}
	running := procs(data, groups...)
	running[scriptPID] = "build script"
	t.Logf("before the kill: server pid %d, build processes %v", p.pid(), running)

	p.kill()
	waitFor(t, 10*time.Second, "the build processes to die with the server", func() error {
		var alive []string
		for pid, cmd := range running {
			if procAlive(pid) {
				alive = append(alive, fmt.Sprintf("%d (%s)", pid, cmd))
			}
		}
		for pid, cmd := range procs(data, groups...) {
			if _, seen := running[pid]; !seen {
				alive = append(alive, fmt.Sprintf("%d (%s)", pid, cmd))
			}
		}
		if len(alive) > 0 {
			return fmt.Errorf("still alive: %s", strings.Join(alive, ", "))
		}
		return nil
	})
	checkStoreFile(t, data)

	os.Remove(filepath.Join(dir, "slow"))
	p = startPlatform(t, data)
	waitFor(t, 60*time.Second, "the interrupted build to converge", func() error {
		switch st := buildStatus(t, p, "slowpkg"); st {
		case "succeeded":
			return nil
		case "failed":
			t.Fatalf("the rebuild failed:\n%s", p.ok("pkg", "info", "--name", "slowpkg"))
		default:
			return fmt.Errorf("build status %q", st)
		}
		return nil
	})
	info := p.ok("pkg", "info", "--name", "slowpkg")
	if !strings.Contains(info, "slow build done") {
		t.Errorf("the build log is not the rebuild's:\n%s", info)
	}
}

// buildStatus is the package's status.buildstatus.
func buildStatus(t *testing.T, p *platform, name string) string {
	t.Helper()
	var pkg struct {
		Status struct {
			BuildStatus string `json:"buildstatus"`
		} `json:"status"`
	}
	out := p.ok("pkg", "get", "--name", name, "-o", "json")
	if err := json.Unmarshal([]byte(out), &pkg); err != nil {
		t.Fatalf("pkg get -o json: %v\n%s", err, out)
	}
	return pkg.Status.BuildStatus
}

// TestFaultKillDuringRequestBurst kills the server while a WebAssembly
// function is under a burst of requests.
func TestFaultKillDuringRequestBurst(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	p := startPlatform(t, data)
	hello := writeFile(t, dir, "hello.wasm", wasmtest.WAGIHello())
	p.ok("env", "create", "--name", "wasm", "--image", "ghcr.io/acme/isotope/wasm-env:1.0")
	p.ok("fn", "create", "--name", "hello", "--env", "wasm", "--deploy", hello, "--url", "/hello", "--method", "GET")
	p.waitServes(t, "/hello", 200)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg  sync.WaitGroup
		res loadResult
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		res = hammer(ctx, p.router+"/hello", 1_000_000, 32)
	}()
	// Kill once the burst is well under way: the router's request
	// counter has moved.
	waitFor(t, 30*time.Second, "the burst to be under way", func() error {
		if n := routerRequests(t, p); n < 500 {
			return fmt.Errorf("%d requests served", n)
		}
		return nil
	})
	p.kill()
	cancel()
	wg.Wait()
	t.Logf("burst cut by kill -9: %v", res)
	if len(res.byCode[200]) == 0 {
		t.Fatalf("the burst got no answers before the kill: %v", res)
	}
	for code := range res.byCode {
		if code != 200 {
			t.Errorf("before the kill the function answered %d: %v", code, res)
		}
	}
	checkStoreFile(t, data)

	p = startPlatform(t, data)
	if body := p.waitServes(t, "/hello", 200); body != "hello\n" {
		t.Errorf("after restart the function answered %q", body)
	}
	assertStoreReadable(t, p)
}

// routerRequests is the sum of isotope_router_requests_total.
func routerRequests(t *testing.T, p *platform) int {
	t.Helper()
	code, body := getURL(p.api + "/metrics")
	if code != 200 {
		return 0
	}
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "isotope_router_requests_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += int(v)
		}
	}
	return n
}

// assertStoreReadable lists every kind and reads every listed object
// back, and downloads every archive.
func assertStoreReadable(t *testing.T, p *platform) {
	t.Helper()
	objects := 0
	for _, kind := range []string{"env", "pkg", "fn", "route", "timer"} {
		var list struct {
			Items []struct {
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			} `json:"items"`
		}
		out := p.ok(kind, "list", "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("%s list -o json: %v\n%s", kind, err, out)
		}
		for _, it := range list.Items {
			getJSON(t, p, kind, it.Metadata.Name)
			objects++
		}
	}
	ids := p.archiveIDs(t)
	for _, id := range ids {
		out := filepath.Join(t.TempDir(), "archive")
		p.ok("archive", "download", "--id", id, "-o", out) // checked against its sha256
	}
	t.Logf("store after restart: %d objects read back, %d archives downloaded and verified", objects, len(ids))
	if objects < 4 {
		t.Errorf("the store lost objects: %d read back, want env, pkg, fn and route", objects)
	}
}

// TestFaultFullDisk puts the archive directory on a 2 MiB tmpfs and
// uploads more than fits.
func TestFaultFullDisk(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	archives := filepath.Join(data, "archives")
	if err := os.MkdirAll(archives, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", archives, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a 2 MiB tmpfs as the archive directory (needs root / CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(archives, 0); err != nil {
			syscall.Unmount(archives, syscall.MNT_DETACH)
		}
	})
	p := startPlatform(t, data)
	small := p.upload(t, dir, "small.bin", 256<<10)

	big := writeFile(t, dir, "big.bin", pseudoRandom(4<<20, "big"))
	stderr := p.fails("archive", "upload", "--name", big)
	if !strings.Contains(stderr, "507") || !strings.Contains(stderr, "no space") {
		t.Errorf("a full disk is not reported clearly (want 507 and 'no space'): %s", stderr)
	}
	if left := tempFiles(t, data); len(left) > 0 {
		t.Errorf("the failed upload left %v", left)
	}
	if ids := p.archiveIDs(t); len(ids) != 1 || ids[0] != small.ID {
		t.Errorf("after the failed upload archive list = %v, want only %s", ids, small.ID)
	}
	// The space of the failed upload is free again, and the server serves.
	p.upload(t, dir, "after.bin", 1<<20)
	out := filepath.Join(dir, "small.down")
	p.ok("archive", "download", "--id", small.ID, "-o", out)
	if got := fileSum(t, out); got != small.Checksum.Sum {
		t.Errorf("the earlier archive downloads with sha256 %s, want %s", got, small.Checksum.Sum)
	}
	if code, _ := getURL(p.api + "/healthz"); code != 200 {
		t.Errorf("healthz after the full disk: %d", code)
	}
}
