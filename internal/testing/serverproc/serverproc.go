// Package serverproc starts the isotope binary's `server` as a child
// process and learns its API and router addresses from its log: what
// the end-to-end tests and the benchmarks that drive the real binary
// share.
package serverproc

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

// addrLine matches the "isotope server started" log line.
var addrLine = regexp.MustCompile(`api=(http://\S+) router=(http://\S+)`)

// Process is a started server.
type Process struct {
	Cmd         *exec.Cmd
	API, Router string        // http://host:port
	Exited      chan struct{} // closed once the process has exited
}

// Start runs `bin args...` with env (nil: this process's) in a process
// group of its own, its stdout and stderr going to log (which must take
// concurrent writes), and waits up to timeout for the line that names
// its addresses. If the server exits first, or the time runs out (the
// group is then killed), the error says which; the log says why.
func Start(bin string, args, env []string, log io.Writer, timeout time.Duration) (*Process, error) {
	p := &Process{Cmd: exec.Command(bin, args...), Exited: make(chan struct{})}
	p.Cmd.Env = env
	pr, pw := io.Pipe()
	p.Cmd.Stderr = io.MultiWriter(log, pw)
	p.Cmd.Stdout = log
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.Cmd.Wait()
		pw.Close()
		close(p.Exited)
	}()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- [2]string{m[1], m[2]}:
				default:
				}
			}
		}
	}()
	select {
	case a := <-found:
		p.API, p.Router = a[0], a[1]
		return p, nil
	case <-p.Exited:
		return nil, fmt.Errorf("%s server exited before listening", bin)
	case <-time.After(timeout):
		syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.Exited
		return nil, fmt.Errorf("%s server did not report its addresses within %v", bin, timeout)
	}
}
