package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Module is one loaded function: compiled code, its configuration and, for
// a reactor, its pool of warm instances. It is an http.Handler and safe for
// concurrent use.
type Module struct {
	rt      *Runtime
	c       *compiled
	name    string
	entry   string
	limits  Limits
	log     *funcLog
	baseCfg wazero.ModuleConfig
	env     [][2]string // the function's environment, sorted
	alloc   experimental.MemoryAllocator

	environ   environ       // reactor: every instance's environment (environ.go)
	wagiEntry string        // WAGI: export to call instead of _start
	wagiSem   chan struct{} // WAGI: concurrency cap
	pool      *pool         // reactor

	closed atomic.Bool

	requests, errors, traps, timeouts, started, discarded atomic.Uint64
	busy                                                  atomic.Int64
}

// EnvEntrypoint is the environment variable that names the entry point
// inside the guest (see LoadRequest.Entrypoint).
const EnvEntrypoint = "ISOTOPE_ENTRYPOINT"

// EnvMaxResponseBody gives a reactor guest its response body limit in
// bytes, so the Go SDK refuses writes past it instead of buffering them
// until the instance runs out of memory.
const EnvMaxResponseBody = "ISOTOPE_MAX_RESPONSE_BODY"

func newModule(ctx context.Context, rt *Runtime, c *compiled, name string, req LoadRequest) (*Module, error) {
	lim := req.Limits.WithDefaults()
	if lim.MemoryPages > 65536 {
		return nil, fmt.Errorf("Limits.MemoryPages %d is above 65536 (4 GiB)", lim.MemoryPages)
	}
	for _, md := range c.cm.ExportedMemories() {
		if md.Min() > lim.MemoryPages {
			return nil, fmt.Errorf("module needs %d memory pages at start, above the function's limit of %d pages", md.Min(), lim.MemoryPages)
		}
	}
	m := &Module{
		rt:     rt,
		c:      c,
		name:   name,
		entry:  req.Entrypoint,
		limits: lim,
		log:    newFuncLog(req.Log, name),
		alloc:  limitedAllocator{limit: uint64(lim.MemoryPages) * 65536, pool: &rt.memories},
	}
	for k, v := range req.Env {
		if k == "" {
			return nil, errors.New("Env has an empty variable name")
		}
		m.env = append(m.env, [2]string{k, v})
	}
	sort.Slice(m.env, func(i, j int) bool { return m.env[i][0] < m.env[j][0] })
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	// Nanosleep is set per instance (sleeper): it must end with the
	// request's deadline.
	if req.ArchiveDir != "" || len(req.Mounts) > 0 {
		fs := wazero.NewFSConfig()
		if req.ArchiveDir != "" {
			fs = fs.WithReadOnlyDirMount(req.ArchiveDir, "/")
		}
		for _, guest := range slices.Sorted(maps.Keys(req.Mounts)) {
			fs = fs.WithReadOnlyDirMount(req.Mounts[guest], guest)
		}
		cfg = cfg.WithFSConfig(fs)
	}
	m.baseCfg = cfg

	switch c.abi {
	case ABIWAGI:
		if req.Entrypoint != "" && req.Entrypoint != exportStart {
			if _, ok := c.cm.ExportedFunctions()[req.Entrypoint]; ok {
				m.wagiEntry = req.Entrypoint
			}
		}
		m.wagiSem = make(chan struct{}, lim.MaxInstances)
	case ABIReactor:
		for _, kv := range m.reactorEnviron() {
			m.environ.add(kv[0], kv[1])
		}
		m.pool = newPool(m)
		wctx, cancel := context.WithTimeout(ctx, initTimeout(lim))
		err := m.pool.warm(wctx, lim.WarmInstances)
		cancel()
		if err != nil {
			m.pool.close()
			return nil, err
		}
	}
	return m, nil
}

// Name is the function name given at Load.
func (m *Module) Name() string { return m.name }

// ABI is the ABI detected from the module's exports.
func (m *Module) ABI() ABI { return m.c.abi }

// Limits are the effective limits (defaults applied).
func (m *Module) Limits() Limits { return m.limits }

// Stats returns the Module's counters.
func (m *Module) Stats() Stats {
	s := Stats{
		ABI:                m.c.abi,
		Requests:           m.requests.Load(),
		Errors:             m.errors.Load(),
		Traps:              m.traps.Load(),
		Timeouts:           m.timeouts.Load(),
		InstancesStarted:   m.started.Load(),
		InstancesDiscarded: m.discarded.Load(),
		Busy:               int(m.busy.Load()),
		InterruptChecks:    m.c.interrupt,
	}
	if m.pool != nil {
		s.Idle = m.pool.idleCount()
	}
	return s
}

// Close stops the Module's instances and releases its compiled code once
// no other Module shares it. Requests in flight finish or fail.
func (m *Module) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	if m.pool != nil {
		m.pool.close()
	}
	m.rt.release(m.c)
	return nil
}

// response is what a guest answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// hostError is a failure the host answers for the guest.
type hostError struct {
	status int
	msg    string
	// reason, for a 5xx, is what the router may tell an anonymous
	// caller (router.HostErrorHeader): "crash", "response-too-large",
	// "bad-response", "timeout" or "unavailable"; "" lets it say the
	// function failed.
	reason string
}

// HostErrorHeader marks the host's own failure answers (the router's
// HostErrorHeader: the router logs them and answers a short message).
const HostErrorHeader = "X-Isotope-Error"

func (e *hostError) Error() string { return e.msg }

// ServeHTTP runs the function for one request.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	if m.closed.Load() {
		m.fail(w, m.unloaded())
		return
	}
	body, herr := readBody(r, m.limits.MaxRequestBody)
	if herr != nil {
		m.fail(w, herr)
		return
	}
	start := time.Now()
	ctx := r.Context()
	if dl, ok := ctx.Deadline(); !ok || dl.After(start.Add(m.limits.Timeout)) {
		// The caller's deadline (the router's functionTimeout, normally
		// the same value, begun a little earlier) is kept when it comes
		// first: a second timer per request would change nothing.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.limits.Timeout)
		defer cancel()
	}
	ctx = context.WithValue(ctx, startKey{}, start)
	opts := invokeOptionsFrom(r.Context())

	var resp *response
	var err error
	m.busy.Add(1)
	if m.c.abi == ABIWAGI {
		resp, err = m.serveWAGI(ctx, r, opts, body)
	} else {
		resp, err = m.serveReactor(ctx, r, opts, body)
	}
	m.busy.Add(-1)
	if err != nil {
		var he *hostError
		if !errors.As(err, &he) {
			he = &hostError{status: http.StatusInternalServerError, msg: err.Error()}
		}
		// Answered and logged even when the caller's own deadline (the
		// router's functionTimeout, usually the same as ours) or the
		// client ended the request: the answer may go unread, but the
		// function log must say what happened to the instance.
		m.fail(w, he)
		return
	}
	if len(resp.body) > int(m.limits.MaxResponseBody) {
		m.fail(w, &hostError{reason: "response-too-large", status: http.StatusBadGateway, msg: fmt.Sprintf("function %s answered a %d-byte body, above its limit of %d bytes", m.name, len(resp.body), m.limits.MaxResponseBody)})
		return
	}
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// unloaded is the answer of a request to a closed Module.
func (m *Module) unloaded() *hostError {
	return &hostError{reason: "unavailable", status: http.StatusServiceUnavailable, msg: fmt.Sprintf("function %s is unloaded", m.name)}
}

// fail answers he and writes it to the function log.
func (m *Module) fail(w http.ResponseWriter, he *hostError) {
	if he.status >= 500 {
		m.errors.Add(1)
	}
	m.log.line("isotope", he.msg)
	if he.status >= 500 {
		w.Header().Set(HostErrorHeader, he.reason)
	}
	http.Error(w, he.msg, he.status)
}

// startKey carries the time a request reached ServeHTTP, for messages.
type startKey struct{}

// classify turns an error from running guest code into the host's answer,
// counting traps and timeouts. Every case stops the guest instance (a
// reactor's is discarded), and the message says so: it is also the
// function log's line about the request.
func (m *Module) classify(ctx context.Context, err error) *hostError {
	switch ctxErr := ctx.Err(); {
	case errors.Is(ctxErr, context.DeadlineExceeded) || (ctxErr == nil && errors.Is(err, context.DeadlineExceeded)):
		// The second case: yield saw the deadline pass before the
		// context's own timer fired.
		m.timeouts.Add(1)
		return &hostError{reason: "timeout", status: http.StatusGatewayTimeout, msg: fmt.Sprintf("function %s timed out: the request exceeded its %s deadline; instance stopped",
			m.name, deadlineOf(ctx, m.limits.Timeout))}
	case ctxErr != nil:
		return &hostError{reason: "unavailable", status: http.StatusServiceUnavailable, msg: fmt.Sprintf("function %s: the request was cancelled (the client went away); instance stopped", m.name)}
	}
	m.traps.Add(1)
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return &hostError{reason: "crash", status: http.StatusBadGateway, msg: fmt.Sprintf("function %s exited with code %d; instance stopped", m.name, ee.ExitCode())}
	}
	return &hostError{reason: "crash", status: http.StatusBadGateway, msg: fmt.Sprintf("function %s crashed: %v; instance stopped", m.name, err)}
}

// deadlineOf is the length of ctx's deadline measured from the request's
// start: the function's timeout, or the caller's clearly shorter one
// (the router's deadline, normally the same functionTimeout, began a
// little earlier; that is still reported as the function's timeout).
func deadlineOf(ctx context.Context, timeout time.Duration) time.Duration {
	dl, ok := ctx.Deadline()
	start, ok2 := ctx.Value(startKey{}).(time.Time)
	if !ok || !ok2 {
		return timeout
	}
	if d := dl.Sub(start); d < timeout-max(timeout/20, 10*time.Millisecond) {
		if d >= time.Second {
			return d.Round(100 * time.Millisecond)
		}
		return d.Round(10 * time.Millisecond)
	}
	return timeout
}

func readBody(r *http.Request, max int64) ([]byte, *hostError) {
	tooLarge := &hostError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than the function's limit of %d bytes", max)}
	if r.ContentLength > max {
		return nil, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	if err != nil {
		return nil, &hostError{status: http.StatusBadRequest, msg: "reading request body: " + err.Error()}
	}
	if int64(len(b)) > max {
		return nil, tooLarge
	}
	return b, nil
}

// limitedAllocator backs each instance's linear memory and refuses to grow
// it past the function's page limit, so memory.grow fails in the guest.
type limitedAllocator struct {
	limit uint64
	pool  *memoryPool // reserved mappings to reuse
}

func (a limitedAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	limit := min(a.limit, max)
	if m := newReservedMemory(a.pool, limit); m != nil {
		return m
	}
	return &limitedMemory{limit: limit}
}

type limitedMemory struct {
	buf   []byte
	limit uint64
}

func (l *limitedMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Grow by at least a quarter to keep repeated memory.grow cheap,
	// never past the limit.
	c := max(size, uint64(cap(l.buf))+uint64(cap(l.buf))/4)
	c = min(c, l.limit)
	nb := make([]byte, size, c)
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

func (l *limitedMemory) Free() { l.buf = nil }

// initTimeout bounds _initialize: a guest runtime's start (Go's takes
// milliseconds, far more under a race detector) must not fail just
// because the function's request timeout is short.
func initTimeout(l Limits) time.Duration {
	return max(l.Timeout, 30*time.Second)
}
