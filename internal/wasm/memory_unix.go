//go:build unix

package wasm

import (
	"golang.org/x/sys/unix"

	"github.com/tetratelabs/wazero/experimental"
)

// reservedMemory is a linear memory whose whole limit is reserved up front
// as one anonymous mapping: growing it only lengthens the slice, so a
// guest's memory.grow never copies the memory, and pages cost RAM only once
// the guest touches them (MAP_NORESERVE). Copying on growth made a Go
// guest's start and memory-hungry requests spend a third of their time in
// memmove, and peak at several times the limit while old and new buffers
// coexisted.
type reservedMemory struct {
	mem   []byte
	limit uint64
}

// newReservedMemory maps limit bytes, or returns nil when the mapping is
// refused (e.g. strict overcommit), leaving the caller to a heap buffer.
func newReservedMemory(limit uint64) experimental.LinearMemory {
	if limit == 0 || limit > 1<<32 {
		return nil
	}
	mem, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &reservedMemory{mem: mem, limit: limit}
}

// Reallocate implements experimental.LinearMemory: past the limit it
// refuses (memory.grow fails in the guest).
func (m *reservedMemory) Reallocate(size uint64) []byte {
	if size > m.limit || m.mem == nil {
		return nil
	}
	return m.mem[:size]
}

// Free implements experimental.LinearMemory.
func (m *reservedMemory) Free() {
	if m.mem != nil {
		_ = unix.Munmap(m.mem)
		m.mem = nil
	}
}
