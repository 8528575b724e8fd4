//go:build unix && !linux

package procrt

import "syscall"

// sysProcAttr puts the program in its own process group so Close can
// stop its children too.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
