//go:build !unix

package builder

import "os/exec"

// killGroupOnCancel: without process groups only the command itself is
// killed (exec.CommandContext's default).
func killGroupOnCancel(cmd *exec.Cmd) {}
