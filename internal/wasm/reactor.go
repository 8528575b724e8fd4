package wasm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// instance is one initialized reactor instance. It serves one request at
// a time; the pool hands it to one goroutine only.
type instance struct {
	mod      api.Module
	handle   api.Function
	alloc    api.Function
	mem      api.Memory
	bufPtr   uint32 // guest request buffer from isotope_alloc
	bufCap   uint32
	stack    []uint64
	reqBuf   []byte // host-side encoding scratch, reused
	requests int
	stdout   *lineWriter
	stderr   *lineWriter
	sleep    sleeper // poll_oneoff sleeps end with the call's context
	guard    *guard  // runs guest calls under the scheduler
}

// newInstance instantiates the module and runs _initialize.
func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{
		stdout: &lineWriter{log: m.log, source: "stdout"},
		stderr: &lineWriter{log: m.log, source: "stderr"},
		stack:  make([]uint64, 2),
	}
	cfg := m.baseCfg.WithStdout(in.stdout).WithStderr(in.stderr).WithStartFunctions().
		WithNanosleep(in.sleep.nanosleep)
	in.sleep.enter(ctx)
	env := m.reactorEnviron()
	if !m.c.interrupt {
		for _, kv := range env {
			cfg = cfg.WithEnv(kv[0], kv[1])
		}
	}
	m.started.Add(1)
	mod, err := m.c.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, m.alloc), m.c.cm, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in.guard = m.rt.newGuard(m.c)
	in.guard.env = &m.environ
	if init := mod.ExportedFunction(exportInitialize); init != nil {
		if err := in.guard.call(ctx, init, nil); err != nil {
			in.stderr.Flush()
			mod.Close(context.Background())
			return nil, fmt.Errorf("_initialize: %w", err)
		}
	}
	sdkBuilt := false
	if v := mod.ExportedFunction(exportABIVersion); v != nil {
		sdkBuilt = true
		err := in.guard.call(ctx, v, in.stack)
		if err != nil || uint32(in.stack[0]) != ReactorABIVersion {
			mod.Close(context.Background())
			got := "an error"
			if err == nil {
				got = fmt.Sprint(uint32(in.stack[0]))
			}
			return nil, fmt.Errorf("%s returned %s; this host speaks reactor ABI version %d", exportABIVersion, got, ReactorABIVersion)
		}
	}
	m.rt.reactorStarts.Add(1)
	m.rt.reactorLive.Add(1)
	in.mod = mod
	in.handle = mod.ExportedFunction(exportHandle)
	in.alloc = mod.ExportedFunction(exportAlloc)
	in.mem = mod.ExportedMemory(exportMemory)
	m.rt.memories.started(uint64(in.mem.Size()))
	// Get the request buffer now, so a typical first request costs one
	// guest call like every later one.
	if err := in.allocate(ctx, initialRequestBuffer); err != nil {
		in.stderr.Flush()
		mod.Close(context.Background())
		m.rt.reactorLive.Add(-1)
		return nil, fmt.Errorf("%s: %w", exportAlloc, err)
	}
	if sdkBuilt {
		if err := in.warmup(ctx); err != nil {
			in.stderr.Flush()
			mod.Close(context.Background())
			m.rt.reactorLive.Add(-1)
			return nil, fmt.Errorf("warm-up request: %w", err)
		}
	}
	return in, nil
}

// reactorEnviron is a reactor instance's environment: the function's,
// the entry point, the response limit.
func (m *Module) reactorEnviron() [][2]string {
	var env [][2]string
	for _, kv := range m.env {
		if kv[0] != EnvEntrypoint && kv[0] != EnvMaxResponseBody {
			env = append(env, kv)
		}
	}
	return append(env, [2]string{EnvEntrypoint, m.entry},
		[2]string{EnvMaxResponseBody, strconv.FormatInt(m.limits.MaxResponseBody, 10)})
}

// serveReactor runs one request on a pooled instance.
func (m *Module) serveReactor(ctx context.Context, r *http.Request, opts InvokeOptions, body []byte) (*response, error) {
	in, err := m.pool.get(ctx)
	if err != nil {
		if _, ok := err.(*hostError); ok {
			return nil, err
		}
		return nil, m.classify(ctx, err)
	}
	resp, err := in.call(ctx, r, opts, body, m.limits)
	var ge *gateError
	if errors.As(err, &ge) {
		// No slot: the guest never ran, and the instance is as good as
		// before.
		m.pool.put(in)
		if he := ge.asHostError(m.name); he != nil {
			return nil, he
		}
		return nil, m.classify(ctx, err)
	}
	if err != nil {
		m.pool.discard(in)
		if he, ok := err.(*hostError); ok {
			m.traps.Add(1)
			he.msg = fmt.Sprintf("function %s: %s", m.name, he.msg)
			return nil, he
		}
		return nil, m.classify(ctx, err)
	}
	in.requests++
	if in.requests >= m.limits.MaxRequestsPerInstance || in.mem.Size() > uint32(min(m.limits.MaxMemoryBytes, 1<<32-1)) {
		m.pool.discard(in)
	} else {
		in.stdout.Flush()
		in.stderr.Flush()
		m.pool.put(in)
	}
	return resp, nil
}

// initialRequestBuffer is the request buffer asked for at instance start.
const initialRequestBuffer = 16 << 10

// allocate asks the guest for a request buffer of n bytes.
func (in *instance) allocate(ctx context.Context, n uint32) error {
	in.sleep.enter(ctx)
	in.stack[0] = uint64(n)
	if err := in.guard.call(ctx, in.alloc, in.stack); err != nil {
		return err
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 {
		return &hostError{status: http.StatusBadGateway, msg: fmt.Sprintf("isotope_alloc(%d) returned 0 (out of memory?)", n)}
	}
	in.bufPtr, in.bufCap = ptr, n
	return nil
}

// warmup sends the MetaWarmup request, which the guest answers without
// running user code.
func (in *instance) warmup(ctx context.Context) error {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.RequestURI = "/"
	in.reqBuf = encodeRequestMeta(in.reqBuf[:0], r, InvokeOptions{}, nil, true)
	_, err := in.roundTrip(ctx, Limits{MaxResponseBody: 1 << 20})
	return err
}

// call writes the framed request into guest memory, calls isotope_handle
// and decodes the framed response.
func (in *instance) call(ctx context.Context, r *http.Request, opts InvokeOptions, body []byte, lim Limits) (*response, error) {
	in.reqBuf = encodeRequest(in.reqBuf[:0], r, opts, body)
	return in.roundTrip(ctx, lim)
}

// roundTrip passes in.reqBuf to isotope_handle and decodes the answer.
func (in *instance) roundTrip(ctx context.Context, lim Limits) (*response, error) {
	n := uint32(len(in.reqBuf))
	if n > in.bufCap || in.bufPtr == 0 {
		if err := in.allocate(ctx, n); err != nil {
			return nil, err
		}
	}
	if !in.mem.Write(in.bufPtr, in.reqBuf) {
		return nil, &hostError{status: http.StatusBadGateway, msg: fmt.Sprintf("isotope_alloc returned %#x, outside guest memory", in.bufPtr)}
	}
	in.stack[0], in.stack[1] = uint64(in.bufPtr), uint64(n)
	in.sleep.enter(ctx)
	err := in.guard.call(ctx, in.handle, in.stack)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// Past the deadline, a sleep in the guest may have been cut
		// short (sleeper): the answer does not count, and the instance,
		// whose timers are now off, is discarded like a stopped one.
		return nil, err
	}
	packed := in.stack[0]
	ptr, size := uint32(packed>>32), uint32(packed)
	if uint64(size) > uint64(lim.MaxResponseBody)+headerAllowance {
		return nil, &hostError{reason: "response-too-large", status: http.StatusBadGateway, msg: fmt.Sprintf("response of %d bytes is above the limit of %d bytes", size, lim.MaxResponseBody)}
	}
	raw, ok := in.mem.Read(ptr, size)
	if !ok {
		return nil, &hostError{reason: "bad-response", status: http.StatusBadGateway, msg: fmt.Sprintf("isotope_handle returned a response at %#x+%d, outside guest memory", ptr, size)}
	}
	resp, err := decodeResponse(raw)
	if err != nil {
		return nil, &hostError{reason: "bad-response", status: http.StatusBadGateway, msg: err.Error()}
	}
	return resp, nil
}
