// Package procrt runs functions in local processes that speak Fission's
// environment protocol (reference: Fission's environments, server.go /
// server.js / server.py). It is the embedded mode's runtime for every
// environment that is not WebAssembly: the Environment's
// spec.runtime.container.command (and args) names the program, which
// plays the part of the runtime container of a Fission pod.
//
// # What the program receives
//
// The program is started with the container's command and args, its
// working directory (container.workingDir, else the instance directory)
// and this environment, on top of a few variables of the server's own
// that programs need to run (PATH, HOME, USER, LOGNAME, LANG, LC_*, TZ,
// TMPDIR, SSL_CERT_FILE, SSL_CERT_DIR) — never the rest, which may hold
// the server's secrets (ISOTOPE_TOKEN, internal-auth keys):
//
//   - PORT and RUNTIME_PORT: the port it must listen on, on 127.0.0.1.
//     In an isolated network (package netns: the default where the
//     kernel allows it) that is 8888, the port Fission's images use, in
//     the instance's own network namespace, so a program with the port
//     compiled in works; on the host network it is a free port, and the
//     program must honour $PORT.
//   - USERFUNC_DIR: the directory that stands for Fission's /userfunc.
//     The deploy archive is fetched into USERFUNC_DIR/deployarchive for
//     version 2 and 3 environments (a directory when the archive is a zip,
//     unless keeparchive), USERFUNC_DIR/user for version 1.
//   - SECRETS_DIR and CONFIGS_DIR: the directories that stand for
//     Fission's /secrets and /configs. Before specialization the
//     function's secrets and config maps are written there, one file per
//     key: $SECRETS_DIR/<namespace>/<name>/<key> (read-only).
//   - every container.env entry with a literal value.
//
// "$(VAR)" in the command and args is replaced by the value of VAR among
// those variables, as Kubernetes does ("$$" is a literal "$").
//
// Once it accepts connections the instance is specialized as a Fission
// fetcher does: version 1 gets POST /specialize with an empty text/plain
// body, versions 2 and 3 get POST /v2/specialize with a JSON
// FunctionLoadRequest whose filepath is the absolute path of the fetched
// archive. Any status below 300 is success. Requests are then proxied to
// the program unchanged (path already rewritten by the router).
//
// Its stdout and stderr go to the function's log (lines printed before
// specialization included). The program runs in its own process group,
// is sent SIGTERM on Close and SIGKILL after a grace period, and (on
// Linux) is killed if the server dies.
package procrt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/executor/fnconfig"
	"isotope.dev/isotope/internal/executor/instance"
	"isotope.dev/isotope/internal/fnlog"
	"isotope.dev/isotope/internal/netns"
)

// Config configures the process runtime.
type Config struct {
	// WorkDir holds one directory per instance (removed on Close).
	WorkDir string
	// Fetcher brings deploy archives into instance directories.
	Fetcher instance.Fetcher
	// Logs receives each instance's output once it is specialized; nil
	// discards it.
	Logs *fnlog.Store
	// Logger gets one line per instance start, stop and failure.
	Logger *slog.Logger
	// StartTimeout bounds the wait for a new process to accept
	// connections (default 30s; ctx may end it sooner).
	StartTimeout time.Duration
	// Network picks each environment's network (package netns); nil
	// runs every program on the host network.
	Network *netns.Policy
	// StopGrace is how long Close waits after SIGTERM before SIGKILL
	// (default 2s). An environment's terminationGracePeriod, when set and
	// shorter, wins.
	StopGrace time.Duration
}

// RuntimePort is where a program in its own network listens: Fission's
// environment port.
const RuntimePort = 8888

// Runtime starts local processes. It is safe for concurrent use.
type Runtime struct {
	cfg Config
	log *slog.Logger
}

var _ instance.Runtime = (*Runtime)(nil)

// New returns a process runtime.
func New(cfg Config) *Runtime {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 2 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runtime{cfg: cfg, log: log}
}

// Name implements instance.Runtime.
func (r *Runtime) Name() string { return "process" }

// Pooled implements instance.Runtime: a process takes real time to start.
func (r *Runtime) Pooled() bool { return true }

// ErrNoCommand is returned (wrapped) for an environment without a local
// command.
var ErrNoCommand = errors.New("no local runtime command")

// CheckEnv reports whether env can run as a local process: it needs
// spec.runtime.container.command.
func CheckEnv(env *v1.Environment) error {
	c := env.Spec.Runtime.Container
	if c == nil || len(c.Command) == 0 || c.Command[0] == "" {
		return fmt.Errorf("environment %s/%s: runtime image %q is not built in, so in embedded mode it needs a local command: "+
			"create the environment with --runtime-command (spec.runtime.container.command): %w",
			env.Namespace, env.Name, env.Spec.Runtime.Image, ErrNoCommand)
	}
	return nil
}

// Start implements instance.Runtime: it starts env's program on a free
// loopback port and returns once the program accepts connections.
func (r *Runtime) Start(ctx context.Context, env *v1.Environment) (instance.Instance, error) {
	if err := CheckEnv(env); err != nil {
		return nil, err
	}
	if r.cfg.WorkDir == "" {
		return nil, errors.New("procrt: Config.WorkDir is empty")
	}
	id := randomID()
	dir := filepath.Join(r.cfg.WorkDir, fmt.Sprintf("%s_%s_%s", env.Namespace, env.Name, id))
	userfunc := filepath.Join(dir, "userfunc")
	if err := os.MkdirAll(userfunc, 0o755); err != nil {
		return nil, fmt.Errorf("instance directory: %w", err)
	}
	mode, err := r.cfg.Network.Resolve(fmt.Sprintf("environment %s/%s", env.Namespace, env.Name), env.Annotations)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := RuntimePort
	if mode == netns.Host {
		if port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("find a free port: %w", err)
		}
	}
	p := &proc{
		rt:       r,
		id:       id,
		env:      env,
		dir:      dir,
		userfunc: userfunc,
		addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		exited:   make(chan struct{}),
	}
	if mode == netns.Isolated {
		p.sock = netns.SocketFor(dir)
	}
	p.out = newOutput()
	if err := p.start(port); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	if err := p.waitAccepting(startCtx, r.cfg.StartTimeout); err != nil {
		p.Close()
		return nil, err
	}
	r.log.Debug("instance started", "env", env.Namespace+"/"+env.Name, "instance", id, "pid", p.cmd.Process.Pid, "addr", p.addr)
	return p, nil
}

func (p *proc) start(port int) error {
	c := p.env.Spec.Runtime.Container
	vars := map[string]string{}
	var environ []string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			p.rt.log.Warn("environment variable with valueFrom is not supported for local processes; skipped",
				"env", p.env.Namespace+"/"+p.env.Name, "variable", e.Name)
			continue
		}
		vars[e.Name] = expand(e.Value, vars)
	}
	vars["PORT"] = strconv.Itoa(port)
	vars["RUNTIME_PORT"] = vars["PORT"]
	vars["USERFUNC_DIR"] = p.userfunc
	vars["SECRETS_DIR"] = filepath.Join(p.configDir(), fnconfig.SecretsDir)
	vars["CONFIGS_DIR"] = filepath.Join(p.configDir(), fnconfig.ConfigsDir)
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	argv := make([]string, 0, len(c.Command)+len(c.Args))
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		argv = append(argv, expand(a, vars))
	}
	workDir := p.dir
	if c.WorkingDir != "" {
		workDir = c.WorkingDir
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Env = append(hostEnv(), environ...)
	cmd.Dir = workDir
	if p.sock != "" {
		// The shim starts the program in its own network namespace.
		var err error
		cmd, err = p.rt.cfg.Network.Command(netns.Program{
			Argv: argv, Env: append(hostEnv(), environ...), Dir: workDir, Port: port, Socket: p.sock,
		})
		if err != nil {
			return fmt.Errorf("environment %s/%s: %w", p.env.Namespace, p.env.Name, err)
		}
	}
	cmd.Stdout = p.out.stream("stdout")
	cmd.Stderr = p.out.stream("stderr")
	// Bound Wait if a grandchild escaped the process group with our pipes.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("environment %s/%s: start runtime command %q: %w", p.env.Namespace, p.env.Name, argv[0], err)
	}
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// waitAccepting polls the port (or, in an isolated network, the shim's
// socket, which appears once the program listens) until the program
// accepts, it exits, or ctx ends; timeout is the start timeout, for the
// message.
func (p *proc) waitAccepting(ctx context.Context, timeout time.Duration) error {
	delay := 2 * time.Millisecond
	started := time.Now()
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := p.dial(dctx)
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("environment %s/%s: runtime command exited before listening on %s (%v)%s; its last output: %s",
				p.env.Namespace, p.env.Name, p.where(), p.waitErr, p.hint(), p.out.tailString())
		case <-ctx.Done():
			waited := time.Since(started).Round(time.Millisecond)
			why := ctx.Err().Error()
			if waited >= timeout-time.Millisecond {
				why = fmt.Sprintf("the start timeout is %s (isotope server --instance-start-timeout)", timeout)
			}
			return fmt.Errorf("environment %s/%s: runtime command did not listen on %s: waited %s (%s)%s; its last output: %s",
				p.env.Namespace, p.env.Name, p.where(), waited, why, p.hint(), p.out.tailString())
		case <-time.After(delay):
		}
		delay = min(delay*2, 20*time.Millisecond)
	}
}

// where says where the program was to listen.
func (p *proc) where() string {
	if p.sock != "" {
		return p.addr + " in its own network namespace"
	}
	return p.addr + " (the port in $PORT)"
}

// hint says what to try when a program never listened.
func (p *proc) hint() string {
	if p.sock != "" {
		return fmt.Sprintf(": a program in its own network must listen on 127.0.0.1:%d or 0.0.0.0:%d ($PORT)", RuntimePort, RuntimePort)
	}
	return fmt.Sprintf(": on the host network the program must listen on $PORT; a program with a fixed port (Fission's images: 8888) needs its own network (annotation %s=isolated)", netns.Annotation)
}

// dial connects to the program: through the shim's socket in an
// isolated network, else to its loopback port.
func (p *proc) dial(ctx context.Context) (net.Conn, error) {
	if p.sock != "" {
		return netns.Dial(ctx, p.sock)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.addr)
}

// Alive implements instance.Instance.
func (p *proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
	}
	return !p.broken.Load() && !p.closed.Load()
}

// PID returns the process id of the instance's program.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// Addr returns the loopback host:port the program listens on.
func (p *proc) Addr() string { return p.addr }

// Close implements instance.Instance: SIGTERM to the process group,
// SIGKILL after the grace period, then the directory is removed.
func (p *proc) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		grace := p.rt.cfg.StopGrace
		if g := time.Duration(p.env.Spec.TerminationGracePeriod) * time.Second; g > 0 && g < grace {
			grace = g
		}
		signalGroup(p.cmd.Process, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			signalGroup(p.cmd.Process, syscall.SIGKILL)
			<-p.exited
		}
		// Kill whatever of the group outlived its leader.
		signalGroup(p.cmd.Process, syscall.SIGKILL)
		if p.transport != nil {
			p.transport.CloseIdleConnections()
		}
		p.out.close()
		if p.sock != "" {
			os.Remove(p.sock)
		}
		if err := fnconfig.Remove(p.dir); err != nil {
			p.rt.log.Warn("remove instance directory", "dir", p.dir, "err", err)
		}
		p.rt.log.Debug("instance stopped", "env", p.env.Namespace+"/"+p.env.Name, "instance", p.id)
	})
	return nil
}

// expand replaces $(NAME) by vars[NAME] as Kubernetes does for container
// command, args and env; unknown references and "$$" stay literal / "$".
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte(s[i])
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// hostEnv is the part of the server's environment a runtime program
// inherits: what it needs to find its interpreter and format text, and
// nothing that could carry the server's credentials.
func hostEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH", name == "HOME", name == "USER", name == "LOGNAME", name == "LANG",
			name == "TZ", name == "TMPDIR", name == "SSL_CERT_FILE", name == "SSL_CERT_DIR",
			strings.HasPrefix(name, "LC_"):
			out = append(out, kv)
		}
	}
	return out
}
