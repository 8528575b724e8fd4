package rewrite

import (
	"errors"
	"fmt"
)

// wreader decodes the binary format; the first error sticks.
type wreader struct {
	b   []byte
	err error
}

var errEnd = errors.New("unexpected end")

// since returns what r consumed since its remaining bytes were before.
func (r *wreader) since(before []byte) []byte {
	return before[:len(before)-len(r.b)]
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
