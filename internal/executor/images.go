package executor

import "strings"

// WasmEnvImage is the repository of Isotope's WebAssembly environment.
const WasmEnvImage = "isotope/wasm-env"

// IsWasmEnvImage reports whether image names Isotope's WebAssembly
// environment under any registry prefix and any tag or digest:
// "isotope/wasm-env", "ghcr.io/x/isotope/wasm-env:1.2",
// "localhost:5000/isotope/wasm-env@sha256:…". The embedded mode runs such
// environments in-process instead of as an image.
func IsWasmEnvImage(image string) bool {
	return imageRepoIs(image, WasmEnvImage)
}

// imageRepoIs reports whether image's repository is repo or ends in
// "/"+repo.
func imageRepoIs(image, repo string) bool {
	name := strings.TrimSpace(image)
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	// A tag follows the last ':' that comes after the last '/' (a ':'
	// before it belongs to a registry port).
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name = name[:i]
	}
	return name == repo || strings.HasSuffix(name, "/"+repo)
}
