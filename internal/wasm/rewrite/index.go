package rewrite

// Renumbering functions outside the code section: the yield import takes
// index layout.importedFuncs, and every function the module defines
// moves up by one.

// rewriteGlobals renumbers ref.func in the initializers of a global
// section and appends the new globals (two entries in extra).
func rewriteGlobals(p []byte, l *layout, extra []byte) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+len(extra)+5), n+2)
	for i := uint32(0); i < n && r.err == nil; i++ {
		before := r.b
		r.valtype()
		r.byte() // mutability
		out = append(out, r.since(before)...)
		var err error
		if out, err = constExpr(out, r, l); err != nil {
			return nil, noRewrite("global %d: %v", i, err)
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, noRewrite("global section: %v", orTrailing(r.err))
	}
	return append(out, extra...), nil
}

// constExpr copies one constant expression (up to its end) from r to
// out with ref.func renumbered.
func constExpr(out []byte, r *wreader, l *layout) ([]byte, error) {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return append(out, op), nil
		case 0x41, 0x42: // i32.const, i64.const
			before := r.b
			r.s64()
			out = append(append(out, op), r.since(before)...)
		case 0x43:
			out = append(append(out, op), r.take(4)...)
		case 0x44:
			out = append(append(out, op), r.take(8)...)
		case 0x23: // global.get
			out = appendU32(append(out, op), r.u32())
		case 0xd0: // ref.null heaptype
			before := r.b
			r.s64()
			out = append(append(out, op), r.since(before)...)
		case 0xd2: // ref.func
			out = appendU32(append(out, op), l.shiftFunc(r.u32()))
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
			out = append(out, op)
		case 0xfd: // v128.const
			if sub := r.u32(); sub != 12 {
				return nil, errUnknownConst(op)
			}
			out = append(append(out, op, 12), r.take(16)...)
		default:
			return nil, errUnknownConst(op)
		}
	}
	return nil, r.err
}

type errUnknownConst byte

func (e errUnknownConst) Error() string {
	return "constant expression: unsupported opcode " + hex(byte(e))
}

func hex(b byte) string {
	const digits = "0123456789abcdef"
	return "0x" + string([]byte{digits[b>>4], digits[b&15]})
}

// rewriteExports renumbers function exports and appends the budget's,
// refusing a module that already exports CounterExport or names a global
// it does not define (valid only once the new globals exist).
func rewriteExports(p []byte, l *layout, entry []byte, firstNew uint32) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+len(entry)+5), n+1)
	for i := uint32(0); i < n && r.err == nil; i++ {
		name := r.name()
		kind := r.byte()
		idx := r.u32()
		if name == CounterExport {
			return nil, noRewrite("the module already exports %q", CounterExport)
		}
		switch {
		case kind == 0x00:
			idx = l.shiftFunc(idx)
		case kind == 0x03 && idx >= firstNew:
			return nil, noRewrite("export %q names global %d, which the module does not define", name, idx)
		}
		out = appendName(out, name)
		out = appendU32(append(out, kind), idx)
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, noRewrite("export section: %v", orTrailing(r.err))
	}
	return append(out, entry...), nil
}

// rewriteElements renumbers the functions of an element section, in
// each of its eight segment encodings.
func rewriteElements(p []byte, l *layout) ([]byte, error) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+16), n)
	var err error
	for i := uint32(0); i < n && r.err == nil && err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			return nil, noRewrite("element segment %d: unknown flags %d", i, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = constExpr(out, r, l); err != nil {
				break
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			if flags&4 == 0 {
				out = append(out, r.byte())
			} else {
				before := r.b
				r.valtype()
				out = append(out, r.since(before)...)
			}
		}
		count := r.u32()
		out = appendU32(out, count)
		for ; count > 0 && r.err == nil && err == nil; count-- {
			if flags&4 == 0 {
				out = appendU32(out, l.shiftFunc(r.u32()))
			} else {
				out, err = constExpr(out, r, l)
			}
		}
	}
	if err == nil && r.err == nil && len(r.b) != 0 {
		err = orTrailing(nil)
	}
	if err == nil {
		err = r.err
	}
	if err != nil {
		return nil, noRewrite("element section: %v", err)
	}
	return out, nil
}

// rewriteCustom renumbers the function names of a "name" section (its
// function, local and label name maps); other custom sections, and a
// name section it cannot read, are kept or dropped as they are: names
// only serve stack traces, so a name section that does not parse is
// left out rather than left wrong.
func rewriteCustom(p []byte, l *layout) []byte {
	r := &wreader{b: p}
	if r.name() != "name" || r.err != nil {
		return p
	}
	out := append([]byte(nil), p[:len(p)-len(r.b)]...)
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sub := r.take(int(r.u32()))
		if r.err != nil {
			break
		}
		switch id {
		case 1, 2, 3: // function names; local and label names by function
			renumbered, ok := renumberNameMap(sub, l, id != 1)
			if !ok {
				return []byte("\x04name") // an empty name section
			}
			sub = renumbered
		}
		out = appendU32(append(out, id), uint32(len(sub)))
		out = append(out, sub...)
	}
	if r.err != nil {
		return []byte("\x04name")
	}
	return out
}

// renumberNameMap renumbers the outer (function) indices of a name map
// or, if indirect, of a map of name maps.
func renumberNameMap(p []byte, l *layout, indirect bool) ([]byte, bool) {
	r := &wreader{b: p}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(p)+8), n)
	for ; n > 0 && r.err == nil; n-- {
		out = appendU32(out, l.shiftFunc(r.u32()))
		if !indirect {
			out = appendName(out, r.name())
			continue
		}
		before := r.b
		for m := r.u32(); m > 0 && r.err == nil; m-- {
			r.u32()
			r.name()
		}
		out = append(out, r.since(before)...)
	}
	return out, r.err == nil && len(r.b) == 0
}
