//go:build !unix

package wasm

import "github.com/tetratelabs/wazero/experimental"

// memoryPool has nothing to keep here: memories are heap buffers.
type memoryPool struct{}

func (*memoryPool) close()         {}
func (*memoryPool) started(uint64) {}

// newReservedMemory has no mapping to reserve here: the heap buffer serves.
func newReservedMemory(*memoryPool, uint64) experimental.LinearMemory { return nil }
