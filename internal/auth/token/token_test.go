package token

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8889":       true,
		"127.0.0.2:80":         true,
		"[::1]:8889":           true,
		"localhost:8889":       true,
		"LOCALHOST:1":          true,
		"127.0.0.1":            true,
		":8889":                false,
		"0.0.0.0:8889":         false,
		"[::]:8889":            false,
		"192.168.1.10:8889":    false,
		"[fe80::1%eth0]:8889":  false,
		"example.internal:80":  false,
		"[::ffff:127.0.0.1]:1": true,
		"":                     false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	tok, created, err := LoadOrCreate(dir)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v, %v", fi.Mode(), err)
	}
	again, created, err := LoadOrCreate(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second start must reuse the token: %q %v %v", again, created, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	other, _, _ := LoadOrCreate(t.TempDir())
	if other == tok {
		t.Fatal("two data dirs got the same token")
	}
}

func TestLoadRefusesUnsafeFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	os.WriteFile(path, []byte("secret\n"), 0o644)
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token file: %v", err)
	}
	os.WriteFile(path, []byte("  \n"), 0o600)
	os.Chmod(path, 0o600)
	if _, _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("empty token file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "  \n" {
		t.Fatal("a refused token file was changed")
	}
}

func TestNotice(t *testing.T) {
	n := Notice("/d/token", "abc")
	if !strings.Contains(n, "export ISOTOPE_TOKEN=abc") || !strings.Contains(n, "/d/token") {
		t.Fatal(n)
	}
}
