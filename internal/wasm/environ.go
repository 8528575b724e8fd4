package wasm

import (
	"context"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// A guest's environment, handed out by Isotope's own environ_get and
// environ_sizes_get on the runtime of rewritten modules.
//
// wazero takes a module's environment through ModuleConfig.WithEnv, one
// variable per call, and each call copies the configuration and its map
// of names: a WAGI request's twenty-odd CGI variables cost hundreds of
// map insertions and allocations, most of the host's own time for a
// small module. The guard of each guest call (schedule.go) carries the
// environment as WASI writes it out instead, built once per request
// (WAGI) or per function (reactor), and these two functions, overriding
// wazero's, copy it into guest memory. Modules on the close-on-context-
// done runtime keep wazero's functions and WithEnv.

// environ is an environment as WASI hands it out: each variable as
// "name=value\x00", one after the other, and how many there are.
type environ struct {
	buf []byte
	n   int
}

func (e *environ) add(name, value string) {
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, '=')
	e.buf = append(e.buf, value...)
	e.buf = append(e.buf, 0)
	e.n++
}

// errnoFault is WASI's EFAULT: a pointer outside guest memory.
const errnoFault = 21

var noEnviron environ

func environOf(ctx context.Context) *environ {
	if g, ok := ctx.Value(guardKey{}).(*guard); ok && g.env != nil {
		return g.env
	}
	return &noEnviron
}

// environSizesGet is WASI's environ_sizes_get(environc, environ_buf_size).
func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	e := environOf(ctx)
	mem := mod.Memory()
	if mem == nil || !mem.WriteUint32Le(uint32(stack[0]), uint32(e.n)) || !mem.WriteUint32Le(uint32(stack[1]), uint32(len(e.buf))) {
		stack[0] = errnoFault
		return
	}
	stack[0] = 0
}

// environGet is WASI's environ_get(environ, environ_buf): the variables
// at environ_buf, a pointer to each at environ.
func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	e := environOf(ctx)
	ptrs, buf := uint32(stack[0]), uint32(stack[1])
	mem := mod.Memory()
	if mem == nil || !mem.Write(buf, e.buf) {
		stack[0] = errnoFault
		return
	}
	start := 0
	i := uint32(0)
	for j, c := range e.buf {
		if c != 0 {
			continue
		}
		if !mem.WriteUint32Le(ptrs+4*i, buf+uint32(start)) {
			stack[0] = errnoFault
			return
		}
		i++
		start = j + 1
	}
	stack[0] = 0
}

// instantiateWASI provides WASI on rt, with Isotope's environment
// functions when own is set.
func instantiateWASI(ctx context.Context, rt wazero.Runtime, own bool) error {
	if !own {
		_, err := wasi_snapshot_preview1.Instantiate(ctx, rt)
		return err
	}
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environSizesGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("result.environc", "result.environv_len").
		Export("environ_sizes_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("environ", "environ_buf").
		Export("environ_get")
	_, err := b.Instantiate(ctx)
	return err
}
