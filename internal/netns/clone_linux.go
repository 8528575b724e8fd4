package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// sysProcAttr puts the shim in a new network namespace (and a new user
// namespace mapping the server's uid and gid when userns), in its own
// process group, killed when the server dies.
func sysProcAttr(userns bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Cloneflags: syscall.CLONE_NEWNET,
	}
	if userns {
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
		a.GidMappingsEnableSetgroups = false
		// The shim keeps its uid (so the program's files are the
		// user's) and, to bring up loopback, CAP_NET_ADMIN, which an
		// exec as a non-root uid would otherwise drop. It is a
		// capability over the new namespaces only.
		a.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN}
	}
	return a
}

// probe starts `isotope netns-shim --probe` as a real instance would be
// started: root needs only a network namespace, anyone else a user
// namespace too (root in a container without CAP_SYS_ADMIN falls back to
// one as well). It returns whether the user namespace is needed.
// probeEnv marks the probe's process, so a program that does not act as
// the shim cannot probe (and so start itself) again.
const probeEnv = "ISOTOPE_NETNS_PROBE"

// probeTimeout bounds one probe run.
const probeTimeout = 10 * time.Second

func probe(exe string) (userns bool, err error) {
	if os.Getenv(UnavailableEnv) != "" {
		return false, fmt.Errorf("%w: this machine allows neither user nor network namespaces (simulated: %s is set)", ErrUnavailable, UnavailableEnv)
	}
	if os.Getenv(probeEnv) != "" {
		// This process was started as a probe's shim but did not act as
		// one (a program without ShimMain, such as a test binary whose
		// TestMain lacks it): probing again would start itself again.
		return false, fmt.Errorf("%w: %s was run as the network shim's probe (%s is set) but did not act as the shim; it must call netns.ShimMain for %q", ErrUnavailable, exe, probeEnv, ShimCommand)
	}
	try := func(userns bool) error {
		// A real probe takes milliseconds; the bound keeps a program
		// that is not the shim from holding the server's start.
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, exe, ShimCommand, "--probe")
		cmd.Env = append(os.Environ(), probeEnv+"=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = sysProcAttr(userns)
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			if s := strings.TrimSpace(out.String()); s != "" {
				return fmt.Errorf("%v: %s", err, s)
			}
			return err
		}
		return nil
	}
	if os.Geteuid() == 0 {
		errNet := try(false)
		if errNet == nil {
			return false, nil
		}
		if errUser := try(true); errUser == nil {
			return true, nil
		}
		return false, fmt.Errorf("%w: the kernel refused a new network namespace to root (%v): the server lacks CAP_SYS_ADMIN, as in a container without it", ErrUnavailable, errNet)
	}
	if err := try(true); err != nil {
		return false, fmt.Errorf("%w: the kernel refused a user namespace to uid %d (%v): unprivileged user namespaces are off "+
			"(sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces>0 turn them on; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0), "+
			"and network namespaces without one need root", ErrUnavailable, os.Geteuid(), err)
	}
	return true, nil
}

// Command returns the shim command that runs prog in its own network,
// in its own process group, killed (with prog) when the server dies.
// The caller sets Stdout and Stderr (the program writes to them) and
// starts it. Available must have succeeded.
func (p *Policy) Command(prog Program) (*exec.Cmd, error) {
	if err := p.Available(); err != nil {
		return nil, err
	}
	if len(prog.Argv) == 0 {
		return nil, errors.New("netns: no program")
	}
	args := []string{ShimCommand,
		"--socket", filepath.Base(prog.Socket),
		"--port", strconv.Itoa(prog.Port),
		"--dir", prog.Dir,
		"--"}
	cmd := exec.Command(p.exe(), append(args, prog.Argv...)...)
	// The shim binds the socket by its base name in its working
	// directory: a full path may be too long for a sockaddr_un.
	cmd.Dir = filepath.Dir(prog.Socket)
	cmd.Env = prog.Env
	cmd.SysProcAttr = sysProcAttr(p.userns)
	return cmd, nil
}

// dialLong reaches a socket whose path does not fit a sockaddr_un
// through /proc/self/fd of its directory.
func dialLong(ctx context.Context, socket string) (net.Conn, error) {
	fd, err := unix.Open(filepath.Dir(socket), unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("open", err)}
	}
	defer unix.Close(fd)
	var d net.Dialer
	return d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd)+"/"+filepath.Base(socket))
}
