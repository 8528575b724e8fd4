//go:build wasip1

package isotope

import "unsafe"

// reqBuf is the guest-owned request buffer handed out by isotope_alloc; it
// stays valid (and referenced, so the GC keeps it) until the next
// isotope_alloc. respBuf holds the last response until the next call.
var reqBuf, respBuf []byte

// maxKeptResponse is the largest response buffer kept for the next one.
const maxKeptResponse = 1 << 20

//go:wasmexport isotope_abi_version
func isotopeABIVersion() uint32 { return abiVersion }

//go:wasmexport isotope_alloc
func isotopeAlloc(size uint32) uint32 {
	if uint32(cap(reqBuf)) < size || reqBuf == nil {
		reqBuf = make([]byte, max(size, 1024))
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(reqBuf))))
}

//go:wasmexport isotope_handle
func isotopeHandle(ptr, size uint32) uint64 {
	var frame []byte
	if reqBuf != nil && ptr == uint32(uintptr(unsafe.Pointer(unsafe.SliceData(reqBuf)))) && size <= uint32(cap(reqBuf)) {
		frame = reqBuf[:size]
	}
	// The last response's buffer is reused (the host has copied it out):
	// no allocation for the response frame, unless it was a large one.
	dst := respBuf[:0]
	if cap(dst) > maxKeptResponse {
		dst = nil
	}
	respBuf = handleFrame(dst, frame)
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(respBuf))))
	return uint64(p)<<32 | uint64(len(respBuf))
}
