package wasm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"isotope.dev/isotope/internal/testing/testlog"
	"isotope.dev/isotope/internal/wasm/wasmtest"
)

// The router's deadline is normally the function's own, so it ends the
// request's context at the same moment as the module's; the function log
// still gets its line about the timeout (it used to be dropped as "the
// client went away"), and likewise for traps.
func TestTimeoutAndTrapAreLoggedWhenTheCallersDeadlineEndsFirst(t *testing.T) {
	rt := sharedRuntime(t)
	logs := &testlog.Buffer{}
	m := load(t, rt, LoadRequest{Wasm: wasmtest.Spin(), Name: "t/spinlog", Log: logs, Limits: Limits{Timeout: 2 * time.Second}})
	rec, req := httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	m.ServeHTTP(rec, req.WithContext(ctx))
	if rec.Code != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", rec.Code)
	}
	// The caller's deadline began a moment before the request reached
	// the module: what is left of it is reported (how much is left
	// depends on the machine's load, so only its form is checked).
	if got := logs.String(); !regexp.MustCompile(`t/spinlog isotope: function t/spinlog timed out: the request exceeded its \d+ms deadline; instance stopped`).MatchString(got) {
		t.Errorf("function log lacks the timeout line:\n%s", got)
	}

	// Same deadline on both sides, as the router sets it.
	logs2 := &testlog.Buffer{}
	m2 := load(t, rt, LoadRequest{Wasm: wasmtest.Spin(), Name: "t/spinsame", Log: logs2, Limits: Limits{Timeout: 150 * time.Millisecond}})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	m2.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx2))
	if got := logs2.String(); !regexp.MustCompile(`exceeded its \d+ms deadline; instance stopped`).MatchString(got) {
		t.Errorf("function log lacks the timeout line:\n%s", got)
	}

	// A client that goes away mid-request is logged too, not as a trap.
	logs3 := &testlog.Buffer{}
	m3 := load(t, rt, LoadRequest{Wasm: wasmtest.Spin(), Name: "t/spincancel", Log: logs3, Limits: Limits{Timeout: 10 * time.Second}})
	ctx3, cancel3 := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel3)
	m3.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(ctx3))
	if got := logs3.String(); !strings.Contains(got, "cancelled (the client went away); instance stopped") {
		t.Errorf("function log lacks the cancellation line:\n%s", got)
	}
	if s := m3.Stats(); s.Traps != 0 || s.Timeouts != 0 {
		t.Errorf("a cancellation counted as a trap or timeout: %+v", s)
	}

	// A trap is logged with the same words about the instance.
	logs4 := &testlog.Buffer{}
	m4 := load(t, rt, LoadRequest{Wasm: wasmtest.Trap(), Name: "t/traplog", Log: logs4})
	m4.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if got := logs4.String(); !strings.Contains(got, "t/traplog isotope: function t/traplog crashed:") || !strings.Contains(got, "; instance stopped") {
		t.Errorf("function log lacks the trap line:\n%s", got)
	}
}

// lineRecorder is a LineLogger: it records lines as the runtime hands
// them over, whole and with their source.
type lineRecorder struct {
	mu    sync.Mutex
	lines [][2]string
}

func (r *lineRecorder) LogLine(source, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, [2]string{source, text})
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, [2]string{"formatted", string(p)})
	return len(p), nil
}

// A Log that is a LineLogger gets each line with its source and no
// timestamp or name to parse back out; Write is never called.
func TestLineLoggerGetsWholeLines(t *testing.T) {
	rt := sharedRuntime(t)
	rec := &lineRecorder{}
	m := load(t, rt, LoadRequest{Wasm: wasmtest.Trap(), Name: "t/lines", Log: rec})
	m.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.lines) == 0 {
		t.Fatal("no line logged for a trap")
	}
	for _, l := range rec.lines {
		if l[0] != "isotope" || strings.Contains(l[1], "t/lines isotope:") {
			t.Errorf("line %q from %q: want the host's text alone, from isotope", l[1], l[0])
		}
	}
	if !strings.Contains(rec.lines[0][1], "function t/lines") {
		t.Errorf("first line %q does not name the function", rec.lines[0][1])
	}
}
