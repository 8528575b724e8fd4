package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// containerRun is one container of a pod: its resolved command line and
// what its supervisor last saw. Fields after spec are guarded by the
// pod's mutex.
type containerRun struct {
	spec    corev1.Container
	cmd     *commandLine // nil: the container cannot run (waiting says why)
	env     []string
	logPath string
	imageID string // the image the container runs, for its status

	waitingReason, waitingMessage string
	running                       bool
	startedAt                     time.Time
	ready                         bool
	restartCount                  int32
	terminated                    *corev1.ContainerStateTerminated // current state, when not running
	lastTerminated                *corev1.ContainerStateTerminated
	pid                           int
}

// supervise runs the container until ctx ends or the restart policy says
// it is done, restarting with a capped backoff like the kubelet's.
func (p *podRun) supervise(ctx context.Context, c *containerRun) {
	defer p.wg.Done()
	backoff := time.Second
	for {
		exit, err := p.runOnce(ctx, c)
		if ctx.Err() != nil {
			return
		}
		policy := p.policy
		restart := policy == "" || policy == corev1.RestartPolicyAlways ||
			(policy == corev1.RestartPolicyOnFailure && (err != nil || exit != 0))
		if !restart {
			p.changed()
			return
		}
		p.mu.Lock()
		c.waitingReason, c.waitingMessage = "CrashLoopBackOff", fmt.Sprintf("back-off %v restarting failed container %s", backoff, c.spec.Name)
		c.lastTerminated, c.terminated = c.terminated, nil
		p.mu.Unlock()
		p.changed()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
		p.mu.Lock()
		c.restartCount++
		p.mu.Unlock()
	}
}

// runOnce starts the process, probes its readiness while it runs and
// waits for it to exit or for ctx to end (then stops it: SIGTERM to its
// process group, SIGKILL after the pod's grace period).
func (p *podRun) runOnce(ctx context.Context, c *containerRun) (int, error) {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.terminate(c, 128, "StartError", err.Error())
		return 128, err
	}
	defer logf.Close()
	cmd := exec.Command(c.cmd.path, c.cmd.args...)
	cmd.Env = c.env
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so stopping the container stops what it
	// started; killed by the kernel if the agent's process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.terminate(c, 128, "StartError", err.Error())
		return 128, err
	}
	p.mu.Lock()
	c.running, c.startedAt, c.pid = true, time.Now(), cmd.Process.Pid
	c.waitingReason, c.waitingMessage, c.terminated = "", "", nil
	c.ready = c.spec.ReadinessProbe == nil
	p.mu.Unlock()
	p.changed()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	if c.spec.ReadinessProbe != nil {
		go p.probeReadiness(probeCtx, c)
	}

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case waitErr = <-done:
		case <-time.After(p.grace()):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			waitErr = <-done
		}
		// Whatever the container started in its group goes with it.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	stopProbe()
	code, reason := exitCode(waitErr)
	p.terminate(c, code, reason, "")
	return code, waitErr
}

// exitCode maps a Wait error to an exit code and a reason, signals as
// 128+n as a container runtime reports them.
func exitCode(err error) (int, string) {
	if err == nil {
		return 0, "Completed"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), "Error"
		}
		return ee.ExitCode(), "Error"
	}
	return 128, "Error"
}

func (p *podRun) terminate(c *containerRun, code int, reason, msg string) {
	p.mu.Lock()
	started := metav1.NewTime(c.startedAt)
	c.running, c.ready, c.pid = false, false, 0
	c.terminated = &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: reason, Message: msg,
		StartedAt: started, FinishedAt: metav1.Now(),
	}
	p.mu.Unlock()
	p.changed()
}

// Probes run more often than periodSeconds (which is in whole seconds
// and would slow every test); thresholds are honoured.
const probeInterval = 200 * time.Millisecond

// probeReadiness runs c's readiness probe against the pod's address
// until ctx ends, updating c.ready.
func (p *podRun) probeReadiness(ctx context.Context, c *containerRun) {
	pr := c.spec.ReadinessProbe
	success, failure := max(pr.SuccessThreshold, 1), max(pr.FailureThreshold, 1)
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	var ok, bad int32
	delay := time.Duration(pr.InitialDelaySeconds) * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = probeInterval
		err := p.probe(ctx, c, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			ok, bad = ok+1, 0
		} else {
			ok, bad = 0, bad+1
		}
		p.mu.Lock()
		was := c.ready
		if ok >= success {
			c.ready = true
		} else if bad >= failure {
			c.ready = false
		}
		now := c.ready
		p.mu.Unlock()
		if was != now {
			p.changed()
		}
	}
}

func (p *podRun) probe(ctx context.Context, c *containerRun, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := resolvePort(g.Port, &c.spec)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = p.ip
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP probe: %s", resp.Status)
		}
		return nil
	case pr.TCPSocket != nil:
		port, err := resolvePort(pr.TCPSocket.Port, &c.spec)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.ip, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	default:
		return errors.New("only httpGet and tcpSocket readiness probes are supported by the node agent")
	}
}

// resolvePort resolves a probe's port: a number, or a container port's name.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, port.StrVal)
}
