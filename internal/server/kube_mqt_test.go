package server

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// ReadSecretDir reads a Secret volume laid out the way the kubelet does
// it (keys are symlinks into ..data, itself a symlink to a timestamped
// directory): the keys and their values, not the kubelet's entries;
// a missing directory is an error.
func TestReadSecretDirReadsAKubeletSecretVolume(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_12_06_01_00_00.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"password": "s3cret\n", "natsServerURL": "nats://nats:4222"}
	for k, v := range want {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSecretDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("ReadSecretDir = %q, want %q", got, want)
	}
	if _, err := ReadSecretDir(filepath.Join(dir, "nope")); err == nil {
		t.Error("ReadSecretDir of a missing directory succeeded")
	}
}
