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
	"isotope.dev/isotope/internal/netns"
)

func main() {
	// The network namespace shim (started only by the server) skips the
	// command tree: it is on every fixed-port instance's start path.
	if len(os.Args) > 1 && os.Args[1] == netns.ShimCommand {
		os.Exit(netns.ShimMain(os.Args[2:]))
	}
	os.Exit(cli.Main(os.Args[1:]))
}
