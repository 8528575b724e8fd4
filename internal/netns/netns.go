// Package netns gives a local program its own network, so that programs
// written for a pod — Fission's Go environment listening on :8888, its
// builder on :8001 — run unchanged in embedded mode, many side by side.
//
// The isotope binary re-executes itself as a small shim (the hidden
// subcommand `isotope netns-shim`) in a new network namespace, and in a
// new user namespace mapping the server's uid when the server is not
// root. The shim brings up the namespace's loopback, starts the program
// there, waits until the program accepts connections on 127.0.0.1:<port>
// and then creates a unix socket in the filesystem (which crosses network
// namespaces) that forwards every connection to that port. The server
// dials the socket. The shim is in the program's process group and both
// die with the server (parent-death signal), so the namespace, which
// lives only as long as a process in it, goes with them.
//
// A program in its own namespace has only loopback: it cannot reach the
// network. Programs that need to, and machines that allow neither user
// nor network namespaces, use the host network, where the program listens
// on the free port given in $PORT.
package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Mode is how an instance gets its network.
type Mode string

const (
	// Isolated runs the program in its own network namespace, listening
	// on a fixed port (the one Fission's images use).
	Isolated Mode = "isolated"
	// Host runs the program on the server's network, on the free
	// loopback port given in $PORT.
	Host Mode = "host"
	// Auto is Isolated where the kernel allows it, else Host.
	Auto Mode = "auto"
)

// Annotation on an Environment picks its mode (isolated or host) over
// the server's default.
const Annotation = "isotope.dev/network"

// ShimCommand is the isotope subcommand that runs the shim. It is not in
// the CLI's help: only the server starts it.
const ShimCommand = "netns-shim"

// UnavailableEnv, set to any value in the server's environment, makes the
// server behave as on a machine that allows neither user nor network
// namespaces (for tests of that path, and to try it).
const UnavailableEnv = "ISOTOPE_NETNS_UNAVAILABLE"

// ExitNotFound is the shim's exit status when the program does not exist
// (a shell's 127).
const ExitNotFound = 127

// ErrUnavailable is wrapped by every error that says the kernel refuses
// the namespaces.
var ErrUnavailable = errors.New("network namespaces are not available")

// ParseMode reads a mode as written by a user (flag or annotation).
func ParseMode(s string, allowAuto bool) (Mode, error) {
	switch m := Mode(strings.TrimSpace(s)); m {
	case Isolated, Host:
		return m, nil
	case Auto:
		if allowAuto {
			return m, nil
		}
	}
	if allowAuto {
		return "", fmt.Errorf("%q is not a network mode: use auto, isolated or host", s)
	}
	return "", fmt.Errorf("%q is not a network mode: use isolated or host", s)
}

// Policy decides the mode of each environment's instances and starts
// shims. The zero value runs everything on the host network. It is safe
// for concurrent use.
type Policy struct {
	// Default is the mode of environments without the annotation: Auto,
	// Isolated or Host ("" means Host).
	Default Mode
	// Exe is the isotope binary that runs the shim (default: this
	// process's executable).
	Exe string

	once     sync.Once
	userns   bool  // the shim needs a user namespace too (not root)
	availErr error // why namespaces cannot be made, once probed
}

// Available reports, probing once, whether this machine lets the server
// make network namespaces; the error names what is missing.
func (p *Policy) Available() error {
	p.once.Do(func() { p.userns, p.availErr = probe(p.exe()) })
	return p.availErr
}

func (p *Policy) exe() string {
	if p.Exe != "" {
		return p.Exe
	}
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}

// Resolve returns the mode for an object with these annotations. An
// environment that asks for Isolated on a machine that cannot give it is
// an error naming the annotation or flag and what the kernel refused.
func (p *Policy) Resolve(what string, annotations map[string]string) (Mode, error) {
	if p == nil {
		return Host, nil
	}
	mode, source := p.Default, "the server's --instance-network"
	if mode == "" {
		mode = Host
	}
	if v, ok := annotations[Annotation]; ok {
		m, err := ParseMode(v, false)
		if err != nil {
			return "", fmt.Errorf("%s: annotation %s: %v", what, Annotation, err)
		}
		mode, source = m, "annotation "+Annotation+"="+v
	}
	switch mode {
	case Host:
		return Host, nil
	case Auto:
		if p.Available() != nil {
			return Host, nil
		}
		return Isolated, nil
	}
	if err := p.Available(); err != nil {
		return "", fmt.Errorf("%s needs its own network namespace (%s), but %w; "+
			"use the host network instead (annotation %s=host, or isotope server --instance-network host) with a program that listens on $PORT",
			what, source, err, Annotation)
	}
	return Isolated, nil
}

// Program is what a shim runs.
type Program struct {
	Argv []string
	Env  []string // the program's whole environment
	Dir  string   // its working directory
	// Port is where the program listens inside its namespace.
	Port int
	// Socket is the path of the unix socket the shim creates once the
	// program accepts connections on 127.0.0.1:Port.
	Socket string
}

// Socket returns the path of the socket, beside dir, that forwards to an
// instance whose files are in dir.
func SocketFor(dir string) string { return filepath.Clean(dir) + ".sock" }

// Dial connects to a shim's socket. Paths longer than a sockaddr_un can
// hold are reached through their directory.
func Dial(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	if len(socket) < 100 {
		return d.DialContext(ctx, "unix", socket)
	}
	return dialLong(ctx, socket)
}
