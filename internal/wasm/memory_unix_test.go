//go:build unix

package wasm

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A closed instance's mapping serves the next instance of the same
// limit, with every byte the last guest used zeroed.
func TestMemoryPoolReusesMappingsZeroed(t *testing.T) {
	var p memoryPool
	defer p.close()
	const limit = 8 << 20
	m := newReservedMemory(&p, limit).(*reservedMemory)
	buf := m.Reallocate(1 << 20)
	for i := range buf {
		buf[i] = 0xAA
	}
	m.Free()
	again := newReservedMemory(&p, limit).(*reservedMemory)
	if &again.mem[0] != &m.mem[0] {
		t.Fatal("a kept mapping of the same limit was not reused")
	}
	for i, b := range again.Reallocate(1 << 20) {
		if b != 0 {
			t.Fatalf("byte %d of a reused mapping is %#x, want 0", i, b)
		}
	}
	if other := newReservedMemory(&p, limit*2).(*reservedMemory); &other.mem[0] == &m.mem[0] {
		t.Fatal("a mapping was reused for another limit")
	}
}

// Once an instance has reported its size, a start that finds no kept
// mapping makes the pool prefault spares of that limit in the
// background, which later starts take with their pages already there.
func TestMemoryPoolMakesPrefaultedSpares(t *testing.T) {
	var p memoryPool
	const limit, size = 16 << 20, 3 << 20
	if newReservedMemory(&p, limit) == nil {
		t.Fatal("no mapping")
	}
	spares := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.spares)
	}
	if n := spares(); n != 0 {
		t.Fatalf("%d spares before any instance reported its size", n)
	}
	p.started(size)
	m := newReservedMemory(&p, limit).(*reservedMemory)
	deadline := time.Now().Add(10 * time.Second)
	for spares() < keptSpares {
		if time.Now().After(deadline) {
			t.Fatalf("%d spares after 10 s, want %d", spares(), keptSpares)
		}
		time.Sleep(time.Millisecond)
	}
	spare := newReservedMemory(&p, limit).(*reservedMemory)
	if &spare.mem[0] == &m.mem[0] {
		t.Fatal("got the mapping in use")
	}
	if resident, err := residentPages(spare.mem[:size]); err != nil {
		t.Logf("residency not checked: %v", err)
	} else if want := size / unix.Getpagesize(); resident != want {
		t.Fatalf("%d of the %d pages of a spare's first %d bytes are resident", resident, want, size)
	}
	for i, b := range spare.Reallocate(size) {
		if b != 0 {
			t.Fatalf("byte %d of a spare is %#x", i, b)
		}
	}
	// Spares follow the limit last asked for; closing unmaps them and
	// waits for the goroutine making them.
	newReservedMemory(&p, limit/2)
	p.mu.Lock()
	for _, s := range p.spares {
		if s.limit != limit/2 {
			t.Errorf("a spare of %d bytes is kept after a start asked for %d", s.limit, limit/2)
		}
	}
	p.mu.Unlock()
	p.close()
	if n := spares(); n != 0 {
		t.Fatalf("%d spares after close", n)
	}
}
