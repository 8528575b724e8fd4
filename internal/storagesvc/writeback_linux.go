package storagesvc

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk now, without waiting. Called as an upload streams in, it overlaps
// the disk writes with the network transfer, so the final fsync only
// waits for the tail, and it keeps an upload from piling up dirty page
// cache. A failure is ignored: the fsync at the end is what counts.
func startWriteback(f any, off, n int64) {
	sc, ok := f.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
