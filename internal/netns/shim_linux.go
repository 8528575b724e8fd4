package netns

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ShimMain is `isotope netns-shim`: it runs inside the new namespaces,
// brings up loopback, runs the program after "--" and forwards its
// socket; it returns the program's exit code. With --probe it only
// brings up loopback (the server's check that namespaces work).
func ShimMain(args []string) int {
	fs := flag.NewFlagSet(ShimCommand, flag.ContinueOnError)
	socket := fs.String("socket", "", "socket to create, relative to the working directory")
	port := fs.Int("port", 0, "port the program listens on inside")
	dir := fs.String("dir", "", "the program's working directory")
	probeOnly := fs.Bool("probe", false, "only check that loopback comes up")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "isotope netns-shim: "+format+"\n", a...)
		return 125
	}
	if err := loopbackUp(); err != nil {
		return fail("bring up loopback: %v", err)
	}
	if *probeOnly {
		return 0
	}
	argv := fs.Args()
	if len(argv) == 0 || *socket == "" || *port <= 0 {
		return fail("usage: netns-shim --socket NAME --port N [--dir DIR] -- PROGRAM [ARGS…]")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = *dir
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Same process group as the shim (the server signals the group);
	// killed if the shim dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		fail("start %q: %v", argv[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return ExitNotFound
		}
		return 125
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	exited := make(chan struct{})
	go func() {
		if err := forward(*socket, net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)), exited); err != nil {
			fmt.Fprintf(os.Stderr, "isotope netns-shim: %v\n", err)
			cmd.Process.Kill()
		}
	}()
	err := cmd.Wait()
	close(exited)
	os.Remove(*socket)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		return fail("%v", err)
	}
}

// loopbackUp sets IFF_UP on lo, as `ip link set lo up` does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// forward waits until addr accepts connections, then serves socket:
// every connection to it is joined to a new connection to addr. The
// socket appears (renamed into place) only once addr accepts, so a
// server that can connect to it knows the program is listening.
func forward(socket, addr string, exited <-chan struct{}) error {
	delay := time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Millisecond)
	}
	tmp := socket + ".tmp"
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Rename(tmp, socket); err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go join(c, addr)
	}
}

// join copies both ways between c and a new connection to addr, passing
// each side's end of stream on as a half close.
func join(c net.Conn, addr string) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.(*net.UnixConn).CloseWrite()
	<-done
}
