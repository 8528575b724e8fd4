package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/fetcher"
	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/testing/testlog"
)

var listenRE = regexp.MustCompile(`(?:addr=|listening on )(127\.0\.0\.1:\d+)`)

// startRole runs `isotope args...` (a role listening on 127.0.0.1:0)
// until the test ends and returns its base URL, read from its log.
func startRole(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testlog.Buffer
	done := make(chan error, 1)
	go func() {
		root := NewRootCommand()
		root.SetOut(io.Discard)
		root.SetErr(&stderr)
		root.SetArgs(args)
		done <- root.ExecuteContext(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := listenRE.FindStringSubmatch(stderr.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("isotope %v exited: %v\n%s", args, err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("isotope %v did not log its address:\n%s", args, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// post sends a JSON body, signed for svc under secrets unless secrets is
// empty, and returns the status and body.
func post(t *testing.T, secrets hmac.Secrets, svc hmac.Service, url string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	c := &http.Client{Transport: hmac.Transport(secrets, svc, nil)}
	resp, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestRolesVerifyInternalAuth runs the storagesvc, fetcher and wasm-env
// role commands with ISOTOPE_INTERNAL_AUTH_SECRET set (and an old secret,
// mid-rotation) and drives them over loopback: the fetcher's own calls
// to the storage service (download on /fetch, upload on /upload) are
// signed on the way, unsigned and wrongly signed calls are refused.
func TestRolesVerifyInternalAuth(t *testing.T) {
	t.Setenv(hmac.EnvSecret, "current-master")
	t.Setenv(hmac.EnvSecretOld, "previous-master")
	current := hmac.Secrets{Current: []byte("current-master")}
	old := hmac.Secrets{Current: []byte("previous-master")}

	storage := startRole(t, "storagesvc", "--addr", "127.0.0.1:0", "--dir", t.TempDir(), "--prune-interval", "0")
	shared := t.TempDir()
	fetch := startRole(t, "fetcher", "--addr", "127.0.0.1:0", shared)
	wasmEnv := startRole(t, "wasm-env", "--addr", "127.0.0.1:0", "--userfunc-dir", t.TempDir())

	// storagesvc: the env-configured client signs; others are refused.
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	w, _ := zw.Create("hello.txt")
	io.WriteString(w, "hello from the archive")
	zw.Close()
	res, err := storagesvc.NewClient(storage, "").Upload(context.Background(), bytes.NewReader(zbuf.Bytes()), int64(zbuf.Len()), "src.zip", nil)
	if err != nil {
		t.Fatalf("signed upload: %v", err)
	}
	for name, s := range map[string]hmac.Secrets{"unsigned": {}, "old secret": old, "wrong secret": {Current: []byte("x")}} {
		c := &http.Client{Transport: hmac.Transport(s, hmac.ServiceStoragesvc, nil)}
		resp, err := c.Get(storage + "/v1/archive")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[string]int{"unsigned": 401, "old secret": 200, "wrong secret": 401}[name]
		if resp.StatusCode != want {
			t.Errorf("storagesvc list, %s = %d, want %d", name, resp.StatusCode, want)
		}
	}
	if resp, err := http.Get(storage + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("storagesvc /healthz unsigned: %v %v", resp, err)
	}

	// fetcher: /fetch must be signed for the fetcher channel; the fetcher
	// then signs its download from the storage service.
	req := fetcher.FunctionFetchRequest{FetchType: fetcher.FetchURL, URL: res.URL, StorageSvcURL: storage, Filename: "pkg"}
	if code, msg := post(t, hmac.Secrets{}, "", fetch+"/fetch", req); code != 401 || !strings.Contains(msg, "not signed") {
		t.Fatalf("unsigned /fetch = %d %q", code, msg)
	}
	if code, _ := post(t, current, hmac.ServiceStoragesvc, fetch+"/fetch", req); code != 401 {
		t.Fatalf("/fetch signed with the storagesvc key = %d", code)
	}
	if code, msg := post(t, current, hmac.ServiceFetcher, fetch+"/fetch", req); code != 200 {
		t.Fatalf("signed /fetch = %d %q", code, msg)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "pkg", "hello.txt")); err != nil || string(b) != "hello from the archive" {
		t.Fatalf("fetched file: %q %v", b, err)
	}
	// /upload: the fetcher's storagesvc client signs the upload.
	os.WriteFile(filepath.Join(shared, "out.bin"), []byte("deploy archive"), 0o644)
	code, msg := post(t, old, hmac.ServiceFetcher, fetch+"/upload", fetcher.ArchiveUploadRequest{Filename: "out.bin", StorageSvcURL: storage})
	if code != 200 {
		t.Fatalf("signed /upload (old secret) = %d %q", code, msg)
	}
	var up fetcher.ArchiveUploadResponse
	json.Unmarshal([]byte(msg), &up)
	var got bytes.Buffer
	if err := storagesvc.NewClient(storage, "").Download(context.Background(), up.ArchiveDownloadURL, &got); err != nil || got.String() != "deploy archive" {
		t.Fatalf("uploaded archive: %q %v", got.String(), err)
	}
	for _, p := range []string{"/healthz", "/readiness-healthz"} {
		if resp, err := http.Get(fetch + p); err != nil || resp.StatusCode != 200 {
			t.Fatalf("fetcher %s unsigned: %v %v", p, resp, err)
		}
	}

	// wasm-env: /specialize is a control call and must be signed;
	// function traffic is not (the router does not sign it).
	if code, _ := post(t, hmac.Secrets{}, "", wasmEnv+"/v2/specialize", map[string]string{}); code != 401 {
		t.Fatalf("unsigned /v2/specialize = %d", code)
	}
	if code, _ := post(t, current, hmac.ServiceRuntime, wasmEnv+"/v2/specialize", map[string]string{"filepath": "/nonexistent"}); code == 401 {
		t.Fatal("signed /v2/specialize was refused")
	}
	if code, _ := post(t, hmac.Secrets{}, "", wasmEnv+"/some/function/path", nil); code == 401 {
		t.Fatal("function traffic must not need a signature")
	}
}

// TestRolesOpenWithoutSecret: with no secret set nothing is asked for,
// as before internal auth existed.
func TestRolesOpenWithoutSecret(t *testing.T) {
	t.Setenv(hmac.EnvSecret, "")
	t.Setenv(hmac.EnvFissionSecret, "")
	storage := startRole(t, "storagesvc", "--addr", "127.0.0.1:0", "--dir", t.TempDir(), "--prune-interval", "0")
	resp, err := http.Get(storage + "/v1/archive")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("unsigned list without a secret = %d", resp.StatusCode)
	}
}
