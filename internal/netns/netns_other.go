//go:build !linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
)

var errNotLinux = fmt.Errorf("%w: they exist only on Linux, not on %s", ErrUnavailable, runtime.GOOS)

func probe(string) (bool, error) { return false, errNotLinux }

// Command implements Policy.Command where there are no namespaces.
func (p *Policy) Command(Program) (*exec.Cmd, error) { return nil, errNotLinux }

func dialLong(ctx context.Context, socket string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", socket)
}

// ShimMain fails where there are no namespaces.
func ShimMain([]string) int {
	fmt.Fprintln(os.Stderr, "isotope netns-shim:", errNotLinux)
	return 125
}
