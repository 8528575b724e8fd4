package rewrite

import (
	"bytes"
	"testing"
)

// segment encodes one active segment at offset in memory 0.
func segment(offset int32, init []byte) []byte {
	b := append([]byte{0x00, 0x41}, appendS32(nil, offset)...)
	b = append(b, 0x0b)
	b = appendU32(b, uint32(len(init)))
	return append(b, init...)
}

// dataSection encodes a data section payload of the given segments.
func dataSection(segs ...[]byte) []byte {
	p := appendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		p = append(p, s...)
	}
	return p
}

// memoryImage is memory after instantiation applies p's segments in
// order, as far as the last byte written; false if p is not plain.
func memoryImage(t *testing.T, p []byte) ([]byte, int) {
	t.Helper()
	segs, err := parseDataSegments(p)
	if err != nil {
		t.Fatalf("merged section does not parse: %v", err)
	}
	var img []byte
	for _, s := range segs {
		end := int(s.offset) + len(s.init)
		if end > len(img) {
			img = append(img, make([]byte, end-len(img))...)
		}
		copy(img[s.offset:], s.init)
	}
	return img, len(segs)
}

// Segments out of order, near and far apart, become one segment per
// stretch with the same memory contents.
func TestMergeDataSegments(t *testing.T) {
	far := int32(1000 + maxMergeGap)
	p := dataSection(
		segment(64, []byte("world")),
		segment(8, []byte("hello")),
		segment(far, []byte("far away")),
		segment(69, []byte("!")), // adjacent to "world"
		segment(200, bytes.Repeat([]byte{7}, 300)),
	)
	out := mergeDataSegments(p)
	got, n := memoryImage(t, out)
	want, _ := memoryImage(t, p)
	if !bytes.Equal(got, want) {
		t.Fatal("merged segments write other memory contents")
	}
	if n != 2 {
		t.Fatalf("%d segments after merging, want 2 (one up to 500, one far away)", n)
	}
}

// What merging could change the meaning of, or does not understand, is
// left exactly as it is.
func TestMergeDataSegmentsLeavesOtherSectionsAlone(t *testing.T) {
	passive := append([]byte{0x01}, appendU32(nil, 3)...)
	passive = append(passive, "abc"...)
	globalOffset := []byte{0x00, 0x23, 0x00, 0x0b, 0x01, 'x'} // offset from global.get 0
	cases := map[string][]byte{
		"overlap":       dataSection(segment(0, []byte("abcd")), segment(2, []byte("XY"))),
		"passive":       dataSection(segment(0, []byte("a")), passive),
		"global offset": dataSection(segment(0, []byte("a")), globalOffset),
		"trailing":      append(dataSection(segment(0, []byte("a")), segment(4, []byte("b"))), 0),
		"one segment":   dataSection(segment(0, []byte("a"))),
		"past 4 GiB":    dataSection(segment(0, []byte("a")), segment(-1, []byte("bc"))),
		"truncated":     dataSection(segment(0, []byte("a")), segment(4, []byte("b")))[:9],
	}
	for name, p := range cases {
		if out := mergeDataSegments(p); !bytes.Equal(out, p) {
			t.Errorf("%s: rewritten", name)
		}
	}
}

// A module with a data count section (memory.init and data.drop name its
// segments by index) keeps its segments.
func TestInstrumentKeepsSegmentsWithDataCount(t *testing.T) {
	data := dataSection(segment(0, []byte("a")), segment(4, []byte("b")))
	module := func(withCount bool) []byte {
		m := []byte("\x00asm\x01\x00\x00\x00")
		m = append(m, 5, 3, 1, 0x00, 1) // memory section: one memory, min 1 page
		if withCount {
			m = append(m, secDataCount, 1, 2)
		}
		m = append(m, secData)
		m = appendU32(m, uint32(len(data)))
		return append(m, data...)
	}
	for _, withCount := range []bool{false, true} {
		out := mustRewrite(t, module(withCount))
		kept := bytes.Contains(out, data)
		if kept != withCount {
			t.Errorf("data count section %v: segments kept %v", withCount, kept)
		}
	}
}

// The Go reactor's tens of thousands of segments become a few, with the
// same memory contents.
func TestMergeGoModuleData(t *testing.T) {
	var p []byte
	rd := &wreader{b: reactorModule(t)[8:]}
	for len(rd.b) > 0 {
		id := rd.byte()
		b := rd.take(int(rd.u32()))
		if id == secData {
			p = b
		}
	}
	if rd.err != nil || p == nil {
		t.Fatalf("no data section (%v)", rd.err)
	}
	before, n := memoryImage(t, p)
	after, m := memoryImage(t, mergeDataSegments(p))
	if !bytes.Equal(before, after) {
		t.Fatal("merged segments write other memory contents")
	}
	if m > 10 {
		t.Fatalf("%d segments merged into %d", n, m)
	}
	t.Logf("%d segments merged into %d", n, m)
}

// Whatever the bytes, merging answers the input unchanged or segments
// writing the same memory contents; it never panics.
func FuzzMergeDataSegments(f *testing.F) {
	f.Add(dataSection(segment(64, []byte("world")), segment(8, []byte("hello"))))
	f.Add(dataSection(segment(0, []byte("abcd")), segment(2, []byte("XY"))))
	f.Add(dataSection(segment(1<<20, []byte("x")), segment(3, []byte("y")), segment(4, nil)))
	f.Fuzz(func(t *testing.T, p []byte) {
		out := mergeDataSegments(p)
		if bytes.Equal(out, p) {
			return
		}
		segs, err := parseDataSegments(p)
		if err != nil {
			t.Fatalf("rewrote a section that does not parse: %v", err)
		}
		for _, s := range segs {
			if int(s.offset)+len(s.init) > 64<<20 {
				return // too large to compare here
			}
		}
		before, _ := memoryImage(t, p)
		after, _ := memoryImage(t, out)
		if !bytes.Equal(before, after) {
			t.Fatal("merged segments write other memory contents")
		}
	})
}
