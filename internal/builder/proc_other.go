//go:build !unix

package builder

import "os/exec"

// KillGroupOnCancel: without process groups only the command itself is
// killed (exec.CommandContext's default).
func KillGroupOnCancel(cmd *exec.Cmd) {}
