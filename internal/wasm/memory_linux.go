package wasm

import "golang.org/x/sys/unix"

// adviseHugePages asks for transparent huge pages on a linear memory's
// mapping (when THP is in "madvise" mode, as is common). A new Go guest
// touches megabytes at once (its data segments, then its heap); faulting
// them in 4 KiB at a time took 30-100 ms per instance in a virtual
// machine, 2 MiB at a time 1-6 ms, and the guest's memory accesses miss
// the TLB less. Errors are ignored: small pages still work.
func adviseHugePages(mem []byte) { _ = unix.Madvise(mem, unix.MADV_HUGEPAGE) }

// prefault faults mem's pages in (zeroed, writable) in one system call,
// or page by page where MADV_POPULATE_WRITE (Linux 5.14) is missing.
func prefault(mem []byte) {
	if len(mem) == 0 {
		return
	}
	if unix.Madvise(mem, unix.MADV_POPULATE_WRITE) == nil {
		return
	}
	touchPages(mem)
}
