package isotope

import (
	"encoding/binary"
	"errors"
	"net/http"
	"slices"
)

// abiVersion is the version of the reactor ABI framing this SDK speaks.
const abiVersion = 1

var errTruncated = errors.New("truncated frame")

type reader struct {
	b   []byte
	err error
}

func (r *reader) u32() uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errTruncated
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.u32()
	if r.err != nil || uint64(len(r.b)) < uint64(n) {
		r.err = errTruncated
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

// sreader reads u32s and strings from a string already checked by a
// reader: strings are substrings, never copies.
type sreader struct{ s string }

func (r *sreader) u32() uint32 {
	v := uint32(r.s[0]) | uint32(r.s[1])<<8 | uint32(r.s[2])<<16 | uint32(r.s[3])<<24
	r.s = r.s[4:]
	return v
}

func (r *sreader) str() string {
	n := r.u32()
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// encodeResponse frames a response: u32 version, u32 status, u32 n +
// n×(str name, str value), bytes body (docs/reactor-abi.md).
func encodeResponse(dst []byte, status int, h http.Header, body []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, abiVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(status))
	var small [8]string
	keys := small[:0]
	n := 0
	for k, vs := range h {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	for _, k := range keys {
		for _, v := range h[k] {
			dst = appendStr(dst, k)
			dst = appendStr(dst, v)
		}
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}
