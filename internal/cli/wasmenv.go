package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"isotope.dev/isotope/internal/server"
	"isotope.dev/isotope/internal/wasm"
	"isotope.dev/isotope/internal/wasmenv"
)

func init() { register(newWasmEnvCommand) }

// newWasmEnvCommand is `isotope wasm-env`: the WebAssembly environment
// server speaking Fission's runtime protocol.
func newWasmEnvCommand(_ *Globals) *cobra.Command {
	var (
		addr, userfunc, cacheDir string
		env                      []string
		lim                      wasm.Limits
	)
	cmd := &cobra.Command{
		Use:   "wasm-env",
		Short: "Run the WebAssembly environment server (Fission runtime protocol on :8888)",
		Long: `wasm-env is a Fission environment runtime for WebAssembly functions.
It answers GET /healthz, loads the function on POST /specialize (the file or
directory <userfunc-dir>/user) or POST /v2/specialize (JSON
{"filepath":...,"functionName":...}), then serves every other path with it.
WASI command modules run as WAGI (CGI); modules built with the Isotope Go
SDK run as reactors on a pool of warm instances.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			envMap := map[string]string{}
			for _, kv := range env {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--env %q: want NAME=VALUE", kv)
				}
				envMap[k] = v
			}
			var mounts map[string]string
			if v := os.Getenv(wasmenv.MountsEnv); v != "" {
				if err := json.Unmarshal([]byte(v), &mounts); err != nil {
					return fmt.Errorf("%s: not a JSON object of paths: %w", wasmenv.MountsEnv, err)
				}
			}
			return server.RunWasmEnv(cmd.Context(), server.WasmEnvOptions{
				Addr: addr, UserfuncDir: userfunc, CacheDir: cacheDir, Env: envMap, Mounts: mounts,
				Limits: lim, GuestLog: os.Stderr, Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)),
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", ":8888", "listen address")
	f.StringVar(&userfunc, "userfunc-dir", "/userfunc", "directory the fetcher places the function in (v1 loads <dir>/user)")
	f.StringVar(&cacheDir, "cache-dir", "", "compiled-code cache directory (empty: in memory only)")
	f.StringArrayVar(&env, "env", nil, "NAME=VALUE environment variable for the function (repeatable)")
	f.DurationVar(&lim.Timeout, "timeout", wasm.DefaultTimeout, "deadline of one request")
	f.Uint32Var(&lim.MemoryPages, "memory-pages", wasm.DefaultMemoryPages, "linear memory limit in 64 KiB pages")
	f.Int64Var(&lim.MaxRequestBody, "max-request-body", wasm.DefaultMaxRequestBody, "largest request body in bytes (413 above)")
	f.Int64Var(&lim.MaxResponseBody, "max-response-body", wasm.DefaultMaxResponseBody, "largest response body in bytes (502 above)")
	f.IntVar(&lim.MaxInstances, "max-instances", wasm.DefaultMaxInstances, "most concurrent instances of the function")
	f.IntVar(&lim.MaxRequestsPerInstance, "max-requests-per-instance", wasm.DefaultMaxRequestsPerInstance, "recycle a reactor instance after this many requests")
	return cmd
}
