package rewrite

import "fmt"

// checks writes the budget checks into function bodies (package comment).
type checks struct {
	budget, scratch uint32 // global indices
	yield           uint32 // function index of the import
}

// check appends "budget -= units; if budget <= 0 { budget = yield() }".
func (c checks) check(dst []byte, units int32) []byte {
	dst = appendU32(append(dst, 0x23), c.budget) // global.get budget
	dst = appendS32(append(dst, 0x41), units)    // i32.const units
	dst = append(dst, 0x6b)                      // i32.sub
	dst = appendU32(append(dst, 0x24), c.budget) // global.set budget
	return c.yieldIfSpent(dst)
}

// yieldIfSpent appends "if budget <= 0 { budget = yield() }".
func (c checks) yieldIfSpent(dst []byte) []byte {
	dst = appendU32(append(dst, 0x23), c.budget) // global.get budget
	dst = append(dst, 0x41, 0x00, 0x4c)          // i32.const 0; i32.le_s
	dst = append(dst, 0x04, 0x40)                // if (empty)
	dst = appendU32(append(dst, 0x10), c.yield)  // call yield
	dst = appendU32(append(dst, 0x24), c.budget) // global.set budget
	return append(dst, 0x0b)                     // end
}

// bulkCost appends, after a bulk operation whose length was saved in
// the scratch global, "budget -= 1 + length>>bulkShift" and the yield.
func (c checks) bulkCost(dst []byte) []byte {
	dst = appendU32(append(dst, 0x23), c.budget)  // global.get budget
	dst = appendU32(append(dst, 0x23), c.scratch) // global.get scratch
	dst = append(dst, 0x41, bulkShift, 0x76)      // i32.const; i32.shr_u
	dst = append(dst, 0x6b, 0x41, 0x01, 0x6b)     // i32.sub; i32.const 1; i32.sub
	dst = appendU32(append(dst, 0x24), c.budget)  // global.set budget
	return c.yieldIfSpent(dst)
}

// saveLength appends "global.set scratch; global.get scratch": the
// length on top of the stack is kept for bulkCost.
func (c checks) saveLength(dst []byte) []byte {
	dst = appendU32(append(dst, 0x24), c.scratch)
	return appendU32(append(dst, 0x23), c.scratch)
}

// code rewrites every function body of a code section.
func (c checks) code(p []byte, l *layout) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+len(p)/4), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		b := r.take(int(size))
		if r.err != nil {
			return nil, noRewrite("code section, function %d: %v", i, r.err)
		}
		var err error
		body, err = c.body(body[:0], b, l)
		if err != nil {
			return nil, noRewrite("code section, function body %d: %v", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if len(r.b) != 0 || r.err != nil {
		return nil, noRewrite("code section: %v", orTrailing(r.err))
	}
	return out, nil
}

// body copies one function body (locals, then instructions) to dst with
// the checks added and function indices renumbered.
func (c checks) body(dst, b []byte, l *layout) ([]byte, error) {
	r := &wreader{b: b}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.u32()
		r.valtype()
	}
	if r.err != nil {
		return nil, fmt.Errorf("locals: %w", r.err)
	}
	dst = append(dst, b[:len(b)-len(r.b)]...)
	dst = c.check(dst, 1)
	run := 0 // instructions since the last check
	for len(r.b) > 0 {
		if run >= StraightLine {
			dst = c.check(dst, 1)
			run = 0
		}
		run++
		before := r.b
		op := r.byte()
		switch {
		case op == 0x03: // loop
			r.s64()
			dst = append(dst, r.since(before)...)
			dst = c.check(dst, 1)
			run = 0
			continue
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			idx := r.u32()
			dst = appendU32(append(dst, op), l.shiftFunc(idx))
			continue
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx := r.u32(); idx >= c.budget && r.err == nil {
				return nil, fmt.Errorf("instruction %#x names global %d, which the module does not define", op, idx)
			}
		case op == 0xfc:
			sub := (&wreader{b: r.b}).u32()
			if err := r.miscImmediates(); err != nil {
				return nil, err
			}
			if r.err == nil && isBulk(sub) {
				dst = c.saveLength(dst)
				dst = append(dst, r.since(before)...)
				dst = c.bulkCost(dst)
				run = 0
				continue
			}
		default:
			if err := r.skipImmediates(op); err != nil {
				return nil, err
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("opcode %#x: %w", op, r.err)
		}
		dst = append(dst, r.since(before)...)
	}
	if r.err != nil {
		return nil, r.err
	}
	return dst, nil
}

// isBulk reports whether the 0xfc instruction sub copies or fills a
// length given on top of the stack: memory.init, memory.copy,
// memory.fill, table.init, table.copy, table.fill.
func isBulk(sub uint32) bool {
	switch sub {
	case 8, 10, 11, 12, 14, 17:
		return true
	}
	return false
}

// skipImmediates reads the immediates of every opcode but loop, calls,
// ref.func, global.get/set and 0xfc (body handles those).
func (r *wreader) skipImmediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x04 || op == 0x06: // block, if, try (legacy)
		r.s64()
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x0c || op == 0x0d ||
		op == 0x14 || op == 0x15 || op == 0x18 ||
		(op >= 0x20 && op <= 0x22) || op == 0x25 || op == 0x26 ||
		op == 0x3f || op == 0x40 || op == 0xd5 || op == 0xd6:
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
				return fmt.Errorf("try_table: unknown catch kind %#x", kind)
			}
		}
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x41 || op == 0x42:
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
	case op == 0xfd:
		return r.vecImmediates()
	case op == 0xfe:
		return r.atomicImmediates()
	default:
		return fmt.Errorf("unknown opcode %#x", op)
	}
	return nil
}
