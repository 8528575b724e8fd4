// Package rewrite prepares a WebAssembly module to run under Isotope's
// scheduler: bytes in, bytes out, no runtime involved.
//
// Guest machine code compiled by wazero is never preempted by the Go
// scheduler: a goroutine inside it holds its P until it returns, a
// stop-the-world (every garbage collection has two) waits for it, and a
// timer meant to stop it needs a P of its own to fire. A guest that
// loops without calling out of WebAssembly therefore freezes the whole
// process once every P runs one (decision 0011). wazero's own remedy,
// RuntimeConfig.WithCloseOnContextDone, leaves machine code for Go at
// every loop iteration, which made a Go hello handler five times slower
// (decision 0008). Rewrite instead makes the guest call out on its own,
// rarely and at a bounded interval, and count its work cheaply in
// between:
//
//   - a new mutable i32 global, the budget, exported as CounterExport
//     and starting at InitialBudget;
//   - an import, YieldFunction from ImportModule, of type [] -> [i32];
//   - at the start of every function body, at the head of every loop
//     and after every StraightLine instructions without either, the
//     check "budget -= 1; if budget <= 0 { budget = yield() }";
//   - after every bulk memory or table operation, the same check with
//     the cost of its length, one unit per KiB (a memory.fill of 128 MiB
//     must not count as one loop iteration).
//
// One unit of budget thus stands for at most StraightLine instructions
// plus one KiB of bulk copying, and a guest calls yield after at most
// its budget of units. The host's yield (internal/wasm) is ordinary Go:
// calling it lets the Go scheduler preempt the goroutine and a garbage
// collection stop it, and yield itself ends a call past its deadline
// and shares the guest-execution slots fairly. Between yields the check
// costs a load, a subtraction, a store and a branch that is not taken.
//
// Adding an imported function shifts the index of every function the
// module defines by one, so Rewrite renumbers them wherever they are
// named: calls, ref.func, exports, element segments, global initializers
// and the function names of the "name" section. It also merges data
// segments (datamerge.go). Modules it does not fully understand, and
// modules with a start section (which runs inside instantiation, before
// the host could bound it), are refused with a *NotRewritable error; the
// host then runs them unchanged on wazero's close-on-context-done.
package rewrite

import (
	"bytes"
	"fmt"
)

// ImportModule and YieldFunction name the host function a rewritten
// module imports: [] -> [i32], returning the new budget.
const (
	ImportModule  = "isotope"
	YieldFunction = "yield"
)

// CounterExport is the export name of the budget global. A module must
// not export this name itself.
const CounterExport = "isotope_interrupt"

// InitialBudget is the budget a rewritten instance starts with.
const InitialBudget = 1 << 14

// StraightLine is the most instructions a rewritten function runs
// without passing a check.
const StraightLine = 64

// bulkShift is the cost of a bulk operation of n bytes or elements:
// 1 + n>>bulkShift units.
const bulkShift = 10

// Version names Rewrite's output in on-disk caches; it changes whenever
// the rewrite does (2: data segments merged; 3: budget and yield import).
const Version = 3

// NotRewritable explains why a module is left unchanged.
type NotRewritable struct{ msg string }

func (e *NotRewritable) Error() string { return "interrupt checks not added: " + e.msg }

func noRewrite(format string, args ...any) error {
	return &NotRewritable{fmt.Sprintf(format, args...)}
}

// section ids and their order in a module (custom sections, id 0, may
// appear anywhere).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
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

// layout is what Rewrite learns of a module before changing it.
type layout struct {
	types           uint32 // entries of the type section
	importedFuncs   uint32 // F: the yield import's index; defined functions move up by one
	importedGlobals uint32
	definedGlobals  uint32
	hasDataCount    bool
}

// shiftFunc renumbers a function index for the added import.
func (l *layout) shiftFunc(idx uint32) uint32 {
	if idx >= l.importedFuncs {
		return idx + 1
	}
	return idx
}

// Rewrite returns a copy of the module bin with the budget, the yield
// import and the checks added (see the package comment) and its data
// segments merged, or a *NotRewritable saying why it could not.
func Rewrite(bin []byte) ([]byte, error) {
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

	var l layout
	for _, s := range secs {
		var err error
		switch s.id {
		case secDataCount:
			l.hasDataCount = true
		case secStart:
			return nil, noRewrite("the module has a start section")
		case secType:
			l.types, err = countFuncTypes(s.payload)
		case secImport:
			l.importedFuncs, l.importedGlobals, err = countImports(s.payload)
		case secGlobal:
			r := &wreader{b: s.payload}
			l.definedGlobals = r.u32()
			if r.err != nil {
				err = noRewrite("global section: %v", r.err)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	budget := l.importedGlobals + l.definedGlobals // the new globals' indices
	scratch := budget + 1
	yield := l.importedFuncs
	ins := checks{budget: budget, scratch: scratch, yield: yield}

	// What is appended to each section, or makes up a new one.
	yieldType := []byte{0x60, 0x00, 0x01, 0x7f} // [] -> [i32]
	yieldImport := appendName(appendName(nil, ImportModule), YieldFunction)
	yieldImport = append(yieldImport, 0x00) // function
	yieldImport = appendU32(yieldImport, l.types)
	newGlobals := []byte{0x7f, 0x01, 0x41} // mut i32 = InitialBudget
	newGlobals = appendS32(newGlobals, InitialBudget)
	newGlobals = append(newGlobals, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b) // mut i32 = 0
	exportEntry := appendName(nil, CounterExport)
	exportEntry = append(exportEntry, 0x03) // global
	exportEntry = appendU32(exportEntry, budget)

	out := make([]byte, 0, len(bin)+len(bin)/4+64)
	out = append(out, bin[:8]...)
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	// A section the module lacks is added just before the first
	// section that must follow it.
	added := map[byte]bool{}
	fresh := map[byte][]byte{
		secType:   append(appendU32(nil, 1), yieldType...),
		secImport: append(appendU32(nil, 1), yieldImport...),
		secGlobal: append(appendU32(nil, 2), newGlobals...),
		secExport: append(appendU32(nil, 1), exportEntry...),
	}
	order := []byte{secType, secImport, secGlobal, secExport}
	for _, s := range secs {
		if s.id != secCustom {
			for _, id := range order {
				if !added[id] && sectionRank(s.id) > sectionRank(id) {
					emit(id, fresh[id])
					added[id] = true
				}
			}
		}
		var p []byte
		var err error
		switch s.id {
		case secType:
			p, err = appendEntry(s.payload, yieldType)
		case secImport:
			p, err = appendEntry(s.payload, yieldImport)
		case secGlobal:
			p, err = rewriteGlobals(s.payload, &l, newGlobals)
		case secExport:
			p, err = rewriteExports(s.payload, &l, exportEntry, budget)
		case secElement:
			p, err = rewriteElements(s.payload, &l)
		case secCode:
			p, err = ins.code(s.payload, &l)
		case secData:
			p = s.payload
			if !l.hasDataCount {
				p = mergeDataSegments(p)
			}
		case secCustom:
			p = rewriteCustom(s.payload, &l)
		default:
			p = s.payload
		}
		if err != nil {
			return nil, err
		}
		if s.id != secCustom {
			added[s.id] = true
		}
		emit(s.id, p)
	}
	for _, id := range order {
		if !added[id] {
			emit(id, fresh[id])
		}
	}
	return out, nil
}

// countFuncTypes reads a type section whose entries are all plain
// function types (the GC proposal's recursive groups are refused: an
// entry may then define several types).
func countFuncTypes(p []byte) (uint32, error) {
	r := &wreader{b: p}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 && r.err == nil {
			return 0, noRewrite("type section: type %d has form %#x, not a function type", i, form)
		}
		for k := 0; k < 2; k++ { // params, results
			for c := r.u32(); c > 0 && r.err == nil; c-- {
				r.valtype()
			}
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return 0, noRewrite("type section: %v", orTrailing(r.err))
	}
	return n, nil
}

// countImports reads an import section, refusing one that already
// imports the yield function.
func countImports(p []byte) (funcs, globals uint32, err error) {
	r := &wreader{b: p}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		mod, name := r.name(), r.name()
		if mod == ImportModule && name == YieldFunction {
			return 0, 0, noRewrite("the module already imports %s.%s", ImportModule, YieldFunction)
		}
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			funcs++
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.valtype()
			r.byte()
			globals++
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			return 0, 0, noRewrite("import section: unknown import kind %#x", kind)
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return 0, 0, noRewrite("import section: %v", orTrailing(r.err))
	}
	return funcs, globals, nil
}

// appendEntry adds one entry to a section that is a vector.
func appendEntry(p, entry []byte) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	if r.err != nil {
		return nil, noRewrite("vector section: %v", r.err)
	}
	out := appendU32(make([]byte, 0, len(p)+len(entry)+5), n+1)
	out = append(out, r.b...)
	return append(out, entry...), nil
}

func orTrailing(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("trailing bytes")
}
