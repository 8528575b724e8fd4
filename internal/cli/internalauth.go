package cli

import (
	"net/http"
	"net/url"

	"isotope.dev/isotope/internal/auth/hmac"
	"isotope.dev/isotope/internal/storagesvc"
)

// fetcherTransport signs the fetcher's outgoing calls when internal auth
// is on: archive downloads from a storage service (/v1/archive) with the
// storagesvc key, specialize calls to the co-located runtime with the
// runtime key. Other requests (archives at third-party URLs) go unsigned.
func fetcherTransport(runtimeURL string) http.RoundTripper {
	secrets := hmac.SecretsFromEnv()
	if !secrets.Enabled() {
		return http.DefaultTransport
	}
	storage := hmac.NewSigner(secrets, hmac.ServiceStoragesvc, nil)
	storage.Match = func(r *http.Request) bool { return r.URL.Path == storagesvc.ArchivePath }
	runtime := hmac.NewSigner(secrets, hmac.ServiceRuntime, storage)
	rt, _ := url.Parse(runtimeURL)
	runtime.Match = func(r *http.Request) bool { return rt != nil && r.URL.Host == rt.Host }
	return runtime
}

// runtimeControlPaths are the paths of an environment runtime that the
// fetcher calls; function traffic on the other paths is not signed.
func runtimeControlPaths(r *http.Request) bool {
	return r.URL.Path == "/specialize" || r.URL.Path == "/v2/specialize"
}
