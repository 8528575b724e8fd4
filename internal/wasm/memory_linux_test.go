package wasm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts mem's pages that are in memory (mincore(2)).
func residentPages(mem []byte) (int, error) {
	vec := make([]byte, (len(mem)+unix.Getpagesize()-1)/unix.Getpagesize())
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, errno
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n, nil
}
