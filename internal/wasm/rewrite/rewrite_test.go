package rewrite

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// Module building, as the bytes a WAT source would assemble to.

func vec(items ...[]byte) []byte {
	out := appendU32(nil, uint32(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

func sec(id byte, payload []byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(payload))), payload...)
}

func body(code ...byte) []byte {
	b := append(vec(), code...) // no locals
	b = append(b, 0x0b)
	return append(appendU32(nil, uint32(len(b))), b...)
}

func export(name string, kind byte, idx uint32) []byte {
	return appendU32(append(appendName(nil, name), kind), idx)
}

// indexed is a module that names functions in every way the rewrite
// renumbers:
//
//	(module
//	  (type (func))                              ;; 0
//	  (type (func (result i32)))                 ;; 1
//	  (type (func (param i32) (result i32)))     ;; 2
//	  (type (func (param i32)))                  ;; 3
//	  (import "env" "seven" (func $seven (type 1)))        ;; 0
//	  (memory (export "memory") 1)
//	  (table 2 funcref)
//	  (elem (i32.const 0) $two $three)
//	  (func $two (type 1) (i32.const 2))                   ;; 1
//	  (func $three (type 1) (i32.const 3))                 ;; 2
//	  (func $sum (export "sum") (type 1)                   ;; 3: 7+2+3+2
//	    (call $seven) (call_indirect (type 1) (i32.const 0)) i32.add
//	    (call_indirect (type 1) (i32.const 1)) i32.add (call $two) i32.add)
//	  (func $count (export "count") (type 2)               ;; 4: loops n times
//	    (loop (br_if 0 (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
//	    (local.get 0))
//	  (func $fill (export "fill") (type 3)                 ;; 5: memory.fill 0 0 n
//	    (memory.fill (i32.const 0) (i32.const 0) (local.get 0)))
//	  (func $nops (export "nops") (type 0) nop × 200)      ;; 6
//	  (func $three_ref (export "ref") (type 1)             ;; 7: ref.func $three, through a table.set
//	    (table.set (i32.const 1) (ref.func $three)) (call_indirect (type 1) (i32.const 1)))
//	  (names: 0 seven, 1 two, 2 three, 3 sum, 4 count, 5 fill, 6 nops, 7 ref))
func indexed() []byte {
	const i32 = 0x7f
	types := vec(
		[]byte{0x60, 0, 0},
		[]byte{0x60, 0, 1, i32},
		[]byte{0x60, 1, i32, 1, i32},
		[]byte{0x60, 1, i32, 0},
	)
	imports := vec(append(appendName(appendName(nil, "env"), "seven"), 0x00, 1))
	funcs := vec([]byte{1}, []byte{1}, []byte{1}, []byte{2}, []byte{3}, []byte{0}, []byte{1})
	table := vec([]byte{0x70, 0x00, 2})
	mem := vec([]byte{0x00, 1})
	exports := vec(export("memory", 2, 0), export("sum", 0, 3), export("count", 0, 4),
		export("fill", 0, 5), export("nops", 0, 6), export("ref", 0, 7))
	elem := vec([]byte{0x00, 0x41, 0x00, 0x0b, 2, 1, 2})
	nops := bytes.Repeat([]byte{0x01}, 200)
	code := vec(
		body(0x41, 2),
		body(0x41, 3),
		body(0x10, 0, 0x41, 0, 0x11, 1, 0, 0x6a, 0x41, 1, 0x11, 1, 0, 0x6a, 0x10, 1, 0x6a),
		body(0x03, 0x40, 0x20, 0, 0x41, 1, 0x6b, 0x22, 0, 0x0d, 0, 0x0b, 0x20, 0),
		body(0x41, 0, 0x41, 0, 0x20, 0, 0xfc, 11, 0),
		body(nops...),
		body(0x41, 1, 0xd2, 2, 0x26, 0, 0x41, 1, 0x11, 1, 0),
	)
	var names []byte
	for i, n := range []string{"seven", "two", "three", "sum", "count", "fill", "nops", "ref"} {
		names = append(appendU32(names, uint32(i)), appendName(nil, n)...)
	}
	names = append(appendU32(nil, 8), names...)
	nameSec := appendName(nil, "name")
	nameSec = append(appendU32(append(nameSec, 1), uint32(len(names))), names...)

	m := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range [][]byte{sec(1, types), sec(2, imports), sec(3, funcs), sec(4, table), sec(5, mem),
		sec(7, exports), sec(9, elem), sec(10, code), sec(0, nameSec)} {
		m = append(m, s...)
	}
	return m
}

// host instantiates a rewritten module with env.seven and a yield that
// counts its calls.
type host struct {
	rt     wazero.Runtime
	mod    api.Module
	yields int
}

func instantiate(t *testing.T, bin []byte) *host {
	t.Helper()
	ctx := context.Background()
	h := &host{rt: wazero.NewRuntime(ctx)}
	t.Cleanup(func() { h.rt.Close(ctx) })
	if _, err := h.rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func() int32 { return 7 }).Export("seven").Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithFunc(func() int32 { h.yields++; return InitialBudget }).Export(YieldFunction).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	cm, err := h.rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("the rewritten module does not compile: %v", err)
	}
	if h.mod, err = h.rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig()); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *host) call(t *testing.T, name string, args ...uint64) uint64 {
	t.Helper()
	res, err := h.mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(res) == 0 {
		return 0
	}
	return res[0]
}

func (h *host) budget() int32 {
	return int32(h.mod.ExportedGlobal(CounterExport).Get())
}

func mustRewrite(t testing.TB, b []byte) []byte {
	t.Helper()
	out, err := Rewrite(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Calls, call_indirect through element segments, ref.func, exports and
// names all still reach the same functions after the import is added.
func TestRenumbersFunctions(t *testing.T) {
	h := instantiate(t, mustRewrite(t, indexed()))
	if got := h.call(t, "sum"); got != 14 {
		t.Errorf("sum() = %d, want 14", got)
	}
	if got := h.call(t, "ref"); got != 3 {
		t.Errorf("ref() = %d, want 3", got)
	}
	for name, fn := range h.mod.ExportedFunctionDefinitions() {
		if fn.Name() != name {
			t.Errorf("export %q is named %q in the name section", name, fn.Name())
		}
	}
}

// A loop yields once per InitialBudget iterations; a bulk operation
// costs its length in KiB; straight-line code is checked every
// StraightLine instructions.
func TestBudget(t *testing.T) {
	h := instantiate(t, mustRewrite(t, indexed()))
	const n = 10 * InitialBudget
	h.call(t, "count", n)
	if h.yields < 9 || h.yields > 11 {
		t.Errorf("%d loop iterations yielded %d times, want about 10", n, h.yields)
	}
	before := h.budget()
	h.call(t, "fill", 64<<10)
	if got, want := before-h.budget(), int32(1+1+64); got != want { // entry, 1 + 64 KiB
		t.Errorf("memory.fill of 64 KiB cost %d units, want %d", got, want)
	}
	before = h.budget()
	h.call(t, "nops")
	if got, want := before-h.budget(), int32(1+200/StraightLine); got != want {
		t.Errorf("200 straight-line instructions cost %d units, want %d", got, want)
	}
}

// A loop that never ends keeps calling yield, where the host stops it.
func TestSpinYields(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	stop := errors.New("stopped by the host")
	yields := 0
	if _, err := rt.NewHostModuleBuilder(ImportModule).NewFunctionBuilder().
		WithFunc(func() int32 {
			if yields++; yields == 3 {
				panic(stop)
			}
			return InitialBudget
		}).Export(YieldFunction).Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string][]byte{"loop": wasmtest.Spin(), "recursion": wasmtest.Recurse()} {
		yields = 0
		cm, err := rt.CompileModule(ctx, mustRewrite(t, mod))
		if err != nil {
			t.Fatal(err)
		}
		m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions().WithName(name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.ExportedFunction("_start").Call(ctx); !errors.Is(err, stop) {
			t.Errorf("%s: %v, want the host's stop", name, err)
		}
	}
}

var goGuests = sync.OnceValues(func() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, build := range map[string]func() (string, error){"reactor": wasmtest.BuildReactor, "wagi": wasmtest.BuildWAGI} {
		p, err := build()
		if err != nil {
			return nil, err
		}
		if out[name], err = os.ReadFile(p); err != nil {
			return nil, err
		}
	}
	return out, nil
})

func goGuest(t testing.TB, name string) []byte {
	t.Helper()
	m, err := goGuests()
	if err != nil {
		t.Fatalf("building the Go guests: %v", err)
	}
	return m[name]
}

func reactorModule(t testing.TB) []byte { return goGuest(t, "reactor") }

// The Go guests (the largest modules Isotope runs, with every construct
// the Go compiler emits) are rewritten into modules wazero accepts, and a
// rewritten module is refused a second time.
func TestRewriteGoModules(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, name := range []string{"reactor", "wagi"} {
		mod := goGuest(t, name)
		out, err := Rewrite(mod)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := rt.CompileModule(ctx, out); err != nil {
			t.Fatalf("%s: the rewritten module does not compile: %v", name, err)
		}
		var nr *NotRewritable
		if _, err := Rewrite(out); !errors.As(err, &nr) {
			t.Errorf("%s: rewriting twice: %v, want a NotRewritable", name, err)
		}
	}
}

// What the rewriter refuses runs unchanged on the close-on-context-done
// runtime, never without any deadline check.
func TestRefuses(t *testing.T) {
	spin := wasmtest.Spin()
	// The Spin module with its body's loop replaced by an opcode the
	// rewriter does not know (0xff): it must refuse, not guess.
	unknown := bytes.Replace(bytes.Clone(spin), []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}, []byte{0xff, 0x40, 0x0c, 0x00, 0x0b}, 1)
	if bytes.Equal(unknown, spin) {
		t.Fatal("test module layout changed")
	}
	// global.set of a global the module does not define: invalid as it
	// stands, valid once a global is added; the rewrite must not make it so.
	setNew := bytes.Replace(bytes.Clone(spin), []byte{0x03, 0x40, 0x0c, 0x00, 0x0b}, []byte{0x41, 0x00, 0x24, 0x00, 0x0b}, 1)
	cases := map[string][]byte{
		"start section":     wasmtest.SpinInStart(),
		"unknown opcode":    unknown,
		"undefined global":  setNew,
		"not wasm":          []byte("hello"),
		"truncated":         spin[:len(spin)-3],
		"already rewritten": mustRewrite(t, spin),
	}
	for name, mod := range cases {
		var nr *NotRewritable
		if _, err := Rewrite(mod); !errors.As(err, &nr) {
			t.Errorf("%s: %v, want a NotRewritable", name, err)
		}
	}
}

// Whatever the bytes, the rewriter answers a module or a NotRewritable,
// never panics; a module it answers is well-formed enough to be parsed
// again, down to the import it added.
func FuzzRewrite(f *testing.F) {
	for _, m := range [][]byte{wasmtest.WAGIHello(), wasmtest.Spin(), wasmtest.MemoryHog(), wasmtest.Recurse(),
		wasmtest.SpinInStart(), wasmtest.ReactorInitTrap(), wasmtest.NoEntry(), indexed()} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Rewrite(b)
		var nr *NotRewritable
		if err != nil {
			if !errors.As(err, &nr) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		_, err = Rewrite(out)
		if !errors.As(err, &nr) || !strings.Contains(err.Error(), "already imports") {
			t.Fatalf("rewritten module, rewritten again: %v", err)
		}
	})
}
