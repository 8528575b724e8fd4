package buildermgr_test

import (
	"testing"

	"isotope.dev/isotope/internal/buildermgr"
)

// The built-in builder images are recognized under any registry and tag,
// each with its own default build command; anything else is not built in.
func TestBuiltinBuilderImages(t *testing.T) {
	for image, want := range map[string]string{
		"isotope/go-wasm-builder":                            "isotope build go-wasm",
		"ghcr.io/isotope-dev/isotope/go-wasm-builder:dev":    "isotope build go-wasm",
		"isotope/c-wasm-builder":                             "isotope build c-wasm",
		"localhost:5000/isotope/c-wasm-builder@sha256:0123":  "isotope build c-wasm",
		"isotope/rust-wasm-builder:v1":                       "isotope build rust-wasm",
		"registry.example.com:443/isotope/rust-wasm-builder": "isotope build rust-wasm",
		"fission/python-builder":                             "",
		"isotope/rust-wasm-builder-extra":                    "",
		"myisotope/c-wasm-builder":                           "",
		"isotope/wasm-env":                                   "",
	} {
		b, ok := buildermgr.Builtin(image)
		if ok != (want != "") || b.Command != want {
			t.Errorf("Builtin(%q) = %+v, %v; want command %q", image, b, ok, want)
		}
		if buildermgr.IsBuiltinBuilderImage(image) != ok {
			t.Errorf("IsBuiltinBuilderImage(%q) disagrees with Builtin", image)
		}
	}
}
