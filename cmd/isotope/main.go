// Command isotope is Isotope's single binary: every platform role
// (server, storagesvc, builder, fetcher, wasm-env …) and every CLI command
// is a subcommand.
package main

import (
	"os"
	// Time zone data in the binary: the images have no
	// /usr/share/zoneinfo, and cron specs may name a zone (CRON_TZ=…).
	_ "time/tzdata"

	"isotope.dev/isotope/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
