package wasm

import (
	"bytes"
	"errors"
	"testing"

	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The Go guests (the largest modules Isotope runs, with every construct
// the Go compiler emits) are rewritten, and a rewritten module is refused
// a second time: it already exports the interrupt global.
func TestInstrumentGoModules(t *testing.T) {
	for name, mod := range map[string][]byte{"reactor": reactorModule(t), "wagi": wagiModule(t)} {
		out, err := instrumentInterrupts(mod)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(out) <= len(mod) || !bytes.Equal(out[:8], mod[:8]) {
			t.Errorf("%s: rewritten module of %d bytes from %d", name, len(out), len(mod))
		}
		var nr *errNoRewrite
		if _, err := instrumentInterrupts(out); !errors.As(err, &nr) {
			t.Errorf("%s: rewriting twice: %v, want an errNoRewrite", name, err)
		}
	}
}

// What the rewriter refuses runs unchanged on the close-on-context-done
// runtime, never without any deadline check.
func TestInstrumentRefuses(t *testing.T) {
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
		"start section":      wasmtest.SpinInStart(),
		"unknown opcode":     unknown,
		"undefined global":   setNew,
		"not wasm":           []byte("hello"),
		"truncated":          spin[:len(spin)-3],
		"already rewritten?": mustInstrument(t, spin),
	}
	for name, mod := range cases {
		var nr *errNoRewrite
		if _, err := instrumentInterrupts(mod); !errors.As(err, &nr) {
			t.Errorf("%s: %v, want an errNoRewrite", name, err)
		}
	}
	// Loaded anyway (when valid), on the runtime that checks itself.
	m := load(t, sharedRuntime(t), LoadRequest{Wasm: wasmtest.SpinInStart(), Name: "t/start", Limits: Limits{WarmInstances: -1}})
	if m.Stats().InterruptChecks {
		t.Error("a module with a start section reports interrupt checks")
	}
}

func mustInstrument(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := instrumentInterrupts(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Whatever the bytes, the rewriter answers a module or an errNoRewrite,
// never panics; a module it answers is well-formed enough to be parsed
// again, down to the export it added.
func FuzzInstrumentInterrupts(f *testing.F) {
	for _, m := range [][]byte{wasmtest.WAGIHello(), wasmtest.Spin(), wasmtest.MemoryHog(), wasmtest.Recurse(),
		wasmtest.SpinInStart(), wasmtest.ReactorInitTrap(), wasmtest.NoEntry()} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := instrumentInterrupts(b)
		var nr *errNoRewrite
		if err != nil {
			if !errors.As(err, &nr) {
				t.Fatalf("error %T %v", err, err)
			}
			return
		}
		_, err = instrumentInterrupts(out)
		if !errors.As(err, &nr) || !bytes.Contains([]byte(err.Error()), []byte("already exports")) {
			t.Fatalf("rewritten module, rewritten again: %v", err)
		}
	})
}
