package buildermgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "isotope.dev/isotope/api/v1"
	"isotope.dev/isotope/internal/netns"
	"isotope.dev/isotope/internal/tracing"
)

// Fetcher moves archives between the storage service and a builder's
// shared directory: in embedded mode the fetcher library runs in-process.
type Fetcher interface {
	// FetchSource writes pkg's source archive, unpacked, to
	// sharedDir/filename.
	FetchSource(ctx context.Context, sharedDir string, pkg *v1.Package, filename string) error
	// Upload stores sharedDir/filename (zipped when zip is set) and
	// returns its download URL and checksum.
	Upload(ctx context.Context, sharedDir, filename string, zip bool) (string, v1.Checksum, error)
}

// LocalConfig configures LocalBuilders.
type LocalConfig struct {
	// WorkDir holds one shared directory per builder.
	WorkDir string
	// Executable is the isotope binary that runs built-in builders
	// (default: this process's executable).
	Executable string
	// Env is added to every builder's environment (e.g. ISOTOPE_GO_CACHE).
	Env     []string
	Fetcher Fetcher
	// Output receives builder processes' stdout and stderr (default discard).
	Output io.Writer
	Logger *slog.Logger
	// Network picks the network of builder programs given as a local
	// command (package netns); nil puts them on the host network. The
	// built-in builders always use the host network: their builds may
	// download modules.
	Network *netns.Policy
}

// LocalBuilders runs each environment's builder as a supervised local
// process: the built-in builders (go-wasm, c-wasm, rust-wasm) are
// `isotope builder`; any other builder image needs a local command
// (builder.container.command/args).
// A builder that exits is restarted with back-off; an environment update
// replaces it; Close stops them all (process groups, so no orphans).
type LocalBuilders struct {
	cfg    LocalConfig
	log    *slog.Logger
	mu     sync.Mutex
	byEnv  map[string]*localBuilder // namespace/name → builder of the current version
	closed bool
}

// NewLocalBuilders returns the embedded Builders.
func NewLocalBuilders(cfg LocalConfig) (*LocalBuilders, error) {
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("buildermgr: find the isotope executable: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("buildermgr: %w", err)
	}
	return &LocalBuilders{cfg: cfg, log: cfg.Logger.With("role", "builders"), byEnv: map[string]*localBuilder{}}, nil
}

// Ensure implements Builders.
func (l *LocalBuilders) Ensure(ctx context.Context, env *v1.Environment) error {
	key := env.Namespace + "/" + env.Name
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("builders are shut down")
	}
	if b := l.byEnv[key]; b != nil {
		if b.version == env.ResourceVersion {
			return nil
		}
		b.stop()
		delete(l.byEnv, key)
	}
	b, err := l.newBuilder(env)
	if err != nil {
		return err
	}
	l.byEnv[key] = b
	go b.supervise()
	return nil
}

// Remove implements Builders.
func (l *LocalBuilders) Remove(_ context.Context, namespace, name string) error {
	l.mu.Lock()
	b := l.byEnv[namespace+"/"+name]
	delete(l.byEnv, namespace+"/"+name)
	l.mu.Unlock()
	if b != nil {
		b.stop()
	}
	return nil
}

// Pod implements Builders.
func (l *LocalBuilders) Pod(ctx context.Context, env *v1.Environment) (BuildPod, error) {
	key := env.Namespace + "/" + env.Name
	l.mu.Lock()
	b := l.byEnv[key]
	l.mu.Unlock()
	if b == nil || b.version != env.ResourceVersion {
		return nil, fmt.Errorf("no builder for environment %s at version %s", key, env.ResourceVersion)
	}
	if err := b.waitReady(ctx); err != nil {
		return nil, err
	}
	return &localPod{b: b, fetcher: l.cfg.Fetcher}, nil
}

// Close implements Builders.
func (l *LocalBuilders) Close() error {
	l.mu.Lock()
	l.closed = true
	all := l.byEnv
	l.byEnv = map[string]*localBuilder{}
	l.mu.Unlock()
	for _, b := range all {
		b.stop()
	}
	return nil
}

// Running lists the PIDs of builder processes alive now (for tests and
// debugging).
func (l *LocalBuilders) Running() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, b := range l.byEnv {
		if pid := b.pid(); pid > 0 {
			out[k] = pid
		}
	}
	return out
}

func (l *LocalBuilders) newBuilder(env *v1.Environment) (*localBuilder, error) {
	dir := filepath.Join(l.cfg.WorkDir, fmt.Sprintf("%s-%s-%s", env.Namespace, env.Name, env.ResourceVersion))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b := &localBuilder{
		key:     env.Namespace + "/" + env.Name,
		version: env.ResourceVersion,
		dir:     dir,
		log:     l.log.With("environment", env.Namespace+"/"+env.Name, "version", env.ResourceVersion),
		output:  l.cfg.Output,
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		readyCh: make(chan struct{}),
	}
	// The builder container's env (CLI --builder-env) is the builder's,
	// whether it runs a program of the user's or a built-in builder.
	var ctrEnv []string
	var c *v1ContainerCmd
	if ctr := env.Spec.Builder.Container; ctr != nil {
		for _, e := range ctr.Env {
			ctrEnv = append(ctrEnv, e.Name+"="+e.Value)
		}
		if len(ctr.Command) > 0 {
			c = &v1ContainerCmd{argv: append(append([]string{}, ctr.Command...), ctr.Args...), env: ctrEnv}
		}
	}
	switch {
	case c != nil:
		// A local builder program: it gets its address in PORT and
		// ISOTOPE_BUILDER_ADDR and the shared directory as its last
		// argument, like Fission's `/builder /packages`. In its own
		// network that address is Fission's 127.0.0.1:8001.
		b.argv = append(c.argv, dir)
		b.env = c.env
		mode, err := l.cfg.Network.Resolve(fmt.Sprintf("the builder of environment %s/%s", env.Namespace, env.Name), env.Annotations)
		if err != nil {
			b.startErr = err
			close(b.readyCh)
		} else if mode == netns.Isolated {
			b.network = l.cfg.Network
			b.sock = netns.SocketFor(dir)
		}
	case IsBuiltinBuilderImage(env.Spec.Builder.Image):
		b.argv = []string{l.cfg.Executable, "builder", dir}
		b.env = ctrEnv
		b.builtin = true
	default:
		b.startErr = fmt.Errorf("builder image %q cannot run in embedded mode: give the environment a local builder program (builder.container.command, CLI --builder-command), or use a built-in builder (isotope/go-wasm-builder, isotope/c-wasm-builder, isotope/rust-wasm-builder)", env.Spec.Builder.Image)
		close(b.readyCh)
	}
	// The isotope binary's directory comes first on PATH so build
	// commands such as `isotope build go-wasm` find it.
	path := filepath.Dir(l.cfg.Executable) + string(os.PathListSeparator) + os.Getenv("PATH")
	b.env = append(append(append(os.Environ(), "PATH="+path), l.cfg.Env...), b.env...)
	return b, nil
}

type v1ContainerCmd struct {
	argv []string
	env  []string
}

// localBuilder is one supervised builder process.
type localBuilder struct {
	key, version, dir string
	argv, env         []string
	builtin           bool // argv is `isotope builder DIR`: runOnce adds --addr
	log               *slog.Logger
	output            io.Writer
	tail              tailWriter    // the last of the program's output, for errors
	network           *netns.Policy // set when the builder has its own network
	sock              string        // then: the shim's socket
	httpClient        *http.Client  // reaches the builder (through sock if set)

	mu       sync.Mutex
	cmd      *exec.Cmd
	addr     string
	startErr error // permanent: the builder cannot start at all
	lastErr  error // why the last run ended
	ready    bool
	readyCh  chan struct{} // closed when ready, or on a permanent start error
	stopped  bool
	quit     chan struct{} // closed by stop
	done     chan struct{} // closed when supervise returns
}

func (b *localBuilder) pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && b.cmd.Process != nil {
		return b.cmd.Process.Pid
	}
	return 0
}

// supervise runs the builder, restarting it with back-off until stopped.
func (b *localBuilder) supervise() {
	defer close(b.done)
	if b.startErr != nil {
		return
	}
	backoff := 200 * time.Millisecond
	for {
		b.mu.Lock()
		if b.stopped {
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		started := time.Now()
		err := b.runOnce()
		b.mu.Lock()
		b.ready = false
		b.lastErr = err
		stopped := b.stopped || b.startErr != nil
		b.mu.Unlock()
		if stopped {
			return
		}
		b.log.Warn("builder exited; restarting", "err", err, "in", backoff)
		if time.Since(started) > 30*time.Second {
			backoff = 200 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-b.quit:
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// runOnce starts the process, marks it ready once /healthz answers, and
// waits for it to exit.
func (b *localBuilder) runOnce() error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(BuilderPort))
	if b.sock == "" {
		var err error
		if addr, err = freeLoopbackAddr(); err != nil {
			return err
		}
	}
	argv := b.argv
	if b.builtin {
		// isotope builder --addr ADDR DIR
		argv = []string{argv[0], argv[1], "--addr", addr, argv[2]}
	}
	env := append(append([]string{}, b.env...), "PORT="+portOf(addr), "ISOTOPE_BUILDER_ADDR="+addr)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Dir = b.dir
	cmd.Env = env
	if b.sock != "" {
		// The shim runs the program in the shared directory.
		var err error
		cmd, err = b.network.Command(netns.Program{Argv: argv, Env: env, Dir: b.dir, Port: BuilderPort, Socket: b.sock})
		if err != nil {
			return err
		}
	}
	out := io.MultiWriter(b.output, &b.tail)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		b.mu.Lock()
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			b.startErr = fmt.Errorf("builder program %q not found: %w", argv[0], err)
			b.closeReadyLocked()
		}
		b.mu.Unlock()
		return err
	}
	b.mu.Lock()
	b.cmd = cmd
	b.addr = addr
	b.mu.Unlock()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// waitExit waits for the process, killing its group if stop is called.
	waitExit := func() error {
		select {
		case err := <-exited:
			return err
		case <-b.quit:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return <-exited
		}
	}

	client := &http.Client{Timeout: time.Second, Transport: b.client().Transport}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			if err == nil {
				err = errors.New("builder exited")
			}
			var ee *exec.ExitError
			if b.sock != "" && errors.As(err, &ee) && ee.ExitCode() == netns.ExitNotFound {
				// The shim could not find the program: that will not change.
				b.mu.Lock()
				b.startErr = fmt.Errorf("builder program %q not found: %s", argv[0], b.tail.String())
				b.closeReadyLocked()
				b.mu.Unlock()
			}
			return err
		case <-b.quit:
			return waitExit()
		case <-tick.C:
			resp, err := client.Get("http://" + addr + "/healthz")
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.mu.Lock()
				b.ready = true
				b.closeReadyLocked()
				b.mu.Unlock()
				b.log.Info("builder ready", "addr", addr, "pid", cmd.Process.Pid)
				return waitExit()
			}
		}
	}
}

// closeReadyLocked closes readyCh once.
func (b *localBuilder) closeReadyLocked() {
	select {
	case <-b.readyCh:
	default:
		close(b.readyCh)
	}
}

// waitReady blocks until the builder is ready, has failed for good, or
// ctx ends; then the error says what was waited for, for how long, and
// the program's last output.
func (b *localBuilder) waitReady(ctx context.Context) error {
	started := time.Now()
	for {
		b.mu.Lock()
		ready, startErr, lastErr, ch := b.ready, b.startErr, b.lastErr, b.readyCh
		b.mu.Unlock()
		if startErr != nil {
			return startErr
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			where := "127.0.0.1:<$PORT> on the host network"
			if b.sock != "" {
				where = fmt.Sprintf("127.0.0.1:%d in its own network namespace", BuilderPort)
			} else if a := b.baseURL(); a != "http://" {
				where = strings.TrimPrefix(a, "http://") + " (the port in $PORT) on the host network"
			}
			msg := fmt.Sprintf("waited %s for the builder program %q to answer GET /healthz with 200 on %s",
				time.Since(started).Round(time.Millisecond), strings.Join(b.argv, " "), where)
			if lastErr != nil {
				msg += fmt.Sprintf("; it exited: %v", lastErr)
			}
			return fmt.Errorf("%w: %s; its last output:\n%s", ctx.Err(), msg, b.tail.String())
		case <-ch:
			// Ready, or failed for good; loop to find out which. After a
			// restart readyCh is already closed, so poll briefly.
			b.mu.Lock()
			r := b.ready || b.startErr != nil
			b.mu.Unlock()
			if !r {
				select {
				case <-ctx.Done():
				case <-time.After(25 * time.Millisecond):
				}
			}
		}
	}
}

// stop kills the builder's process group and waits for the supervisor.
func (b *localBuilder) stop() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.quit)
	}
	cmd := b.cmd
	b.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-b.done
	_ = os.RemoveAll(b.dir)
	if b.sock != "" {
		_ = os.Remove(b.sock)
	}
}

// client reaches the builder: through its shim's socket when it has its
// own network.
func (b *localBuilder) client() *http.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.httpClient == nil {
		b.httpClient = http.DefaultClient
		if b.sock != "" {
			sock := b.sock
			b.httpClient = &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return netns.Dial(ctx, sock) },
			}}
		}
	}
	return b.httpClient
}

func (b *localBuilder) baseURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "http://" + b.addr
}

// localPod is a BuildPod over a local builder and the in-process fetcher.
type localPod struct {
	b       *localBuilder
	fetcher Fetcher
}

func (p *localPod) FetchSource(ctx context.Context, pkg *v1.Package, filename string) error {
	return p.fetcher.FetchSource(ctx, p.b.dir, pkg, filename)
}

func (p *localPod) Upload(ctx context.Context, artifact string, zip bool) (string, v1.Checksum, error) {
	return p.fetcher.Upload(ctx, p.b.dir, artifact, zip)
}

func (p *localPod) Clean(ctx context.Context, src string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, p.b.baseURL()+"/clean?name="+src, nil)
	if err == nil {
		tracing.Inject(ctx, req.Header)
		if resp, err := p.b.client().Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// Build speaks Fission's builder protocol, streaming the live log from
// the builder's log endpoint while the build request runs.
func (p *localPod) Build(ctx context.Context, src, command string, live io.Writer) (string, string, error) {
	return buildOverHTTP(ctx, p.b.client(), p.b.baseURL(), src, command, live)
}

// buildRequest and buildResponse are Fission's PackageBuildRequest and
// PackageBuildResponse.
type buildRequest struct {
	SrcPkgFilename string `json:"srcPkgFilename"`
	Command        string `json:"command"`
}

type buildResponse struct {
	ArtifactFilename string `json:"artifactFilename"`
	BuildLogs        string `json:"buildLogs"`
}

func buildOverHTTP(ctx context.Context, client *http.Client, base, src, command string, live io.Writer) (string, string, error) {
	body, _ := json.Marshal(buildRequest{SrcPkgFilename: src, Command: command})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	tracing.Inject(ctx, req.Header)
	streamCtx, stopStream := context.WithCancel(ctx)
	streamed := make(chan int64, 1)
	go func() { streamed <- followBuildLog(streamCtx, client, base, src, live) }()
	resp, err := client.Do(req)
	stopStream()
	n := <-streamed
	if err != nil {
		return "", "", fmt.Errorf("builder unreachable: %w", err)
	}
	defer resp.Body.Close()
	var br buildResponse
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err := json.Unmarshal(raw, &br); err != nil {
		return "", string(raw), fmt.Errorf("builder answered %s with a body that is not a build response: %.200s", resp.Status, raw)
	}
	// Whatever the live stream missed goes to live now.
	if int64(len(br.BuildLogs)) > n {
		io.WriteString(live, br.BuildLogs[n:])
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return br.ArtifactFilename, br.BuildLogs, nil
	case http.StatusBadRequest:
		return "", br.BuildLogs, fmt.Errorf("builder refused the request: %s", strings.TrimSpace(br.BuildLogs))
	default:
		return "", br.BuildLogs, fmt.Errorf("build failed (builder answered %s)", resp.Status)
	}
}

// followBuildLog copies the builder's live log (GET /logs?name=SRC&follow=true)
// to live and returns how many bytes it copied. A builder without the
// endpoint copies nothing; the final log is written from the response.
func followBuildLog(ctx context.Context, client *http.Client, base, src string, live io.Writer) int64 {
	var n int64
	deadline := time.Now().Add(10 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/logs?follow=true&name="+src, nil)
		if err != nil {
			return n
		}
		tracing.Inject(ctx, req.Header)
		resp, err := client.Do(req)
		if err != nil {
			return n
		}
		if resp.StatusCode == http.StatusNotFound {
			// The build may not have started yet: try again shortly.
			resp.Body.Close()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return n
		}
		c, _ := io.Copy(live, resp.Body)
		resp.Body.Close()
		return n + c
	}
	return n
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// tailWriter keeps the last tailBytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailBytes = 2 << 10

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := strings.TrimSpace(string(t.buf)); s != "" {
		return s
	}
	return "(none)"
}
