//go:build unix && !linux

package wasm

// adviseHugePages has no portable equivalent outside Linux.
func adviseHugePages([]byte) {}

// prefault faults mem's pages in by writing to each.
func prefault(mem []byte) { touchPages(mem) }
