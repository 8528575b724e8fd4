//go:build unix

package wasm

import (
	"sync"

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
	mem     []byte
	limit   uint64
	touched uint64 // the largest size handed out: what may be non-zero
	pool    *memoryPool
}

// newReservedMemory maps limit bytes, or returns nil when the mapping is
// refused (e.g. strict overcommit), leaving the caller to a heap buffer.
// A mapping a closed instance left in pool is reused when there is one.
func newReservedMemory(pool *memoryPool, limit uint64) experimental.LinearMemory {
	if limit == 0 || limit > 1<<32 {
		return nil
	}
	if m := pool.get(limit); m != nil {
		return m
	}
	mem, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	adviseHugePages(mem)
	return &reservedMemory{mem: mem, limit: limit, pool: pool}
}

// Reallocate implements experimental.LinearMemory: past the limit it
// refuses (memory.grow fails in the guest).
func (m *reservedMemory) Reallocate(size uint64) []byte {
	if size > m.limit || m.mem == nil {
		return nil
	}
	m.touched = max(m.touched, size)
	return m.mem[:size]
}

// Free implements experimental.LinearMemory: the mapping goes back to the
// pool, or is unmapped.
func (m *reservedMemory) Free() {
	if m.mem == nil {
		return
	}
	if m.pool.put(m) {
		return
	}
	_ = unix.Munmap(m.mem)
	m.mem = nil
}

// memoryPool keeps the mappings of closed instances for new ones. A new
// Go guest's first touch of each page of a fresh mapping is a page fault
// (its data segments alone are megabytes): a third of its instantiation
// in a virtual machine. A kept mapping's pages are already there; zeroing
// the part the last guest used costs a fraction of that. Few are kept,
// and only small ones, so idle memory stays bounded.
type memoryPool struct {
	mu     sync.Mutex
	free   []*reservedMemory
	closed bool
}

const (
	keptMemories   = 8        // mappings kept at most
	maxKeptTouched = 16 << 20 // a mapping whose guest used more is unmapped
)

// get returns a kept mapping of exactly limit bytes, zeroed, or nil.
func (p *memoryPool) get(limit uint64) *reservedMemory {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	var m *reservedMemory
	for i := len(p.free) - 1; i >= 0; i-- {
		if p.free[i].limit == limit {
			m = p.free[i]
			p.free = append(p.free[:i], p.free[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if m == nil {
		return nil
	}
	clear(m.mem[:m.touched])
	m.touched = 0
	return m
}

// put keeps m if there is room; false if the caller must unmap it.
func (p *memoryPool) put(m *reservedMemory) bool {
	if p == nil || m.touched > maxKeptTouched {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.free) >= keptMemories {
		return false
	}
	p.free = append(p.free, m)
	return true
}

// close unmaps the kept mappings; later frees unmap theirs.
func (p *memoryPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, m := range p.free {
		_ = unix.Munmap(m.mem)
		m.mem = nil
	}
	p.free = nil
}
