//go:build !unix

package wasm

import "github.com/tetratelabs/wazero/experimental"

// newReservedMemory has no mapping to reserve here: the heap buffer serves.
func newReservedMemory(uint64) experimental.LinearMemory { return nil }
