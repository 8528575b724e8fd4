package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"
)

// Stopping a guest at its deadline.
//
// wazero's own mechanism, RuntimeConfig.WithCloseOnContextDone, compiles
// a call out of machine code into Go at the head of every loop: one full
// exit to the Go side and back per loop iteration, taken whether or not
// anything asked the guest to stop. Go compiles every function that can
// be resumed after a goroutine switch into a loop, so a Go guest pays it
// on nearly every call: a hello handler spent four fifths of its time
// there (≈ 200 µs of CPU a request instead of ≈ 40 µs; wazero issue
// #2466). Isotope instead rewrites each module once, before compiling it:
//
//   - a new mutable i32 global, exported as InterruptExport, starting at 0;
//   - at the start of every function body and of every loop, the check
//     "global.get $g; if; unreachable; end": one load and one branch in
//     machine code, never a call.
//
// The host arms each guest call with context.AfterFunc, which sets the
// global to 1 when the call's context ends; the guest then traps at its
// next loop iteration or function entry, however it got there (a tight
// loop, a deep or exponential recursion), and the instance, stopped
// mid-work, is discarded like any other that trapped. Host calls that
// block (sleeps) end with the context on their own (sleeper).
//
// Modules the rewriter does not fully understand, and modules with a
// start section (which runs inside instantiation, before the host could
// arm anything), are compiled unchanged by a second wazero runtime with
// WithCloseOnContextDone: slower, equally safe.

// InterruptExport is the export name of the global the host sets to stop
// a guest (see the comment above). A module must not export this name
// itself.
const InterruptExport = "isotope_interrupt"

// errNoRewrite explains why a module is run on the close-on-context-done
// runtime instead.
type errNoRewrite struct{ msg string }

func (e *errNoRewrite) Error() string { return "interrupt checks not added: " + e.msg }

func noRewrite(format string, args ...any) error {
	return &errNoRewrite{fmt.Sprintf(format, args...)}
}

// section ids and their order in a module (custom sections, id 0, may
// appear anywhere).
const (
	secCustom    = 0
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secCode      = 10
	secDataCount = 12
	secTag       = 13
)

// sectionRank orders the known sections as the binary format requires.
func sectionRank(id byte) int {
	switch id {
	case secTag:
		return 55 // between memory (5) and global (6)
	case secDataCount:
		return 95 // between element (9) and code (10)
	}
	return int(id) * 10
}

type section struct {
	id      byte
	payload []byte
}

// instrumentInterrupts returns a copy of the module bin with the
// interrupt global and checks added (see the comment at the top of the
// file) and its data segments merged (datamerge.go), or an *errNoRewrite
// saying why it could not.
func instrumentInterrupts(bin []byte) ([]byte, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:4], []byte("\x00asm")) || !bytes.Equal(bin[4:8], []byte{1, 0, 0, 0}) {
		return nil, noRewrite("not a WebAssembly 1.0 binary module")
	}
	var secs []section
	rd := &wreader{b: bin[8:]}
	for len(rd.b) > 0 {
		id := rd.byte()
		n := rd.u32()
		p := rd.take(int(n))
		if rd.err != nil {
			return nil, noRewrite("section %d: %v", id, rd.err)
		}
		secs = append(secs, section{id, p})
	}

	importedGlobals, definedGlobals := 0, 0
	globalAt, exportAt := -1, -1
	hasDataCount := false
	for i, s := range secs {
		switch s.id {
		case secDataCount:
			hasDataCount = true
		case secStart:
			return nil, noRewrite("the module has a start section")
		case secImport:
			n, err := countImportedGlobals(s.payload)
			if err != nil {
				return nil, err
			}
			importedGlobals = n
		case secGlobal:
			r := &wreader{b: s.payload}
			definedGlobals = int(r.u32())
			if r.err != nil {
				return nil, noRewrite("global section: %v", r.err)
			}
			globalAt = i
		case secExport:
			exportAt = i
		}
	}
	g := uint32(importedGlobals + definedGlobals) // the new global's index
	check := appendU32([]byte{0x23}, g)           // global.get g
	check = append(check, 0x04, 0x40, 0x00, 0x0b) // if (empty) unreachable end

	out := make([]byte, 0, len(bin)+len(bin)/8+64)
	out = append(out, bin[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b} // mut i32 = i32.const 0
	exportEntry := appendName(nil, InterruptExport)
	exportEntry = append(exportEntry, 0x03) // global
	exportEntry = appendU32(exportEntry, g)

	addedGlobal, addedExport := false, false
	for i, s := range secs {
		// A module without a global (export) section gets one just
		// before the first section that must follow it.
		if !addedGlobal && globalAt < 0 && s.id != secCustom && sectionRank(s.id) > sectionRank(secGlobal) {
			emit(secGlobal, append(appendU32(nil, 1), newGlobal...))
			addedGlobal = true
		}
		if !addedExport && exportAt < 0 && s.id != secCustom && sectionRank(s.id) > sectionRank(secExport) {
			emit(secExport, append(appendU32(nil, 1), exportEntry...))
			addedExport = true
		}
		switch {
		case i == globalAt:
			r := &wreader{b: s.payload}
			n := r.u32()
			p := appendU32(nil, n+1)
			p = append(p, r.b...)
			emit(secGlobal, append(p, newGlobal...))
			addedGlobal = true
		case i == exportAt:
			p, err := addExport(s.payload, exportEntry, g)
			if err != nil {
				return nil, err
			}
			emit(secExport, p)
			addedExport = true
		case s.id == secCode:
			p, err := instrumentCode(s.payload, check, g)
			if err != nil {
				return nil, err
			}
			emit(secCode, p)
		case s.id == secData && !hasDataCount:
			emit(secData, mergeDataSegments(s.payload))
		default:
			emit(s.id, s.payload)
		}
	}
	if !addedGlobal {
		emit(secGlobal, append(appendU32(nil, 1), newGlobal...))
	}
	if !addedExport {
		emit(secExport, append(appendU32(nil, 1), exportEntry...))
	}
	return out, nil
}

// countImportedGlobals reads an import section.
func countImportedGlobals(p []byte) (int, error) {
	r := &wreader{b: p}
	globals := 0
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, noRewrite("import section: unknown import kind %#x", kind)
		}
	}
	if r.err != nil {
		return 0, noRewrite("import section: %v", r.err)
	}
	return globals, nil
}

// addExport appends entry to an export section, refusing a module that
// already exports InterruptExport or names the new global's index (only
// a module invalid as it stands could).
func addExport(p, entry []byte, g uint32) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	entries := r.b
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		kind := r.byte()
		idx := r.u32()
		if name == InterruptExport {
			return nil, noRewrite("the module already exports %q", InterruptExport)
		}
		if kind == 0x03 && idx >= g {
			return nil, noRewrite("export %q names global %d, which the module does not define", name, idx)
		}
	}
	if r.err != nil {
		return nil, noRewrite("export section: %v", r.err)
	}
	if len(r.b) != 0 {
		return nil, noRewrite("export section: trailing bytes")
	}
	out := appendU32(nil, n+1)
	out = append(out, entries...)
	return append(out, entry...), nil
}

// instrumentCode rewrites every function body of a code section.
func instrumentCode(p, check []byte, g uint32) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+len(p)/8), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		b := r.take(int(size))
		if r.err != nil {
			return nil, noRewrite("code section, function %d: %v", i, r.err)
		}
		var err error
		body, err = instrumentBody(body[:0], b, check, g)
		if err != nil {
			return nil, noRewrite("code section, function body %d: %v", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if len(r.b) != 0 || r.err != nil {
		return nil, noRewrite("code section: trailing bytes or %v", r.err)
	}
	return out, nil
}

// instrumentBody copies one function body (locals, then instructions)
// to dst with check at its start and after every loop's block type.
func instrumentBody(dst, b, check []byte, g uint32) ([]byte, error) {
	r := &wreader{b: b}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.u32()
		r.valtype()
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %w", r.err)
	}
	dst = append(dst, b[:len(b)-len(r.b)]...)
	dst = append(dst, check...)
	for len(r.b) > 0 {
		start := len(r.b)
		op := r.byte()
		isLoop := false
		switch {
		case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try (legacy)
			r.s64()
		case op == 0x03: // loop
			r.s64()
			isLoop = true
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx := r.u32(); idx >= g && r.err == nil {
				return nil, fmt.Errorf("instruction %#x names global %d, which the module does not define", op, idx)
			}
		case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x0c || op == 0x0d ||
			op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15 || op == 0x18 ||
			(op >= 0x20 && op <= 0x22) || op == 0x25 || op == 0x26 ||
			op == 0x3f || op == 0x40 || op == 0xd2 || op == 0xd5 || op == 0xd6:
			r.u64()
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.u32()
			r.u32()
		case op == 0x0e: // br_table
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				r.u32()
			}
			r.u32()
		case op == 0x1c: // select t*
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				r.valtype()
			}
		case op == 0x1f: // try_table
			r.s64()
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				switch kind := r.byte(); kind {
				case 0x00, 0x01:
					r.u32()
					r.u32()
				case 0x02, 0x03:
					r.u32()
				default:
					return nil, fmt.Errorf("try_table: unknown catch kind %#x", kind)
				}
			}
		case op >= 0x28 && op <= 0x3e: // loads and stores
			r.memarg()
		case op == 0x41:
			r.s64()
		case op == 0x42:
			r.s64()
		case op == 0x43:
			r.take(4)
		case op == 0x44:
			r.take(8)
		case op == 0xd0: // ref.null heaptype
			r.s64()
		case op == 0x00 || op == 0x01 || op == 0x05 || op == 0x0a || op == 0x0b ||
			op == 0x0f || op == 0x19 || op == 0x1a || op == 0x1b ||
			(op >= 0x45 && op <= 0xc4) || op == 0xd1 || op == 0xd4:
			// no immediates
		case op == 0xfc:
			if err := r.miscImmediates(); err != nil {
				return nil, err
			}
		case op == 0xfd:
			if err := r.vecImmediates(); err != nil {
				return nil, err
			}
		case op == 0xfe:
			if err := r.atomicImmediates(); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown opcode %#x", op)
		}
		if r.err != nil {
			return nil, fmt.Errorf("opcode %#x: %w", op, r.err)
		}
		dst = append(dst, r.consumedSince(b, start)...)
		if isLoop {
			dst = append(dst, check...)
		}
	}
	return dst, nil
}

// wreader decodes the binary format; the first error sticks.
type wreader struct {
	b   []byte
	err error
}

var errEnd = errors.New("unexpected end")

// consumedSince returns the bytes of whole read since the reader had
// remaining bytes left.
func (r *wreader) consumedSince(whole []byte, remaining int) []byte {
	from := len(whole) - remaining
	return whole[from : len(whole)-len(r.b)]
}

func (r *wreader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail(errEnd)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wreader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *wreader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.fail(errEnd)
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// u64 reads an unsigned LEB128 of at most 64 bits.
func (r *wreader) u64() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 70 {
			r.fail(errors.New("LEB128 too long"))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *wreader) u32() uint32 {
	v := r.u64()
	if v > 1<<32-1 {
		r.fail(errors.New("u32 out of range"))
		return 0
	}
	return uint32(v)
}

// s64 reads a signed LEB128 of at most 64 bits (also block types, s33).
func (r *wreader) s64() {
	for i := 0; ; i++ {
		if i >= 10 {
			r.fail(errors.New("LEB128 too long"))
			return
		}
		if c := r.byte(); r.err != nil || c&0x80 == 0 {
			return
		}
	}
}

func (r *wreader) name() string {
	n := r.u32()
	return string(r.take(int(n)))
}

func (r *wreader) limits() {
	flags := r.byte()
	r.u64()
	if flags&1 != 0 {
		r.u64()
	}
}

// valtype reads a value type: one byte for numeric, vector and the 2.0
// reference types; others (typed references) are refused.
func (r *wreader) valtype() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("unsupported value type %#x", t))
		}
	}
}

func (r *wreader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u64()
}

// miscImmediates skips the immediates of a 0xfc instruction.
func (r *wreader) miscImmediates() error {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data mem
		r.u32()
		r.u32()
	case sub == 9 || sub == 11 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		return fmt.Errorf("unknown opcode 0xfc %d", sub)
	}
	return nil
}

// vecImmediates skips the immediates of a 0xfd (SIMD) instruction.
func (r *wreader) vecImmediates() error {
	switch sub := r.u32(); {
	case sub <= 11 || sub == 92 || sub == 93: // loads, store, load_zero
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.take(16)
	case sub >= 21 && sub <= 34: // extract/replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load/store lane
		r.memarg()
		r.byte()
	case sub <= 0x113:
	default:
		return fmt.Errorf("unknown opcode 0xfd %d", sub)
	}
	return nil
}

// atomicImmediates skips the immediates of a 0xfe (threads) instruction.
func (r *wreader) atomicImmediates() error {
	switch sub := r.u32(); {
	case sub == 0x03: // atomic.fence
		r.byte()
	case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e):
		r.memarg()
	default:
		return fmt.Errorf("unknown opcode 0xfe %d", sub)
	}
	return nil
}

func appendU32(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendName(dst []byte, s string) []byte {
	return append(appendU32(dst, uint32(len(s))), s...)
}

// guard stops guest calls on one instance when their context ends.
type guard struct {
	flag api.MutableGlobal // nil: the runtime checks the context itself
	trip func()            // sets flag; bound once, so arming allocates less
}

// newGuard finds mod's interrupt global when c carries the checks.
func newGuard(c *compiled, mod api.Module) (guard, error) {
	if !c.interrupt {
		return guard{}, nil
	}
	g, ok := mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
	if !ok {
		return guard{}, fmt.Errorf("the rewritten module lacks its %s global", InterruptExport)
	}
	return guard{flag: g, trip: func() { g.Set(1) }}, nil
}

// call runs f with stack so that the end of ctx stops it at the guest's
// next loop iteration or function entry. A call stopped that way
// returns an error wrapping ctx.Err(), and the instance must be thrown
// away: its flag stays set and the guest stopped mid-work.
func (g guard) call(ctx context.Context, f api.Function, stack []uint64) error {
	if stack == nil {
		d := f.Definition()
		if n := len(d.ParamTypes()); n > 0 {
			return fmt.Errorf("%s expects %d parameters; it is called with none", d.Name(), n)
		}
		if n := len(d.ResultTypes()); n > 0 {
			stack = make([]uint64, n)
		}
	}
	if g.flag == nil {
		return f.CallWithStack(ctx, stack)
	}
	if ctx.Err() != nil {
		g.trip()
	} else {
		stop := context.AfterFunc(ctx, g.trip)
		defer stop()
	}
	err := f.CallWithStack(ctx, stack)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("guest stopped: %w", ctx.Err())
	}
	return err
}
