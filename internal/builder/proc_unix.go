//go:build unix

package builder

import (
	"os/exec"
	"syscall"
)

// KillGroupOnCancel runs the command in its own process group and kills
// the whole group when the build is canceled or times out, so a build
// script's children (go build, compilers) die with it. On Linux the
// command is also killed when the builder dies (see groupAttr). Built-in
// builds that run toolchains in-process (package wasmbuild) use it too.
func KillGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = groupAttr()
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
