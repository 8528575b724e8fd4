//go:build linux

package procrt

import "syscall"

// sysProcAttr puts the program in its own process group (so Close can
// stop its children too) and asks the kernel to kill it if the thread
// that started it — in practice the server — dies, so a kill -9 of the
// server leaves no orphan.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
