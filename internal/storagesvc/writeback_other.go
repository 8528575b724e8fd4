//go:build !linux

package storagesvc

// startWriteback is a no-op where sync_file_range does not exist; the
// fsync at the end of an upload does all the work.
func startWriteback(f any, off, n int64) {}
