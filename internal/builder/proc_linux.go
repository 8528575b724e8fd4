package builder

import "syscall"

// groupAttr puts a build command in its own process group and has the
// kernel kill it when the builder dies: a builder killed with its server
// (kill -9, Pdeathsig) must not leave its build running as an orphan.
// The command's own children are not covered: they end on their own.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
