package sdk_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The Rust helper's own tests (the #[cfg(test)] module of
// rust/isotope.rs: CGI variables, request and response frames, hostile
// frames), compiled for this machine with rustc --test and run.
// Building and serving it as WebAssembly is tested by the rust-wasm
// builder (internal/rustwasm) with examples/hello-rust.
func TestRustHelper(t *testing.T) {
	rustc, err := exec.LookPath("rustc")
	if err != nil {
		t.Skip("rustc is not installed (Debian: apt-get install -y rustc)")
	}
	bin := filepath.Join(t.TempDir(), "isotope-test")
	out, err := exec.Command(rustc, "--edition", "2021", "--test", "-o", bin, filepath.Join("rust", "isotope.rs")).CombinedOutput()
	if err != nil {
		t.Fatalf("rustc --test rust/isotope.rs: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test result: ok") {
		t.Fatalf("the helper's tests: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
