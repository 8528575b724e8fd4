//go:build unix

package procrt

import (
	"os"
	"syscall"
)

// signalGroup signals the process group led by p (the program and
// whatever it started).
func signalGroup(p *os.Process, sig syscall.Signal) {
	if err := syscall.Kill(-p.Pid, sig); err != nil {
		_ = p.Signal(sig)
	}
}
