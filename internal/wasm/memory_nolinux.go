//go:build unix && !linux

package wasm

// adviseHugePages has no portable equivalent outside Linux.
func adviseHugePages([]byte) {}
