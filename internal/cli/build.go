package cli

import (
	"github.com/spf13/cobra"
	"os"

	"isotope.dev/isotope/internal/gowasm"
)

func init() { register(newBuildCommand) }

// newBuildCommand groups the built-in build commands that builder
// environments run: `isotope build go-wasm`.
func newBuildCommand(g *Globals) *cobra.Command {
	return group("build", nil, "Built-in build commands for builder environments", &cobra.Command{
		Use:   "go-wasm [--cache-dir DIR] [--go GO] [SRC_PKG [DEPLOY_PKG]]",
		Short: "Build a Fission-style Go function into a WebAssembly reactor module",
		Long: `Build a Go function into $DEPLOY_PKG/main.wasm, a WebAssembly reactor
for Isotope's runtime, the way a Fission build script runs: SRC_PKG and
DEPLOY_PKG come from the environment (or the arguments). SRC_PKG is a
single .go file, a directory of package main files, or a module (go.mod;
dependencies through GOPROXY or vendor/). Every top-level
func(http.ResponseWriter, *http.Request) is registered under its name; the
Function's entrypoint picks one at run time. Needs Go 1.24+ on PATH (or
--go / ISOTOPE_GO). GOCACHE and GOMODCACHE live under --cache-dir
(default $ISOTOPE_GO_CACHE, else the user cache dir) unless set in the
environment. This is the default build command of the go-wasm builder
environment (isotope/go-wasm-builder).`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "-h" || a == "--help" {
					return cmd.Help()
				}
			}
			return gowasm.Run(cmd.Context(), args, os.Environ(), cmd.OutOrStdout())
		},
	})
}
