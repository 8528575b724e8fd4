// Package wasmtest provides WebAssembly modules for tests and benchmarks
// of the runtime: tiny hand-assembled modules (the bytes a WAT source would
// assemble to, written out here because no assembler is installed) and Go
// guests built with the host toolchain.
package wasmtest

import (
	"encoding/binary"
	"time"
)

// Opcodes and encodings of the WebAssembly 1.0 binary format used below.
const (
	opUnreachable = 0x00
	opLoop        = 0x03
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opCall        = 0x10
	opDrop        = 0x1a
	opI32Store    = 0x36
	opMemoryGrow  = 0x40
	opI32Const    = 0x41
	opI32Ne       = 0x47
	blockEmpty    = 0x40
	valI32        = 0x7f
)

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func name(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func vec(items ...[]byte) []byte {
	b := uleb(uint32(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, uleb(uint32(len(payload)))...), payload...)
}

func i32const(v int32) []byte { return append([]byte{opI32Const}, sleb(v)...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// module assembles a module with one optional fd_write import (function
// index 0), a memory of minPages, the given exported functions (all of
// type () -> ()) and an optional data segment at offset 16.
func module(withFdWrite bool, minPages uint32, funcs map[string][]byte, data []byte) []byte {
	imp := ""
	if withFdWrite {
		imp = "fd_write"
	}
	return moduleImporting(imp, minPages, funcs, data)
}

// moduleImporting is module with the WASI function imp (one of type
// (i32 i32 i32 i32) -> i32, such as fd_write or poll_oneoff) imported as
// function index 0, or no import when imp is "".
func moduleImporting(imp string, minPages uint32, funcs map[string][]byte, data []byte) []byte {
	withFdWrite := imp != ""
	fdWriteType := cat([]byte{0x60}, vec([]byte{valI32}, []byte{valI32}, []byte{valI32}, []byte{valI32}), vec([]byte{valI32}))
	voidType := cat([]byte{0x60}, vec(), vec())
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, vec(fdWriteType, voidType))...)
	base := uint32(0)
	if withFdWrite {
		out = append(out, section(2, vec(cat(name("wasi_snapshot_preview1"), name(imp), []byte{0x00}, uleb(0))))...)
		base = 1
	}
	names := sortedKeys(funcs)
	var fnTypes, exports, bodies [][]byte
	exports = append(exports, cat(name("memory"), []byte{0x02}, uleb(0)))
	for i, n := range names {
		fnTypes = append(fnTypes, uleb(1))
		exports = append(exports, cat(name(n), []byte{0x00}, uleb(base+uint32(i))))
		body := cat(vec(), funcs[n], []byte{opEnd})
		bodies = append(bodies, cat(uleb(uint32(len(body))), body))
	}
	out = append(out, section(3, vec(fnTypes...))...)
	out = append(out, section(5, vec(cat([]byte{0x00}, uleb(minPages))))...)
	out = append(out, section(7, vec(exports...))...)
	out = append(out, section(10, vec(bodies...))...)
	if data != nil {
		seg := cat([]byte{0x00}, i32const(16), []byte{opEnd}, uleb(uint32(len(data))), data)
		out = append(out, section(11, vec(seg))...)
	}
	return out
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// WAGIStatic is a WAGI module whose _start writes out (a whole CGI
// response) to stdout with one fd_write. It is the equivalent of
//
//	(module
//	  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
//	  (memory (export "memory") 1)
//	  (data (i32.const 16) "<out>")
//	  (func (export "_start")
//	    (i32.store (i32.const 0) (i32.const 16))
//	    (i32.store (i32.const 4) (i32.const <len>))
//	    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
func WAGIStatic(out string) []byte {
	start := cat(
		i32const(0), i32const(16), []byte{opI32Store, 2, 0},
		i32const(4), i32const(int32(len(out))), []byte{opI32Store, 2, 0},
		i32const(1), i32const(0), i32const(1), i32const(8), []byte{opCall}, uleb(0), []byte{opDrop},
	)
	return module(true, 1, map[string][]byte{"_start": start}, []byte(out))
}

// WAGIHello answers 200 text/plain "hello\n".
func WAGIHello() []byte { return WAGIStatic("Content-Type: text/plain\n\nhello\n") }

// Spin is a WAGI module whose _start loops forever: (loop (br 0)).
func Spin() []byte {
	return module(false, 1, map[string][]byte{"_start": {opLoop, blockEmpty, opBr, 0, opEnd}}, nil)
}

// MemoryHog is a WAGI module whose _start grows memory one page at a time
// until memory.grow fails, then traps (unreachable):
// (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable.
func MemoryHog() []byte {
	body := cat([]byte{opLoop, blockEmpty}, i32const(1), []byte{opMemoryGrow, 0}, i32const(-1), []byte{opI32Ne, opBrIf, 0, opEnd, opUnreachable})
	return module(false, 1, map[string][]byte{"_start": body}, nil)
}

// Trap is a WAGI module whose _start executes unreachable.
func Trap() []byte {
	return module(false, 1, map[string][]byte{"_start": {opUnreachable}}, nil)
}

// NoEntry exports only a function "foo": neither ABI.
func NoEntry() []byte {
	return module(false, 1, map[string][]byte{"foo": {}}, nil)
}

// WAGISleep is a WAGI module whose _start sleeps d with one WASI
// poll_oneoff on a relative clock subscription (how guests' sleep
// functions reach the host) and then returns without writing anything (a
// WAGI host answers that with 500; tests care about when it wakes). The
// subscription is the data at offset 16 (48 bytes: userdata, tag 0 =
// clock, clock id 1 = monotonic at +16, timeout in ns at +24, precision,
// flags 0 = relative):
//
//	(func (export "_start")
//	  (drop (call $poll_oneoff (i32.const 16) (i32.const 64) (i32.const 1) (i32.const 120))))
func WAGISleep(d time.Duration) []byte {
	sub := make([]byte, 48)
	binary.LittleEndian.PutUint32(sub[16:], 1) // clock id: monotonic
	binary.LittleEndian.PutUint64(sub[24:], uint64(d.Nanoseconds()))
	start := cat(
		i32const(16), i32const(64), i32const(1), i32const(120), []byte{opCall}, uleb(0), []byte{opDrop},
	)
	return moduleImporting("poll_oneoff", 1, map[string][]byte{"_start": start}, sub)
}

// Recurse is a WAGI module whose _start recurses exponentially without a
// single loop: rec(n) calls rec(n-1) twice, from n = 64, so it never
// ends. It is the equivalent of
//
//	(module
//	  (memory (export "memory") 1)
//	  (func (export "_start") (call $rec (i32.const 64)))
//	  (func $rec (param i32)
//	    (if (i32.eqz (local.get 0)) (then (return)))
//	    (call $rec (i32.sub (local.get 0) (i32.const 1)))
//	    (call $rec (i32.sub (local.get 0) (i32.const 1)))))
//
// A deadline check at loop heads alone would never stop it.
func Recurse() []byte {
	const (
		opIf       = 0x04
		opReturn   = 0x0f
		opLocalGet = 0x20
		opI32Eqz   = 0x45
		opI32Sub   = 0x6b
	)
	voidType := cat([]byte{0x60}, vec(), vec())
	i32Type := cat([]byte{0x60}, vec([]byte{valI32}), vec())
	recurse := cat(i32const(1), []byte{opI32Sub, opCall}, uleb(1))
	start := cat(i32const(64), []byte{opCall}, uleb(1), []byte{opEnd})
	rec := cat([]byte{opLocalGet, 0, opI32Eqz, opIf, blockEmpty, opReturn, opEnd},
		[]byte{opLocalGet, 0}, recurse, []byte{opLocalGet, 0}, recurse, []byte{opEnd})
	body := func(b []byte) []byte { b = cat(vec(), b); return cat(uleb(uint32(len(b))), b) }
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, vec(voidType, i32Type))...)
	out = append(out, section(3, vec(uleb(0), uleb(1)))...)
	out = append(out, section(5, vec(cat([]byte{0x00}, uleb(1))))...)
	out = append(out, section(7, vec(cat(name("memory"), []byte{0x02}, uleb(0)), cat(name("_start"), []byte{0x00}, uleb(0))))...)
	out = append(out, section(10, vec(body(start), body(rec)))...)
	return out
}

// SpinInStart is a WAGI module whose start section (run while the
// module is instantiated, before any export can be called) loops
// forever; its _start does nothing.
func SpinInStart() []byte {
	voidType := cat([]byte{0x60}, vec(), vec())
	body := func(b []byte) []byte { b = cat(vec(), b, []byte{opEnd}); return cat(uleb(uint32(len(b))), b) }
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, vec(voidType))...)
	out = append(out, section(3, vec(uleb(0), uleb(0)))...)
	out = append(out, section(5, vec(cat([]byte{0x00}, uleb(1))))...)
	out = append(out, section(7, vec(cat(name("memory"), []byte{0x02}, uleb(0)), cat(name("_start"), []byte{0x00}, uleb(0))))...)
	out = append(out, section(8, uleb(1))...)
	out = append(out, section(10, vec(body(nil), body([]byte{opLoop, blockEmpty, opBr, 0, opEnd})))...)
	return out
}

// ReactorInitTrap is a reactor module (memory, _initialize,
// isotope_alloc, isotope_handle) whose _initialize traps, so no instance
// of it ever starts.
func ReactorInitTrap() []byte {
	const valI64 = 0x7e
	voidType := cat([]byte{0x60}, vec(), vec())
	allocType := cat([]byte{0x60}, vec([]byte{valI32}), vec([]byte{valI32}))
	handleType := cat([]byte{0x60}, vec([]byte{valI32}, []byte{valI32}), vec([]byte{valI64}))
	body := func(b []byte) []byte { b = cat(vec(), b, []byte{opEnd}); return cat(uleb(uint32(len(b))), b) }
	export := func(n string, idx uint32) []byte { return cat(name(n), []byte{0x00}, uleb(idx)) }
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, vec(voidType, allocType, handleType))...)
	out = append(out, section(3, vec(uleb(0), uleb(1), uleb(2)))...)
	out = append(out, section(5, vec(cat([]byte{0x00}, uleb(1))))...)
	out = append(out, section(7, vec(cat(name("memory"), []byte{0x02}, uleb(0)),
		export("_initialize", 0), export("isotope_alloc", 1), export("isotope_handle", 2)))...)
	out = append(out, section(10, vec(
		body([]byte{opUnreachable}),
		body(i32const(1024)),
		body([]byte{0x42, 0x00}), // i64.const 0
	))...)
	return out
}

// MemoryLeftover is a WAGI module that traps if its linear memory is
// not zero at address 4096 when it starts, then leaves a 1 there and
// answers like WAGIHello. Every new instance must answer 200: memory the
// host reuses for it must come back zeroed.
//
//	(if (i32.load (i32.const 4096)) (then unreachable))
//	(i32.store (i32.const 4096) (i32.const 1))
//	... WAGIStatic's body
func MemoryLeftover() []byte {
	const (
		opIf      = 0x04
		opI32Load = 0x28
	)
	out := "Content-Type: text/plain\n\nhello\n"
	start := cat(
		i32const(4096), []byte{opI32Load, 2, 0, opIf, blockEmpty, opUnreachable, opEnd},
		i32const(4096), i32const(1), []byte{opI32Store, 2, 0},
		i32const(0), i32const(16), []byte{opI32Store, 2, 0},
		i32const(4), i32const(int32(len(out))), []byte{opI32Store, 2, 0},
		i32const(1), i32const(0), i32const(1), i32const(8), []byte{opCall}, uleb(0), []byte{opDrop},
	)
	return module(true, 1, map[string][]byte{"_start": start}, []byte(out))
}

// WAGIFlood is a WAGI module whose _start writes a CGI header and then
// chunks × 64 KiB of zero bytes to stdout, 64 KiB per fd_write: a
// response past any sane limit.
func WAGIFlood(chunks int32) []byte {
	const (
		opI32Load = 0x28
		opI32Add  = 0x6a
		opI32LtU  = 0x49
	)
	header := "Content-Type: application/octet-stream\n\n"
	store := func(addr, v int32) []byte { return cat(i32const(addr), i32const(v), []byte{opI32Store, 2, 0}) }
	write := func(iov int32) []byte {
		return cat(i32const(1), i32const(iov), i32const(1), i32const(120), []byte{opCall}, uleb(0), []byte{opDrop})
	}
	start := cat(
		store(0, 16), store(4, int32(len(header))), write(0),
		store(8, 65536), store(12, 65536),
		[]byte{opLoop, blockEmpty},
		write(8),
		i32const(200), i32const(200), []byte{opI32Load, 2, 0}, i32const(1), []byte{opI32Add, opI32Store, 2, 0},
		i32const(200), []byte{opI32Load, 2, 0}, i32const(chunks), []byte{opI32LtU, opBrIf, 0},
		[]byte{opEnd},
	)
	return module(true, 2, map[string][]byte{"_start": start}, []byte(header))
}
