package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/cwasm"
	"isotope.dev/isotope/internal/rustwasm"
)

// The C and Rust examples as backends: each built by its builder into a
// WAGI module (a fresh instance per request), uploaded as the platform
// uploads a build, and served by the real executor in an
// isotope/wasm-env environment.
func init() {
	backends["wasm-c"] = builtBackend("wasm-c", "examples/hello-c/hello.c built by the c-wasm builder (clang, wasi-libc): a WAGI module",
		filepath.Join("examples", "hello-c", "hello.c"),
		func(ctx context.Context, src, deploy string, log io.Writer) error {
			return cwasm.Build(ctx, src, deploy, cwasm.Options{}, log)
		},
		func() error { _, err := cwasm.Find(context.Background(), "", os.Environ(), false); return err })
	backends["wasm-rust"] = builtBackend("wasm-rust", "examples/hello-rust built by the rust-wasm builder (Debian's rustc, cargo): a handler with sdk/rust/isotope.rs, a reactor",
		filepath.Join("examples", "hello-rust"),
		func(ctx context.Context, src, deploy string, log io.Writer) error {
			return rustwasm.Build(ctx, src, deploy, rustwasm.Options{}, log)
		},
		func() error { _, err := rustwasm.Find(context.Background(), "", os.Environ(), io.Discard); return err })
}

// builtModule is a backend's module, built once per run.
type builtModule struct {
	deploy  string // the deploy directory
	archive *v1.Archive
}

// builtBackend serves the module a builder makes of src (a WAGI module
// or a reactor: the runtime detects which).
func builtBackend(name, about, src string, build func(ctx context.Context, src, deploy string, log io.Writer) error, available func() error) backend {
	built := func(h *harness) (*builtModule, error) {
		if b := h.built[name]; b != nil {
			return b, nil
		}
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("the %s source (run from the repository root): %w", name, err)
		}
		deploy := filepath.Join(h.dir, name+"-deploy")
		var log strings.Builder
		if err := build(h.ctx, src, deploy, &log); err != nil {
			return nil, fmt.Errorf("building %s: %v\n%s", src, err, log.String())
		}
		a, err := h.uploadDeploy(name, deploy, "")
		if err != nil {
			return nil, err
		}
		b := &builtModule{deploy: deploy, archive: a}
		h.built[name] = b
		return b, nil
	}
	return backend{
		about: about,
		archive: func(h *harness) (*v1.Archive, string, error) {
			b, err := built(h)
			if err != nil {
				return nil, "", err
			}
			return b.archive, "", nil
		},
		fresh: func(h *harness, nonce string) (*v1.Archive, error) {
			b, err := built(h)
			if err != nil {
				return nil, err
			}
			return h.uploadDeploy(name, b.deploy, nonce)
		},
		available: available,
	}
}
