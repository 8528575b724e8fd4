//go:build unix && !linux

package builder

import "syscall"

// groupAttr puts a build command in its own process group.
func groupAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
