#!/usr/bin/env bash
# Starts Isotope on its embedded default (data in ~/.isotope, router on
# 127.0.0.1:8888, API on 127.0.0.1:8889), builds and serves the example
# function, calls it, and keeps the platform running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ISOTOPE_BIN:-bin/isotope}
[ -x "$BIN" ] || go build -o "$BIN" ./cmd/isotope

log=${ISOTOPE_LOG:-${TMPDIR:-/tmp}/isotope-server.log}
"$BIN" server "$@" 2>"$log" &
server=$!
echo "== isotope server started (pid $server); its log: $log"
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT
trap 'exit 130' INT TERM

# Wait for the API (the server prints its addresses when it starts).
for _ in $(seq 1 100); do
	"$BIN" env list >/dev/null 2>&1 && break
	kill -0 "$server" 2>/dev/null || { echo "isotope server exited:" >&2; tail -5 "$log" >&2; exit 1; }
	sleep 0.1
done

echo "== applying examples/hello/specs (the first build warms the Go cache: up to a minute)"
"$BIN" spec apply --specdir examples/hello/specs --wait

echo "== calling the function through the router"
"$BIN" fn test --name hello --query name=Isotope
echo
echo "Isotope is serving http://127.0.0.1:8888/hello — try: curl 'http://127.0.0.1:8888/hello?name=you'"
echo "Press Ctrl-C to stop."
wait "$server"
