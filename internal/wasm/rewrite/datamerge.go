package rewrite

import (
	"errors"
	"slices"
)

// Merging data segments.
//
// Go's linker writes a module's initialized data as one active segment per
// run of non-zero bytes: the hello function has 58,135 of them, 16 to 64
// bytes apart, covering 2.6 MB. wazero evaluates each segment's offset
// expression and copies each one at every instantiation, allocating as it
// goes: about 1.4 MB and 34,000 allocations per instance, most of a warm
// instance start (profile in bench/README.md). The rewrite that adds the
// interrupt checks therefore also replaces such a data section with one
// segment per stretch of memory, the gaps between the original segments
// filled with the zeros the memory already holds there: the same memory
// contents after instantiation, written by one copy.
//
// Only the plain case is merged: every segment active, in memory 0, at a
// constant i32 offset, none overlapping another (the order of overlapping
// writes would matter), and no data count section (memory.init and
// data.drop name segments by index, and need that section). Anything else
// is left as it is.

// maxMergeGap is the largest zero gap filled in to join two segments;
// segments further apart start a new merged segment, so a module with
// data at both ends of its memory does not grow by the distance.
const maxMergeGap = 64 << 10

// secData is the data section's id.
const secData = 11

// dataSegment is one active segment at a constant offset.
type dataSegment struct {
	offset uint32
	init   []byte
}

// mergeDataSegments returns the data section payload p with its segments
// merged, or p itself when it is not the plain case or would not shrink
// in count.
func mergeDataSegments(p []byte) []byte {
	segs, err := parseDataSegments(p)
	if err != nil || len(segs) < 2 {
		return p
	}
	slices.SortStableFunc(segs, func(a, b dataSegment) int {
		switch {
		case a.offset < b.offset:
			return -1
		case a.offset > b.offset:
			return 1
		}
		return 0
	})
	type run struct{ start, end uint32 }
	var runs []run
	for i, s := range segs {
		end := uint64(s.offset) + uint64(len(s.init))
		if end > 1<<32 {
			return p // out of any memory: let instantiation report it
		}
		if i > 0 {
			last := &runs[len(runs)-1]
			if s.offset < last.end {
				return p // overlapping writes: their order matters
			}
			if s.offset-last.end <= maxMergeGap {
				last.end = uint32(end)
				continue
			}
		}
		runs = append(runs, run{s.offset, uint32(end)})
	}
	if len(runs) == len(segs) {
		return p
	}
	size := 0
	for _, r := range runs {
		size += int(r.end-r.start) + 16
	}
	out := make([]byte, 0, size+5)
	out = appendU32(out, uint32(len(runs)))
	i := 0
	for _, r := range runs {
		out = append(out, 0x00, 0x41) // active, memory 0; i32.const
		out = appendS32(out, int32(r.start))
		out = append(out, 0x0b) // end
		out = appendU32(out, r.end-r.start)
		base := len(out)
		out = append(out, make([]byte, r.end-r.start)...)
		// Every segment up to the run's end is in it (the next run
		// starts more than maxMergeGap after), empty ones included.
		for ; i < len(segs) && segs[i].offset <= r.end; i++ {
			copy(out[base+int(segs[i].offset-r.start):], segs[i].init)
		}
	}
	return out
}

// parseDataSegments reads a data section whose segments are all active in
// memory 0 at an i32.const offset; an error for anything else.
func parseDataSegments(p []byte) ([]dataSegment, error) {
	r := &wreader{b: p}
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(p)) {
		return nil, errors.New("bad segment count")
	}
	segs := make([]dataSegment, 0, n)
	for range n {
		if flag := r.byte(); flag != 0x00 {
			return nil, errors.New("not an active segment in memory 0")
		}
		if op := r.byte(); op != 0x41 {
			return nil, errors.New("offset is not an i32.const")
		}
		off := r.s32()
		if r.byte() != 0x0b {
			return nil, errors.New("offset expression longer than one constant")
		}
		size := r.u32()
		init := r.take(int(size))
		if r.err != nil {
			return nil, r.err
		}
		segs = append(segs, dataSegment{uint32(off), init})
	}
	if len(r.b) != 0 {
		return nil, errors.New("bytes after the last segment")
	}
	return segs, nil
}

// s32 reads a signed LEB128 of at most 32 bits.
func (r *wreader) s32() int32 {
	var v int64
	var shift uint
	for {
		if shift >= 35 {
			r.fail(errors.New("LEB128 too long"))
			return 0
		}
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			break
		}
	}
	if v < -1<<31 || v > 1<<31-1 {
		r.fail(errors.New("s32 out of range"))
		return 0
	}
	return int32(v)
}

// appendS32 appends v as a signed LEB128.
func appendS32(dst []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}
