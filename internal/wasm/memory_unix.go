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
	mem := mapMemory(limit)
	if mem == nil {
		return nil
	}
	return &reservedMemory{mem: mem, limit: limit, pool: pool}
}

// mapMemory reserves limit bytes of address space, nil if refused.
func mapMemory(limit uint64) []byte {
	mem, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	adviseHugePages(mem)
	return mem
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

// memoryPool keeps the mappings of closed instances for new ones, and a
// few fresh mappings whose first pages are already faulted in (spares).
//
// A new Go guest's first touch of each page of a fresh mapping is a page
// fault, and the kernel zeroes every page it hands out: for the 4-5 MB a
// Go guest has touched once started, 10-25 ms of a cold start in a
// virtual machine (fault handling and clear_page in a profile), against
// under a millisecond to copy the same bytes into pages already there.
// A kept mapping's pages are there; zeroing the part the last guest used
// costs a fraction of that. When no kept mapping fits, a spare serves:
// spares are made in the background, after an instance start found
// neither, faulting in as many bytes as the largest instance started so
// far had once initialized (at most maxKeptTouched). Few are kept, and
// only small ones, so idle memory stays bounded: keptMemories + keptSpares
// mappings, each of at most maxKeptTouched resident bytes.
type memoryPool struct {
	mu     sync.Mutex
	free   []*reservedMemory
	closed bool

	spares     []*reservedMemory // fresh, prefaulted up to spareSize
	spareLimit uint64            // the limit of the last mapping no kept one served
	spareSize  uint64            // bytes to fault in: the largest started instance's
	filling    bool              // a goroutine is making spares
	wg         sync.WaitGroup    // the filling goroutine
}

const (
	keptMemories   = 8        // mappings kept at most
	keptSpares     = 2        // prefaulted fresh mappings kept at most
	maxKeptTouched = 16 << 20 // a mapping whose guest used more is unmapped
)

// get returns a kept mapping of exactly limit bytes, zeroed, or a spare
// of that size, or nil.
func (p *memoryPool) get(limit uint64) *reservedMemory {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	m := takeLimit(&p.free, limit)
	if m == nil {
		m = takeLimit(&p.spares, limit)
		if p.spareLimit != limit {
			// Spares are for the limit last asked for.
			for _, s := range p.spares {
				_ = unix.Munmap(s.mem)
			}
			p.spares, p.spareLimit = nil, limit
		}
		p.fillLocked()
	}
	p.mu.Unlock()
	if m == nil {
		return nil
	}
	clear(m.mem[:m.touched])
	m.touched = 0
	return m
}

// takeLimit removes and returns the last mapping of limit bytes in *list.
func takeLimit(list *[]*reservedMemory, limit uint64) *reservedMemory {
	l := *list
	for i := len(l) - 1; i >= 0; i-- {
		if m := l[i]; m.limit == limit {
			*list = append(l[:i], l[i+1:]...)
			return m
		}
	}
	return nil
}

// started records the memory size of a newly initialized instance: what
// spares fault in.
func (p *memoryPool) started(size uint64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.spareSize = min(max(p.spareSize, size), maxKeptTouched)
	p.mu.Unlock()
}

// fillLocked starts making spares if there are fewer than keptSpares and
// no goroutine is at it. p.mu is held.
func (p *memoryPool) fillLocked() {
	if p.filling || p.closed || p.spareSize == 0 || len(p.spares) >= keptSpares {
		return
	}
	p.filling = true
	p.wg.Add(1)
	go p.fill()
}

// fill makes spares until there are keptSpares of the current limit.
func (p *memoryPool) fill() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		limit, size := p.spareLimit, p.spareSize
		if p.closed || len(p.spares) >= keptSpares || limit == 0 {
			p.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		mem := mapMemory(limit)
		if mem == nil {
			p.mu.Lock()
			p.filling = false
			p.mu.Unlock()
			return
		}
		prefault(mem[:min(size, limit)])
		p.mu.Lock()
		if p.closed || p.spareLimit != limit {
			_ = unix.Munmap(mem)
		} else {
			p.spares = append(p.spares, &reservedMemory{mem: mem, limit: limit, pool: p})
		}
		p.mu.Unlock()
	}
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

// close unmaps the kept mappings and spares; later frees unmap theirs.
func (p *memoryPool) close() {
	p.mu.Lock()
	p.closed = true
	for _, m := range append(p.free, p.spares...) {
		_ = unix.Munmap(m.mem)
		m.mem = nil
	}
	p.free, p.spares = nil, nil
	p.mu.Unlock()
	p.wg.Wait()
}

// touchPages writes a zero to every page of mem, faulting it in.
func touchPages(mem []byte) {
	step := unix.Getpagesize()
	for i := 0; i < len(mem); i += step {
		mem[i] = 0
	}
}
