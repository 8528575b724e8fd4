package mqtrigger

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "isotope.dev/isotope/api/v1"
)

// fnServer is a function behind a router on loopback: real HTTP, the
// router's /fission-function/<ns>/<name> path.
type fnServer struct {
	*httptest.Server
	mu      sync.Mutex
	calls   []call
	active  atomic.Int32
	maxSeen atomic.Int32
}

type call struct {
	path   string
	body   string
	header http.Header
}

// newFnServer answers with answer(body) → status, response body.
func newFnServer(t *testing.T, answer func(body string) (int, string)) *fnServer {
	f := &fnServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.active.Add(1)
		defer f.active.Add(-1)
		for {
			m := f.maxSeen.Load()
			if n <= m || f.maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, call{path: r.URL.Path, body: string(b), header: r.Header.Clone()})
		f.mu.Unlock()
		code, out := answer(string(b))
		w.Header().Set("X-Answer", "yes")
		w.WriteHeader(code)
		io.WriteString(w, out)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fnServer) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func trigger(kind v1.MessageQueueType, topic string, meta map[string]string) *v1.MessageQueueTrigger {
	t := &v1.MessageQueueTrigger{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "default"},
		Spec: v1.MessageQueueTriggerSpec{
			FunctionReference: v1.FunctionReference{Type: v1.FunctionReferenceTypeFunctionName, Name: "handle"},
			MessageQueueType:  kind,
			Topic:             topic,
			Metadata:          meta,
		},
	}
	v1.Default(t)
	return t
}

// runTrigger runs t against f until the test ends; handled receives
// every result.
func runTrigger(t *testing.T, tr *v1.MessageQueueTrigger, f *fnServer, o Options) <-chan Result {
	t.Helper()
	if errs := v1.Validate(tr); len(errs) > 0 {
		t.Fatalf("invalid trigger: %v", errs.ToAggregate())
	}
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan Result, 10000)
	done := make(chan error, 1)
	go func() {
		done <- RunTrigger(ctx, tr, o, Config{
			RouterURL: f.URL, RetryDelay: 5 * time.Millisecond,
			Handled: func(r Result) { results <- r },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunTrigger: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("RunTrigger did not return 30s after its context ended")
		}
	})
	return results
}

// collect reads n results, or fails after d.
func collect(t *testing.T, results <-chan Result, n int, d time.Duration) []Result {
	t.Helper()
	var out []Result
	deadline := time.After(d)
	for len(out) < n {
		select {
		case r := <-results:
			out = append(out, r)
		case <-deadline:
			t.Fatalf("%d of %d messages handled within %v", len(out), n, d)
		}
	}
	return out
}

// checkOrder fails unless the bodies each key got are "key-0", "key-1" …
// in order.
func checkOrder(t *testing.T, calls []call) {
	t.Helper()
	next := map[string]int{}
	for _, c := range calls {
		key, _, _ := strings.Cut(c.body, "-")
		want := fmt.Sprintf("%s-%d", key, next[key])
		if c.body != want {
			t.Fatalf("out of order for %s: got %q, want %q", key, c.body, want)
		}
		next[key]++
	}
}
