package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"isotope.dev/isotope/internal/storagesvc"
	"isotope.dev/isotope/internal/testing/testlog"
)

// `isotope archive` end to end against the storage service on the API
// listener: upload (plain and -o json), list, get-url, download to a
// file, delete, and refused input.
func TestArchiveCommands(t *testing.T) {
	a := newTestAPI(t)
	dir := t.TempDir()
	data := bytes.Repeat([]byte("isotope archive "), 40000) // 640 KB
	src := filepath.Join(dir, "src.zip")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	id := strings.TrimSpace(a.ok("archive", "upload", "--name", src).Stdout)
	if !strings.HasPrefix(id, "/isotope/archives/") {
		t.Fatalf("upload printed %q, want an id", id)
	}
	var up struct {
		ID       string `json:"id"`
		URL      string `json:"url"`
		Checksum struct {
			Type string `json:"type"`
			Sum  string `json:"sum"`
		} `json:"checksum"`
	}
	if err := json.Unmarshal([]byte(a.ok("ar", "upload", "--name", src, "-o", "json").Stdout), &up); err != nil {
		t.Fatal(err)
	}
	if up.ID == "" || up.ID == id || !strings.HasPrefix(up.URL, a.URL+"/v1/archive?id=%2F") ||
		up.Checksum.Type != "sha256" || up.Checksum.Sum != hex.EncodeToString(sum[:]) {
		t.Fatalf("upload -o json: %+v", up)
	}

	list := strings.Fields(a.ok("archive", "list").Stdout)
	if len(list) != 2 {
		t.Fatalf("list: %v", list)
	}
	var listJSON []string
	if err := json.Unmarshal([]byte(a.ok("archive", "list", "-o", "json").Stdout), &listJSON); err != nil || len(listJSON) != 2 {
		t.Fatalf("list -o json: %v %v", listJSON, err)
	}
	if got := strings.TrimSpace(a.ok("archive", "get-url", "--id", up.ID).Stdout); got != up.URL {
		t.Fatalf("get-url: %q, want %q", got, up.URL)
	}

	out := filepath.Join(dir, "back.zip")
	a.ok("archive", "download", "--id", id, "-o", out)
	if back, err := os.ReadFile(out); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("download: %v", err)
	}
	if got := a.ok("archive", "download", "--id", up.URL).Stdout; got != string(data) {
		t.Fatal("download by URL to stdout differs")
	}

	a.ok("archive", "delete", "--id", id)
	a.fails([]string{"archive", "download", "--id", id, "-o", filepath.Join(dir, "gone.zip")}, "404")
	if _, err := os.Stat(filepath.Join(dir, "gone.zip")); !os.IsNotExist(err) {
		t.Fatal("a failed download left its output file")
	}
	a.fails([]string{"archive", "get-url", "--id", id}, "404")
	a.fails([]string{"archive", "upload", "--name", filepath.Join(dir, "missing.zip")}, "--name", "missing.zip")
	a.fails([]string{"archive", "upload"}, "--name")
	a.fails([]string{"archive", "download", "--id", "../../etc/passwd"}, "invalid archive id")
	if list := strings.Fields(a.ok("archive", "list").Stdout); len(list) != 1 || list[0] != up.ID {
		t.Fatalf("after delete: %v", list)
	}
}

// `isotope storagesvc` serves on the address it logs, stores in --dir,
// and stops cleanly when its context ends; bad flags are named.
func TestStoragesvcRole(t *testing.T) {
	dir := t.TempDir()
	root := NewRootCommand()
	var stderr testlog.Buffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"storagesvc", "--addr", "127.0.0.1:0", "--dir", dir, "--prune-interval", "0", "--max-size", "1Mi"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	addrRe := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if m := addrRe.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listening line: %s", stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	c := storagesvc.NewClient("http://"+addr, "")
	res, err := c.Upload(ctx, strings.NewReader("hello"), 5, "h.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(res.ID, storagesvc.DefaultIDPrefix+"/"))); err != nil {
		t.Fatalf("archive not in --dir: %v", err)
	}
	if _, err := c.Upload(ctx, bytes.NewReader(make([]byte, 2<<20)), 2<<20, "big", nil); !errors.Is(err, storagesvc.ErrTooLarge) {
		t.Fatalf("--max-size 1Mi: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	a := newTestAPI(t)
	a.fails([]string{"storagesvc", "--max-size", "lots", "--dir", t.TempDir()}, "--max-size")
}
