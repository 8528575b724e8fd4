// Command isotope is Isotope's single binary: every platform role
// (server, storagesvc, builder, fetcher, wasm-env …) and every CLI command
// is a subcommand.
package main

import (
	"os"

	"isotope.dev/isotope/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
